/**
 * Who may have a shared cell's mobility runner restore an archive into a tenant other than the archive's own, or
 * over a live tenant's data: only the onboarding workflow, for an approver's request (lambda/onboarding-entry;
 * README, "A new tenant from an archive" and "Restoring over a tenant's data"). The runner reads the registry
 * (never writes it) and asks Step Functions about the execution; any principal that can write the registry still
 * cannot start that workflow's executions.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { vouchStateName, type RegistryItem } from '../../contracts';
import { archiveStillThere } from './archives';
import { handedOverIn, startedAs } from './workflow-checks';
import type { Env } from './request';
import { ProvisioningInputError } from './request';

/** What the checks read. */
export interface ApprovalDeps {
  registryEntry(tenantId: string): Promise<RegistryItem | undefined>;
  /**
   * The onboarding workflow's execution as Step Functions states it, and the workflow's state machine ARN
   * (ONBOARDING_STATE_MACHINE_ARN): every runner's (a silo's may read its own tenant's onboardings only).
   */
  onboardingExecution?(executionArn: string): Promise<{
    status?: string;
    input?: string;
    stateMachineArn?: string;
    redriveCount?: number;
    stateMachineVersionArn?: string;
    stateMachineAliasArn?: string;
  }>;
  readonly onboardingStateMachineArn?: string;
  /**
   * The output of the execution's latest exit from the state `stateName`, as its history
   * says (undefined: it never left that state).
   */
  stateOutput?(executionArn: string, stateName: string): Promise<string | undefined>;
  readonly s3: S3Client;
  readonly bucket: string;
}

/** The registry says the tenant lives in this cell's model and serves. */
export async function expectActiveHere(tenantId: string, env: Env, deps: ApprovalDeps): Promise<void> {
  const entry = await deps.registryEntry(tenantId);
  if (!entry) {
    throw new ProvisioningInputError(
      `tenant "${tenantId}" is not in the tenant registry (${env.registryTable}): onboard it first`,
    );
  }
  if (entry.model !== env.model) {
    throw new ProvisioningInputError(
      `tenant "${tenantId}" is a ${entry.model} tenant; this is the ${env.model} cell's runner (${env.ownStack}): invoke the runner of the tenant's own cell`,
    );
  }
  if (entry.status !== 'active') {
    throw new ProvisioningInputError(
      `tenant "${tenantId}" is ${entry.status}: only an active tenant's data is exported or restored`,
    );
  }
}

/**
 * A restore of `archive` into `tenantId` for the onboarding workflow's `execution` may go ahead (throws
 * ProvisioningInputError, naming why, otherwise). Called before anything is read, and again inside the restore's
 * transaction as its last step (an execution stopped, or an archive deleted with its tenant, meanwhile writes
 * nothing).
 */
export async function expectApprovedRestore(
  archive: string,
  tenantId: string,
  execution: string,
  env: Env,
  deps: ApprovalDeps,
): Promise<void> {
  await expectHeldFor('onboard', archive, { tenantId, execution }, env, deps);
  await expectArchiveThere(archive, tenantId, deps);
}

/**
 * A restore of the tenant's own `archive` over its data, for the onboarding workflow's `execution` (an approver's
 * `restore` request), may go ahead: checked like expectApprovedRestore, with the tenant `moving` within its own
 * model instead of being onboarded.
 */
export async function expectApprovedReplace(
  archive: string,
  tenantId: string,
  execution: string,
  env: Env,
  deps: ApprovalDeps,
): Promise<void> {
  await expectHeldFor('restore', archive, { tenantId, execution }, env, deps);
  await expectArchiveThere(archive, tenantId, deps);
}

/**
 * The workflow may thaw the tenant (the failure path of such a restore, or an approver's request to abandon one):
 * the same execution still holds it, `moving` within its model, with the archive its request named (none for an
 * abandon request). Returns the registry entry.
 */
export async function expectApprovedThaw(
  tenantId: string,
  execution: string,
  env: Env,
  deps: ApprovalDeps,
): Promise<RegistryItem> {
  const entry = await deps.registryEntry(tenantId);
  return expectHeldFor('restore', entry?.restoreArchive, { tenantId, execution }, env, deps);
}

async function expectArchiveThere(archive: string, tenantId: string, deps: ApprovalDeps): Promise<void> {
  if (!(await archiveStillThere(deps.s3, deps.bucket, archive))) {
    throw new ProvisioningInputError(
      `${archive} was deleted while it was restored into tenant "${tenantId}" (its tenant offboarded with its data destroyed?); nothing was written`,
    );
  }
}

/**
 * A new tenant of the other shared cell, or a new silo, started from one of this cell's archives (an approver's
 * onboard request with `restoreFromModel`): this runner may vouch for `archive` (verify it with this cell's signing
 * key and hand the workflow a link to it). Checked like expectApprovedRestore, with the tenant in the other model
 * and the request naming this cell's bucket.
 */
export async function expectApprovedVouch(
  archive: string,
  tenantId: string,
  execution: string,
  env: Env,
  deps: ApprovalDeps,
): Promise<void> {
  const other = otherSharedModel(env);
  const tenantIn = (await deps.registryEntry(tenantId))?.model === 'silo' ? 'silo' : other;
  await expectHeldFor('onboard', archive, { tenantId, execution }, env, deps, {
    tenantIn,
    archiveIn: env.model,
  });
  await expectArchiveThere(archive, tenantId, deps);
}

/**
 * The other direction: this cell's tenant being onboarded from the other cell's archive, which that cell's runner
 * vouched for. Returns the SHA-256 and the link that runner handed to this execution's vouch task, as the
 * execution's history says (only Step Functions writes it): the only link this runner fetches and the only bytes it
 * restores. `handover`: the link the invoke names, which must be that one.
 */
