/**
 * The fleet as the registry knows it: the source of truth for which tenants exist, however they were onboarded
 * (a catalog deploy records each tenant's request through its provisioner; the onboarding pipeline records
 * the requests it accepts). `npm run fleet -- pull` turns it into a catalog file that `cdk deploy --all
 * -c catalog=<file>` (and every other fleet operation) acts on. Pure: the caller reads the registry.
 */
import type { RegistryItem } from '../contracts';
import { Catalog, parseCatalog } from './catalog';

export interface FleetPull {
  /** The catalog document: one entry per tenant that is part of the fleet, and the shared cells' plans. */
  readonly catalog: { tenants: unknown[]; sharedCells?: Catalog['sharedCells'] };
  /** Tenants the registry knows that are not part of it, each with the reason. */
  readonly skipped: { tenantId: string; reason: string }[];
}

/**
 * Which registry items make the fleet: every active tenant, as its kept request defines it. `sharedCells` (the
 * plans of the catalog the fleet is deployed from) are carried over as they are: the shared cells' sizes come from
 * those plans, so a deploy from the pulled file never resizes a cell.
 */
export function fleetFromRegistry(
  items: readonly RegistryItem[],
  sharedCells?: Catalog['sharedCells'],
): FleetPull {
  const tenants: unknown[] = [];
  const skipped: FleetPull['skipped'] = [];
  for (const item of [...items].sort((a, b) => a.tenantId.localeCompare(b.tenantId))) {
    if (item.status !== 'active') {
      skipped.push({ tenantId: item.tenantId, reason: `status ${item.status}` });
    } else if (!item.request) {
      skipped.push({
        tenantId: item.tenantId,
        reason: 'no request kept in the registry: deploy it once from its catalog entry to record it',
      });
    } else {
      tenants.push(JSON.parse(item.request));
    }
  }
  const catalog = sharedCells ? { tenants, sharedCells } : { tenants };
  // The result must be a valid catalog (the same rules as any other): fail here, not at the next deploy.
  parseCatalog(catalog, 'the registry');
  return { catalog, skipped };
}
