/** The custom resource types the stacks declare and the provisioner handler serves. */
export const PROVISIONER_RESOURCE_TYPES = {
  /** Roles, bookkeeping and PUBLIC revoked, once per database; pool: the shared tables too. */
  bootstrap: 'Custom::DatabaseBootstrap',
  silo: 'Custom::SiloTenant',
  pool: 'Custom::PoolTenant',
  bridge: 'Custom::BridgeTenant',
} as const;

/**
 * The shared cells' mobility runners (lib/constructs/mobility-runner.ts) by name: the onboarding workflow invokes
 * them to start a tenant from an archive, and its role may invoke exactly these. A silo's runner has no fixed name.
 */
export const MOBILITY_RUNNER_NAMES = {
  pool: 'tenantforge-pool-mobility',
  bridge: 'tenantforge-bridge-mobility',
} as const;

/**
 * The onboarding workflow's state machine, by name. The shared cells' mobility runners may read its executions
 * (and no other state machine's), to check that the one asking them to restore an archive into a new tenant is
 * this workflow's, running, and was started for that tenant and that archive; the reconciler reads them too.
 */
export const ONBOARDING_STATE_MACHINE_NAME = 'tenantforge-onboarding';

/**
 * The onboarding workflow's state whose task the archive's cell's runner completes with the archive's SHA-256 and
 * link (a new tenant of `to` started from an archive of `from`). The tenant's runner reads that state's output from
 * the execution's history, and trusts nothing else for them.
 */
export function vouchStateName(from: 'pool' | 'bridge', to: 'pool' | 'bridge'): string {
  const title = (m: string) => m.charAt(0).toUpperCase() + m.slice(1);
  return `Vouch${title(from)}ArchiveFor${title(to)}`;
}

/** An archive's key in its cell's bucket, as an export writes it: `tenants/<tenant id>/<name>.tfa`. */
export const ARCHIVE_OBJECT_KEY =
  /^tenants\/([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)\/[0-9A-Za-z._-]{1,120}\.tfa$/;