export async function expectApprovedHandover(
  archive: string,
  tenantId: string,
  execution: string,
  handover: string,
  env: Env,
  deps: ApprovalDeps,
): Promise<{ sha256: string; from: string }> {
  // A shared cell's tenant starts from the other shared cell's archive; a silo's from either's (the registry names
  // which, and the execution's input must name the same: expectHeldFor).
  const from =
    env.model === 'silo'
      ? sharedModelOf((await deps.registryEntry(tenantId))?.restoreArchiveModel)
      : otherSharedModel(env);
  await expectHeldFor('onboard', archive, { tenantId, execution }, env, deps, {
    tenantIn: env.model,
    archiveIn: from,
  });
  const refuse = (why: string) =>
    new ProvisioningInputError(
      `tenant "${tenantId}" is being onboarded from ${archive} of the ${from} cell, but ${why}: nothing was written`,
    );
  const state = vouchStateName(from, env.model);
  const sha256 = await handedOverIn(
    state,
    'vouched',
    { archive, tenantId, execution, handover },
    from,
    deps,
    refuse,
  );
  return { sha256, from: `the ${from} cell's runner` };
}

/** The shared model a silo's new tenant starts from (anything else: the pool's, which expectHeldFor then refuses). */
function sharedModelOf(model: string | undefined): 'pool' | 'bridge' {
  return model === 'bridge' ? 'bridge' : 'pool';
}

/** The shared cell that is not this one (a silo's runner vouches for no archive). */
function otherSharedModel(env: Env): 'pool' | 'bridge' {
  if (env.model === 'silo') {
    throw new ProvisioningInputError(
      `the runner of ${env.ownStack} vouches for no archive: a silo's archives stay under its tenant's own key (a new tenant starts from a pool or bridge archive only)`,
    );
  }
  return env.model === 'pool' ? 'bridge' : 'pool';
}

/**
 * The registry says the onboarding workflow's `execution` holds the tenant, for `purpose`, with exactly `archive`
 * (what the onboarding entry recorded for an approved request): `onboard`, a new tenant being onboarded from it;
 * `restore`, a tenant `moving` within its own model while it is restored over. `cells`: the tenant's model and the
 * cell whose bucket holds the archive (by default both this cell's; they differ only for a new tenant started from
 * the other shared cell's archive). Step Functions says that execution is the workflow's, running as the entry
 * started it, for that purpose, tenant, model, archive and archive cell. Returns the registry entry.
 */
async function expectHeldFor(
  purpose: 'onboard' | 'restore',
  /** undefined: a thaw of an abandon request, which names none. */
  archive: string | undefined,
  parsed: { tenantId: string; execution: string },
  env: Env,
  deps: ApprovalDeps,
  cells: { tenantIn: string; archiveIn: string } = { tenantIn: env.model, archiveIn: env.model },
): Promise<RegistryItem> {
  const entry = await deps.registryEntry(parsed.tenantId);
  const doing = purpose === 'onboard' ? 'onboarded from' : 'restored from';
  const whose = cells.archiveIn === cells.tenantIn ? '' : ` of the ${cells.archiveIn} cell`;
  const refuse = (why: string) =>
    new ProvisioningInputError(
      `tenant "${parsed.tenantId}" is not being ${archive ? `${doing} ${archive}${whose}` : 'restored'} by ${parsed.execution}: ${why}; nothing was written`,
    );
  if (!entry) throw refuse(`the tenant registry (${env.registryTable}) has no such tenant`);
  if (entry.model !== cells.tenantIn) {
    throw refuse(
      cells.tenantIn === env.model
        ? `it is a ${entry.model} tenant and this is the ${env.model} cell's runner (${env.ownStack})`
        : `it is a ${entry.model} tenant, not a ${cells.tenantIn} tenant started from this ${env.model} cell's archive`,
    );
  }
  if (purpose === 'onboard' && entry.status !== 'provisioning') {
    throw refuse(`it is ${entry.status}, not being onboarded`);
  }
  if (purpose === 'restore' && (entry.status !== 'moving' || entry.movingTo !== entry.model)) {
    throw refuse(
      entry.status === 'moving'
        ? `it is moving to ${entry.movingTo ?? 'another model'}, not being restored where it is`
        : `it is ${entry.status}, not being restored`,
    );
  }
  if (entry.lock !== parsed.execution) {
    throw refuse(entry.lock ? `it is held by ${entry.lock}` : 'no execution holds it');
  }
  if (entry.restoreArchive !== archive) {
    throw refuse(
      entry.restoreArchive
        ? `its ${purpose} request names ${entry.restoreArchive}`
        : `its ${purpose} request names no archive`,
    );
  }
  const archiveIn = entry.restoreArchiveModel ?? entry.model;
  if (archive && archiveIn !== cells.archiveIn) {
    throw refuse(`its request names an archive of the ${archiveIn} cell`);
  }
  // The registry can be written by more principals than the onboarding entry: Step Functions must also say that
  // the execution is the onboarding workflow's, still running, and was started (by the entry, whose input it
  // keeps) for this tenant and this archive.
  const started = await startedAs(parsed.execution, env, deps, refuse);
  const t = started?.tenant;
  if (
    started?.action !== purpose ||
    t?.tenantId !== parsed.tenantId ||
    t?.model !== cells.tenantIn ||
    t?.restoreArchive !== archive ||
    (t?.restoreArchiveModel ?? t?.model) !== cells.archiveIn
  ) {
    throw refuse(
      `the execution was not started to ${purpose === 'onboard' ? 'onboard this tenant in this model from' : 'restore this tenant in this model from'} this archive${whose}`,
    );
  }
  return entry;
}
