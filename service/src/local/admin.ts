/**
 * Onboarding and offboarding on the local platform: `npm run onboard` / `npm run offboard`. The request is
 * validated with the catalog's rules, the registry and the provisioning code are the local platform's (the
 * same db/ code as the provisioner Lambda), and the status transitions are the pipeline's:
 * provisioning -> active (or failed, with the reason); offboarding -> offboarded.
 */
import { Client } from 'pg';
import { CatalogError } from '../../../lib/catalog';
import { TenantProvisioning } from '../../../lib/constructs/tenant-provisioning';
import { tenantIdProblem } from '../../../db/naming';
import { LocalPlatform, LocalPlatformOptions } from './platform';

export class AdminError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdminError';
  }
}

export interface OnboardRequest {
  readonly tenantId: string;
  readonly name?: string;
  readonly model: string;
  readonly settings?: Record<string, unknown>;
}

/** Validates and provisions one tenant. Refuses a tenant that exists and is not offboarded or failed. */
export async function onboard(platform: LocalPlatform, request: OnboardRequest): Promise<string> {
  let tenant;
  try {
    tenant = TenantProvisioning.tenantFrom(
      {
        id: request.tenantId,
        name: request.name ?? request.tenantId,
        model: request.model,
        settings: request.settings,
      },
      'onboard request',
    );
  } catch (e) {
    if (e instanceof CatalogError) throw new AdminError(`onboard request refused: ${e.problems.join('; ')}`);
    throw e;
  }
  const existing = await platform.registry.get(tenant.id);
  if (existing && existing.status !== 'offboarded' && existing.status !== 'failed') {
    throw new AdminError(
      `onboard request: tenant "${tenant.id}" already exists (model ${existing.model}, status ${existing.status}): choose another id, or offboard it first`,
    );
  }
  if (existing && existing.model !== tenant.model) {
    throw new AdminError(
      `onboard request: tenant "${tenant.id}" was a ${existing.model} tenant; it cannot come back as ${tenant.model}: choose another id`,
    );
  }
  await platform.provisionTenant(tenant);
  return `onboarded ${tenant.model} tenant "${tenant.id}" (${tenant.name}): status active`;
}

/** Offboards one tenant following its deletion policy (retain unless it was onboarded as disposable). */
export async function offboard(platform: LocalPlatform, tenantId: string): Promise<string> {
  const problem = tenantIdProblem(tenantId);
  if (problem) throw new AdminError(`offboard request: tenant id ${problem}`);
  const entry = await platform.registry.get(tenantId);
  if (!entry) {
    throw new AdminError(
      `offboard request: tenant "${tenantId}" is unknown: nothing was changed (see the registry, ${platform.registry.path})`,
    );
  }
  if (entry.status === 'offboarded') {
    throw new AdminError(`offboard request: tenant "${tenantId}" is already offboarded: nothing was changed`);
  }
  const policy = entry.deletionPolicy ?? 'retain';
  await platform.offboardTenant(tenantId, policy);
  return policy === 'retain'
    ? `offboarded ${entry.model} tenant "${tenantId}": access removed, data kept`
    : `offboarded ${entry.model} tenant "${tenantId}": disposable, its data was deleted`;
}

/**
 * Opens the local platform: connects to the server of a running `npm run local` when there is one, otherwise
 * starts the embedded server on the same data for the duration of the command.
 */
export async function openLocalPlatform(options: LocalPlatformOptions): Promise<LocalPlatform> {
  const port = options.pgPort ?? 54329;
  const url = `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
  const probe = new Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  probe.on('error', () => undefined);
  const running = await probe.connect().then(
    () => true,
    () => false,
  );
  if (running) await probe.end();
  return LocalPlatform.start({ ...options, serverUrl: running ? url : undefined });
}
