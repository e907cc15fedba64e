/** The VPC ranges a catalog silo range may not overlap, and the check of catalog ranges against them and each other. */
import { CidrRange, overlaps, parseCidr } from './cidr';
import { Problem, problem } from './catalog-problems';
import type { ParsedTenant } from './catalog-tenant';

/** The shared VPCs' ranges: no silo VPC may overlap them, so they can be peered or routed later. */
export const SHARED_VPC_CIDRS: Readonly<Record<'pool' | 'bridge', string>> = {
  pool: '10.0.0.0/16',
  bridge: '10.1.0.0/16',
};

/**
 * The range of the platform's VPC IP Address Manager pool, from which every silo VPC without a catalog range
 * gets a /20 (2,048 of them). A range set in the catalog must lie outside it.
 */
export const SILO_IPAM_CIDR = '10.128.0.0/9';

/** Ranges no catalog silo range may overlap: the shared VPCs and the address pool silo ranges come from. */
function reservedRanges(): { owner: string; range: CidrRange }[] {
  return [
    ...Object.entries(SHARED_VPC_CIDRS).map(([model, cidr]) => ({
      owner: `the shared ${model} VPC (${cidr})`,
      range: parseCidr(cidr)!,
    })),
    { owner: `the platform's silo address pool (${SILO_IPAM_CIDR})`, range: parseCidr(SILO_IPAM_CIDR)! },
  ];
}

/** Catalog VPC ranges against the reserved ranges and each other. */
export function rangeProblems(
  entries: readonly Pick<ParsedTenant, 'id' | 'vpcCidr' | 'where'>[],
  taken: readonly { owner: string; cidr: string }[] = [],
): Problem[] {
  const problems: Problem[] = [];
  const ranges = [
    ...reservedRanges(),
    ...taken.map((t) => ({ owner: `${t.owner} (${t.cidr})`, range: parseCidr(t.cidr)! })),
  ];
  for (const e of entries) {
    const range = parseCidr(e.vpcCidr!)!;
    const label = e.id ? `tenant "${e.id}"` : e.where;
    const clash = ranges.find((r) => overlaps(range, r.range));
    if (clash) {
      problems.push(
        problem(
          'cidr-overlap',
          `${label}: field "settings.vpcCidr" ${e.vpcCidr} overlaps ${clash.owner}: choose a free private range, or leave settings.vpcCidr out to get one from the platform's address pool`,
          e.id,
          'settings.vpcCidr',
        ),
      );
      continue;
    }
    ranges.push({ owner: `${label} (${e.vpcCidr})`, range });
  }
  return problems;
}
