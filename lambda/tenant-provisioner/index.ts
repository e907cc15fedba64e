/**
 * Custom-resource handler of the tenant provisioner (one per cell, behind `custom_resources.Provider`).
 *
 * Resources it serves, by the cell's MODEL:
 *   Custom::DatabaseBootstrap  any model  roles, bookkeeping, PUBLIC revoked; pool: the shared tables
 *   Custom::PoolTenant         pool       registers the tenant (its rows can exist only once registered)
 *   Custom::BridgeTenant       bridge     the tenant's role and schema, migrated to SchemaVersion
 *   Custom::SiloTenant         silo       the silo database's application schema at SchemaVersion
 *
 * Properties are validated before any AWS call or SQL, and a resource is accepted only from its own stack.
 * Every request is idempotent. A failure throws with its reason (the provider framework fails the resource at
 * once, so the stack fails fast) after recording it in the tenant registry. Delete keeps tenant data unless
 * DeletionPolicy is "destroy". An offboarded tenant is provisioned again only with Restore "true".
 * A tenant that moves between the pool and bridge cells (registry `moving`, `movingTo`) is the move's: the
 * destination's Create builds its empty place and its Delete removes that copy when the workflow rolls the move back
 * (`moveAborted`; any other Delete of it leaves it), the source's Delete
 * keeps its data, and neither writes the registry; a resource of a cell the registry no longer places the tenant
 * in is refused on Create and Update and kept on Delete (placementOf).
 */
import type { CloudFormationCustomResourceEvent, CloudFormationCustomResourceResponse } from 'aws-lambda';
import type { Client } from 'pg';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { bootstrapDatabase } from '../../db/bootstrap';
import { dataModel } from '../../db/models';
import { deleteTenantArchives } from './archives';
import { connect, contextKey } from './connection';
import { isFleetEvent } from './fleet';
import {
  Placement,
  placementOf,
  readTenant,
  recordDone,
  recordFailure,
  recordOffboarded,
  recordStart,
} from './registry';
import { Env, parseRequest, ProvisioningInputError, readEnv, Request } from './request';

export { connectionConfig } from './connection';
export { parseRequest, ProvisioningInputError, RESOURCE_TYPES } from './request';

type Result = Pick<CloudFormationCustomResourceResponse, 'PhysicalResourceId' | 'Data'>;

