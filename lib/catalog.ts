/**
 * The tenant catalog: its schema, defaults and validation.
 *
 * Validation runs before any construct is built and reports every problem at once, each naming the source,
 * the tenant, the field and the fix, as data (a code, the tenant, the field, the message). This module imports
 * nothing from aws-cdk-lib, so the onboarding pipeline's handlers and the local tools apply exactly the same
 * rules to a single request.
 */
import * as fs from 'fs';
import {
  DEFAULT_SHARED_CELL_PROFILE,
  SHARED_CELL_PROFILES,
  type SharedCellProfileName,
  type SharedModel,
} from './cell-size';
import { CatalogError, isObject, Problem, problem } from './catalog-problems';
import { ParsedTenant, parseTenant, Tenant } from './catalog-tenant';
import { rangeProblems } from './catalog-ranges';

export type { SiloSettings } from './catalog-silo';
export { SILO_DEFAULTS, MIN_BACKUP_RETENTION_DAYS, MAX_BACKUP_RETENTION_DAYS } from './catalog-silo';
export type { DeletionPolicy } from '../contracts';
export { CatalogError } from './catalog-problems';
export type { Problem, ProblemCode } from './catalog-problems';
export { parseTenant, tenantRequestOf } from './catalog-tenant';
export type { ParsedTenant, Tenant } from './catalog-tenant';
export { rangeProblems, SHARED_VPC_CIDRS, SILO_IPAM_CIDR } from './catalog-ranges';

/** A shared cell's entry in the catalog: it exists when a tenant uses it, or when it is named here. */
export interface SharedCellPlan {
  /**
   * The tenant count to size the cell for (lib/cell-size.ts `cellSizeFor`) when more tenants are expected than the
   * catalog lists (tenants onboarded through the pipeline are not in it): the cell is sized for the larger of
   * this and the catalog's tenants of its model.
   */
  readonly plannedTenants: number;
  /** How the cell is built (lib/cell-size.ts `SHARED_CELL_PROFILES`). @default 'standard' */
  readonly profile?: SharedCellProfileName;
}

export type { SharedModel };
export const SHARED_MODELS: readonly SharedModel[] = ['pool', 'bridge'];

export interface Catalog {
  readonly source: string;
  readonly tenants: readonly Tenant[];
  /** Shared cells named in the catalog (`"sharedCells": { "pool": { "plannedTenants": 300 } }`). */
  readonly sharedCells?: Readonly<Partial<Record<SharedModel, SharedCellPlan>>>;
}

/** Most tenants a shared cell is planned for (the sizing rule's largest step is well below it). */
export const MAX_PLANNED_TENANTS = 100_000;

/**
 * Reads and validates a catalog file. Throws CatalogError naming the file on any problem. `flag` is how the
 * command at hand names another file (the CDK app's context by default).
 */
export function loadCatalog(path: string, flag = '-c catalog=<path>'): Catalog {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw new CatalogError(path, [
      problem(
        'unreadable',
        `cannot read the catalog (${(e as Error).message}): pass an existing file with ${flag}`,
      ),
    ]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CatalogError(path, [
      problem('invalid-document', `is not valid JSON (${(e as Error).message}): fix the syntax`),
    ]);
  }
  return parseCatalog(raw, path);
}

/** Validates a parsed catalog document (`{ "tenants": [...] }`). */
export function parseCatalog(raw: unknown, source: string): Catalog {
  if (!isObject(raw) || !Array.isArray(raw.tenants)) {
    throw new CatalogError(source, [
      problem('invalid-document', 'must be an object with a "tenants" array: { "tenants": [ ... ] }'),
    ]);
  }
  const unknownTop = Object.keys(raw).filter((k) => !['tenants', 'sharedCells', '$schema'].includes(k));
  const problems: Problem[] = unknownTop.map((k) =>
    problem(
      'unknown-field',
      `unknown top-level field "${k}": only "tenants" and "sharedCells" are allowed (check the spelling)`,
    ),
  );
  const sharedCells = parseSharedCells(raw.sharedCells, problems);
  const parsed = raw.tenants.map((entry: unknown, index: number) =>
    parseTenant(entry, `tenant #${index + 1}`),
  );
  parsed.forEach((p) => problems.push(...p.problems));
  // Cross-tenant rules look at every entry whose id (or range) is usable, even one with other problems, so
  // every problem is reported at once.
  problems.push(...crossTenantProblems(parsed));
  if (problems.length > 0) throw new CatalogError(source, problems);
  return { source, tenants: parsed.map((p) => p.tenant!), ...(sharedCells ? { sharedCells } : {}) };
}

