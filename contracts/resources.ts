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
 * them to start a tenant from an archive, and its role may invoke exactly these and the silos' (siloMobilityRunnerName).
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
 * A tenant id's mark: 16 hex digits (FNV-1a, 64 bits; a name's part, not a secret: the contracts import nothing, so
 * no crypto module here). Fixed-length names and IAM patterns are built from it.
 */
export function tenantMark(tenantId: string): string {
  let h = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(tenantId)) {
    h = ((h ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
}

/**
 * A silo's mobility runner, by name: from its tenant's mark (a Lambda function's name is at most 64 characters; an
 * id may be 63), so the onboarding workflow can invoke the runner of the silo it starts from another cell's
 * archive. Its role may invoke SILO_MOBILITY_RUNNER_PATTERN.
 */
export function siloMobilityRunnerName(tenantId: string): string {
  return `tenantforge-silo-${tenantMark(tenantId)}-mobility`;
}
/** Exactly 16 characters where the mark goes: `*` in IAM would match any name with this prefix and suffix. */
export const SILO_MOBILITY_RUNNER_PATTERN = `tenantforge-silo-${'?'.repeat(16)}-mobility`;

/**
 * The onboarding workflow's state whose task the archive's cell's runner completes with the archive's SHA-256 and
 * link (a new tenant of `to` started from an archive of `from`). The tenant's runner reads that state's output from
 * the execution's history, and trusts nothing else for them.
 */
export function vouchStateName(from: 'pool' | 'bridge', to: 'pool' | 'bridge' | 'silo'): string {
  const title = (m: string) => m.charAt(0).toUpperCase() + m.slice(1);
  return `Vouch${title(from)}ArchiveFor${title(to)}`;
}

/**
 * The move workflow's state in which the source cell's runner freezes and exports the tenant and answers with the
 * archive's digest and a link to it (the destination's runner reads that answer from the execution's history).
 */
export function moveOutStateName(from: 'pool' | 'bridge' | 'silo', to: 'pool' | 'bridge' | 'silo'): string {
  const title = (m: string) => m.charAt(0).toUpperCase() + m.slice(1);
  return `MoveOut${title(from)}To${title(to)}`;
}

/**
 * The name the onboarding entry gives a request's execution: `<action>_<model>_<tenant mark>_<tenant id, cut>-<ms>-<random>`
 * (at most 80 characters). Tenant ids hold no `_`, so IAM patterns can name one tenant's executions
 * (`*_<model>_<mark>_*`), or one model's onboardings (`onboard_<model>_*`), without matching any other's.
 * `model`: the request's, for an onboarding (`x` otherwise, or when it names none).
 */
export function onboardingExecutionName(
  action: string,
  model: unknown,
  tenantId: unknown,
  now: number,
  random: string,
): string {
  const m = model === 'pool' || model === 'bridge' || model === 'silo' ? model : 'x';
  const id = String(tenantId);
  return `${action}_${m}_${tenantMark(id)}_${executionIdPart(id)}-${now}-${random}`;
}

/** The part of an execution's name that spells its tenant's id: its first 22 characters (names hold 80). */
const executionIdPart = (tenantId: string) => tenantId.replace(/[^a-z0-9-]/g, '').slice(0, 22);

/**
 * The IAM pattern of one tenant's executions of `action` for `model`: its mark and the start of its id, then the
 * `-` that follows them. The mark alone is FNV-1a, which chosen ids can collide: another id would have to share the
 * first 22 characters too (all of an id that short).
 */
export function tenantExecutionsPattern(
  action: string,
  /** `x`: a request that names no model (a purge, a restore: onboardingExecutionName). */
  model: 'pool' | 'bridge' | 'silo' | 'x',
  tenantId: string,
): string {
  return `${action}_${model}_${tenantMark(tenantId)}_${executionIdPart(tenantId)}-*`;
}

/** An archive's key in its cell's bucket, as an export writes it: `tenants/<tenant id>/<name>.tfa`. */
export const ARCHIVE_OBJECT_KEY =
  /^tenants\/([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)\/[0-9A-Za-z._-]{1,120}\.tfa$/;