export async function handler(event: CloudFormationCustomResourceEvent): Promise<Result> {
  const env = readEnv();
  // Fleet migrations have a function of their own (fleet-entry.ts): whoever may start one must not be able to
  // send this handler CloudFormation-shaped events.
  if (isFleetEvent(event)) {
    throw new ProvisioningInputError(
      "a fleet event goes to the cell's fleet runner function (FleetRunner), not to the custom-resource handler",
    );
  }
  let request: Request;
  try {
    request = parseRequest(event, env);
  } catch (e) {
    if (event.RequestType === 'Delete' && e instanceof ProvisioningInputError) {
      // A resource whose Create was refused created nothing; its rollback Delete must not fail as well.
      log('delete of an invalid resource: nothing to remove', { reason: e.message });
      return { PhysicalResourceId: event.PhysicalResourceId };
    }
    throw e;
  }

  const tenantLabel = request.tenantId ? ` for tenant "${request.tenantId}"` : '';
  const create = event.RequestType === 'Create';
  // A tenant moving between models (or moved) changes what this cell's resource of it means (placementOf).
  const item = request.kind === 'tenant' ? await readTenant(env, request.tenantId!) : undefined;
  const placement: Placement = request.kind === 'tenant' ? placementOf(item, env.model) : 'own';
  // Only a move the workflow is rolling back may have its destination's place removed.
  const rollback = placement === 'destination' && item?.moveAborted === true;
  log('request', { requestType: event.RequestType, resourceType: event.ResourceType, placement, ...request });
  if (
    request.kind === 'tenant' &&
    event.RequestType === 'Delete' &&
    placement === 'own' &&
    env.model !== 'silo' &&
    !OFFBOARDING_STACK_STATUSES.includes((await stackStatus(event.StackId)) ?? '')
  ) {
    // An update dropped the tenant's resource from its stack (a deploy from a stale catalog after a move): not an
    // offboarding, which deletes the stack. The tenant's place and its registry entry are left as they are.
    log('the tenant resource was dropped by an update of its stack, not deleted with it: nothing changed', {
      tenantId: request.tenantId,
    });
    return { PhysicalResourceId: request.physicalId };
  }
  if (
    placement === 'elsewhere' &&
    event.RequestType === 'Update' &&
    env.model === 'silo' &&
    item?.keptCopy === 'silo' &&
    (request.keptCopy === true ||
      ((event.OldResourceProperties as Record<string, unknown>).KeptCopy === 'true' &&
        (await stackStatus(event.StackId)) === 'UPDATE_ROLLBACK_IN_PROGRESS'))
  ) {
    // The silo a move out of it kept, in the tenant's stack until a purge (its resource marked so, and the
    // registry saying so): the deploy as moved, and a new release's update (a new schema version), leave its frozen
    // copy as it was; nothing reads it again but the purge that empties it. So does the rollback of a deploy that
    // marked it (its old properties unmarked), or the stack would be left UPDATE_ROLLBACK_FAILED. A stale catalog's
    // template (the tenant still listed in its silo, the resource unmarked) is refused below, as for any cell the
    // tenant left.
    log('the silo a move out of it kept: left as it is until a purge', { tenantId: request.tenantId });
    return {
      PhysicalResourceId: request.physicalId,
      Data: { TenantId: request.tenantId!, Schema: dataModel('silo').schemaOf(request.tenantId!, {}) },
    };
  }
  if (placement === 'elsewhere' && event.RequestType !== 'Delete') {
    throw new ProvisioningInputError(
      `${event.ResourceType} ${event.RequestType}${tenantLabel} refused: the registry places the tenant in another cell than this ${env.model} cell, so this is not its stack's current definition; nothing was changed: deploy its stack from its request as the registry keeps it (npm run fleet -- pull), or move it with npm run request -- move`,
    );
  }
  // Which cells the tenant's stack held before (its request's firstModel) is the move's to write, never a catalog's:
  // an Update of the tenant's own place whose request says otherwise than the registry's comes from a template that
  // predates a move (a stale catalog), and would rebuild a silo under another incarnation's names.
  if (
    request.kind === 'tenant' &&
    event.RequestType === 'Update' &&
    placement === 'own' &&
    item?.request !== undefined &&
    firstModelIn(item.request) !== firstModelIn(request.tenantRequest)
  ) {
    throw new ProvisioningInputError(
      `${event.ResourceType} Update${tenantLabel} refused: its request says firstModel ${firstModelIn(request.tenantRequest) ?? '(none)'}, the registry's ${firstModelIn(item.request) ?? '(none)'} (written by a move), so this is not its stack's current definition; nothing was changed: deploy its stack from its request as the registry keeps it (npm run fleet -- pull)`,
    );
  }
  // The registry is this provisioner's to write for a tenant of its own cell only: a move's destination and a
  // left-behind place belong to the move (the workflow writes the tenant's model, schema and status at its switch).
  const records = request.kind === 'tenant' && (placement === 'own' || placement === 'source');
  if (records && event.RequestType !== 'Delete') await recordStart(env, request, create);
  let client: Client | undefined;
  try {
    client = await connect(env, log);
    const connected = client;
    const data = await withLockRetries(
      () => carryOut(env, connected, event.RequestType, request, placement, rollback),
      log,
    );
    if (records) {
      if (event.RequestType !== 'Delete') await recordDone(env, request, data.Schema, create);
      else if (placement === 'own') await recordOffboarded(env, request, data.Schema);
    }
    log('done', { physicalId: request.physicalId, ...data });
    return { PhysicalResourceId: request.physicalId, Data: data };
  } catch (e) {
    const reason = `${event.RequestType}: ${(e as Error).message}`;
    if (records && event.RequestType !== 'Delete') {
      await recordFailure(env, request, reason, create).catch((recordError) =>
        log('could not record the failure in the registry', { error: String(recordError) }),
      );
    }
    throw new Error(
      `${event.ResourceType} ${event.RequestType}${tenantLabel} failed: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  } finally {
    await client?.end().catch(() => undefined);
  }
}

async function carryOut(
  env: Env,
  client: Client,
  requestType: CloudFormationCustomResourceEvent['RequestType'],
  r: Request,
  placement: Placement,
  rollback: boolean,
): Promise<Record<string, string>> {
  const version = r.schemaVersion;
  if (r.kind === 'bootstrap') {
    // Deleting the bootstrap resource never drops roles or data: tenant data outlives the cell's stack.
    if (requestType !== 'Delete') {
      await bootstrapDatabase(client, r.model, {
        version,
        contextKey: await contextKey(env),
        runtimeSlots: r.runtimeSlots,
      });
    }
    return { Model: r.model, SchemaVersion: String(version) };
  }
  const id = r.tenantId!;
  const model = dataModel(r.model);
  if (requestType === 'Delete') {
    // During or after a move, the tenant's data is not this resource's to destroy: a move's destination that the
    // workflow rolls back holds only a copy of the frozen source, which still serves the tenant (removed); any other
    // Delete of it during the move (a deploy from a stale catalog) leaves it as it is, since the switch may yet
    // make it the tenant's; a source or a place a move left behind is kept, unreachable, whatever the tenant's
    // deletion policy (its kept copy).
    if (placement === 'destination' && !rollback) {
      log('the destination of a move in progress: left as it is', { tenantId: id });
      return { TenantId: id, Schema: model.schemaOf(id, {}) };
    }
    const policy =
      placement === 'own' ? r.deletionPolicy : placement === 'destination' ? 'destroy' : 'retain';
    await model.offboard(client, id, policy, {});
    // Destroyed means every copy: its archives in the cell's bucket go too (after the data, so a failure here
    // leaves the archives of a tenant whose data is already gone, and the retried Delete finishes the job).
    if (placement === 'own' && r.deletionPolicy === 'destroy' && env.archiveBucket) {
      const n = await deleteTenantArchives(env.archiveBucket, id);
      log('archives deleted', { tenantId: id, bucket: env.archiveBucket, versions: n });
    }
    return { TenantId: id, Schema: model.schemaOf(id, {}) };
  }
  const done = await model.provision(client, { id, name: r.name! }, { version, restore: r.restore });
  return {
    TenantId: id,
    Schema: done.schema,
    SchemaVersion: String(done.version),
    FromVersion: String(done.fromVersion),
  };
}

/**
 * A shared cell's tenant resource offboards its tenant only while its own stack is being deleted, or its first
 * creation rolled back: never when an update of the stack drops it (CloudFormation deletes resources an update
 * removed from the template in its cleanup phase, whatever the reason they were removed).
 */
const OFFBOARDING_STACK_STATUSES = ['DELETE_IN_PROGRESS', 'ROLLBACK_IN_PROGRESS'];

let cfn: CloudFormationClient | undefined;
async function stackStatus(stackId: string): Promise<string | undefined> {
  // In a cell without NAT gateways this function's only way out is IPv6 (S3_DUALSTACK): CloudFormation's
  // dual-stack endpoint is a different host from its IPv4-only one.
  cfn ??= new CloudFormationClient({ useDualstackEndpoint: process.env.S3_DUALSTACK === 'true' });
  const r = await cfn.send(new DescribeStacksCommand({ StackName: stackId }));
  return r.Stacks?.[0]?.StackStatus;
}

/** Lock waits give up after lock_timeout (connection.ts); a deadlock loses one side. Both are worth retrying. */
const RETRIED_SQLSTATES = new Set(['55P03', '40P01']);

/**
 * Runs `work` (each of its transactions rolls back whole on failure) again when it lost a lock: a migration never
 * queues behind a tenant's long transaction (that would stall every request behind the migration's lock), it
 * steps aside and tries again, with backoff, for up to `seconds` (the stack fails with the reason after that).
 */
export async function withLockRetries<T>(
  work: () => Promise<T>,
  logFn: (message: string, fields: Record<string, unknown>) => void,
  seconds = Number(process.env.DB_LOCK_RETRY_SECONDS ?? '120'),
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  let delay = 1000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (!code || !RETRIED_SQLSTATES.has(code) || Date.now() + delay > deadline) {
        if (code && RETRIED_SQLSTATES.has(code)) {
          throw new Error(
            `${(e as Error).message} (still waiting for a lock after ${attempt} attempts over ${seconds} s: a long transaction holds it; retry the deploy once it ends)`,
            { cause: e },
          );
        }
        throw e;
      }
      logFn('lock not available; retrying', { attempt, inMs: delay, sqlstate: code });
      await sleep(delay);
      delay = Math.min(delay * 2, 15000);
    }
  }
}

export function log(message: string, fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ level: 'info', message, ...fields }));
}

/** A tenant request's `firstModel` (undefined when it has none, or is not a request). */
function firstModelIn(request: string | undefined): string | undefined {
  try {
    return (JSON.parse(request ?? '{}') as { firstModel?: string }).firstModel;
  } catch {
    return undefined;
  }
}