function parseSharedCells(raw: unknown, problems: Problem[]): Catalog['sharedCells'] {
  if (raw === undefined) return undefined;
  const example = '{ "pool": { "plannedTenants": 300 } }';
  if (!isObject(raw)) {
    problems.push(problem('invalid-field', `field "sharedCells" must be an object such as ${example}`));
    return undefined;
  }
  const cells: Partial<Record<SharedModel, SharedCellPlan>> = {};
  for (const [model, plan] of Object.entries(raw)) {
    const field = `sharedCells.${model}`;
    if (!SHARED_MODELS.includes(model as SharedModel)) {
      problems.push(
        problem(
          'unknown-field',
          `unknown field "${field}": shared cells are "pool" and "bridge" (a silo tenant has a cell of its own)`,
          undefined,
          field,
        ),
      );
      continue;
    }
    const extra = isObject(plan)
      ? Object.keys(plan).filter((k) => k !== 'plannedTenants' && k !== 'profile')
      : [];
    const n = isObject(plan) ? (plan.plannedTenants ?? 0) : undefined;
    const badPlan =
      !isObject(plan) ||
      extra.length > 0 ||
      typeof n !== 'number' ||
      !Number.isInteger(n) ||
      n < 0 ||
      n > MAX_PLANNED_TENANTS;
    if (badPlan) {
      problems.push(
        problem(
          'invalid-field',
          `field "${field}" is ${JSON.stringify(plan)}: use { "plannedTenants": <a whole number from 0 to ${MAX_PLANNED_TENANTS}> } (0 builds the cell with no tenant yet), optionally with "profile": ${SHARED_CELL_PROFILES.map((p) => `"${p}"`).join(' or ')}`,
          undefined,
          field,
        ),
      );
    }
    // Checked whatever the count, so both problems are reported at once.
    const profile = isObject(plan) ? plan.profile : undefined;
    const badProfile =
      profile !== undefined && !SHARED_CELL_PROFILES.includes(profile as SharedCellProfileName);
    if (badProfile) {
      problems.push(
        problem(
          'invalid-field',
          `field "${field}.profile" is ${JSON.stringify(profile)}: use one of ${SHARED_CELL_PROFILES.map((p) => `"${p}"`).join(', ')} (the default is "${DEFAULT_SHARED_CELL_PROFILE}"; the README's "Shared cell profiles" compares them)`,
          undefined,
          `${field}.profile`,
        ),
      );
    }
    if (badPlan || badProfile) continue;
    cells[model as SharedModel] = {
      plannedTenants: n as number,
      ...(profile !== undefined ? { profile: profile as SharedCellProfileName } : {}),
    };
  }
  return cells;
}

/** Rules across entries: unique ids and hostnames, and catalog VPC ranges that overlap nothing. */
function crossTenantProblems(entries: readonly ParsedTenant[]): Problem[] {
  const problems: Problem[] = [];
  const firstWithId = new Map<string, number>();
  const firstWithHost = new Map<string, number>();
  entries.forEach((e, index) => {
    if (e.id) {
      const first = firstWithId.get(e.id);
      if (first !== undefined) {
        problems.push(
          problem(
            'duplicate-id',
            `tenant "${e.id}" (#${index + 1}): duplicate id, already used by tenant #${first + 1}: ids must be unique`,
            e.id,
            'id',
          ),
        );
      } else firstWithId.set(e.id, index);
    }
    if (e.hostname && e.id) {
      const first = firstWithHost.get(e.hostname);
      if (first !== undefined && entries[first].id !== e.id) {
        problems.push(
          problem(
            'duplicate-hostname',
            `tenant "${e.id}" (#${index + 1}): hostname "${e.hostname}" is already used by tenant "${entries[first].id}": set settings.hostname to another label`,
            e.id,
            'settings.hostname',
          ),
        );
      } else if (first === undefined) firstWithHost.set(e.hostname, index);
    }
  });
  problems.push(...rangeProblems(entries.filter((e) => e.vpcCidr)));
  return problems;
}
