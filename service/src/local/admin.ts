/**
 * Onboarding and offboarding on the local platform: `npm run onboard` / `npm run offboard`. The request is
 * validated with the catalog's rules and the registry's (lib/onboarding-rules.ts, the same as the pipeline's:
 * no duplicate, no reuse of a retired id without an explicit restore, no VPC range overlapping another silo's),
 * the registry and the provisioning code are the local platform's (the same db/ code as the provisioner Lambda),
 * and the status transitions are the pipeline's: provisioning -> active (or failed, with the reason);
 * offboarding -> offboarded.
 */
import { Client } from 'pg';
import {
  adminEmailOf,
  checkOffboarding,
  checkSiloRanges,
  offboardingTenantId,
  OnboardingRequest,
  onboardingDecision,
  RequestRejected,
  requestedVpcCidr,
} from '../../../lib/onboarding-rules';
import { tenantIdProblem } from '../../../db/naming';
import { LocalPlatform, LocalPlatformOptions } from './platform';
import { withTenantLock } from './tenant-lock';
import { defaultAdminEmail, LocalUserError } from './users';

/** A refused request (the pipeline's RequestRejected): nothing was changed. */
export const AdminError = RequestRejected;

export interface OnboardRequest extends OnboardingRequest {
  readonly tenantId: string;
  readonly model: string;
}

/** Validates and provisions one tenant, with the pipeline's rules (lib/onboarding-rules.ts). */
export async function onboard(platform: LocalPlatform, request: OnboardRequest): Promise<string> {
  const existing = tenantIdProblem(request.tenantId)
    ? undefined
    : await platform.registry.get(request.tenantId);
  const { tenant, restore, restoreArchive } = onboardingDecision(request, existing);
  if (restoreArchive !== undefined) {
    // Locally, archives are files: a new tenant starts from one with npm run tenant -- restore --as.
    throw new RequestRejected(
      `onboard request refused: "restoreFrom" names an archive in a cell's bucket in AWS; on the local platform, onboard "${tenant.id}" with npm run tenant -- restore --from <file> --tenant <its tenant> --as ${tenant.id}`,
    );
  }
  const silos = Object.values(platform.registry.readAll())
    .filter((e) => e.model === 'silo' && e.status !== 'offboarded')
    .map((e) => ({ tenantId: e.tenantId, vpcCidr: requestedVpcCidr(e.request) }));
  checkSiloRanges(tenant, silos);
  // Locally the first administrator may be left out: admin@<id>.example is invited.
  const adminEmail = adminEmailOf(request, false);
  try {
    platform.users.checkInvitable(tenant.id, adminEmail ?? defaultAdminEmail(tenant.id));
  } catch (e) {
    if (e instanceof LocalUserError) throw new RequestRejected(`onboard request refused: ${e.message}`);
    throw e;
  }
  await platform.provisionTenant(tenant, {
    restore,
    adminEmail,
    request: JSON.stringify({
      id: tenant.id,
      name: tenant.name,
      model: tenant.model,
      settings: request.settings ?? {},
    }),
  });
  const users = platform.users
    .all()
    .filter((u) => u.tenantId === tenant.id && u.enabled)
    .map((u) => u.email);
  return restore
    ? `restored ${tenant.model} tenant "${tenant.id}" (${tenant.name}) with its kept data: status active; users enabled again: ${users.join(', ')}`
    : `onboarded ${tenant.model} tenant "${tenant.id}" (${tenant.name}): status active; administrator ${users[0]} (npm run -s token -- ${tenant.id})`;
}

/** Offboards one tenant following its deletion policy (retain unless it was onboarded as disposable). */
export async function offboard(platform: LocalPlatform, tenantId: string): Promise<string> {
  const id = offboardingTenantId(tenantId);
  const entry = await platform.registry.get(id);
  checkOffboarding(id, entry);
  const policy = entry!.deletionPolicy ?? 'retain';
  // Not while a move or restore of the tenant runs (they hold its lock), and checked again under the lock.
  await withTenantLock(platform, id, async () => {
    checkOffboarding(id, await platform.registry.get(id));
    await platform.offboardTenant(id, policy);
  });
  return policy === 'retain'
    ? `offboarded ${entry!.model} tenant "${id}": its users disabled, access removed, data kept`
    : `offboarded ${entry!.model} tenant "${id}": its users disabled, disposable, its data was deleted`;
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
