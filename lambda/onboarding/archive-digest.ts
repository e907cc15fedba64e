/** The workflow's recordArchiveDigest step (lambda/onboarding/index.ts lists the steps). */
import type { RegistryItem } from '../../contracts';
import { RequestRejected } from '../../lib/onboarding-rules';
import type { Step } from './index';
import { LockLost } from './index';
import { write } from './registry';

/**
 * A tenant onboarded from another shared cell's archive: records the archive's SHA-256 as that cell's runner
 * vouched for it (it verified the archive with its own signing key). Only while this execution holds the tenant,
 * being onboarded from exactly that archive of that cell; the tenant's own runner then restores a copy only if
 * its bytes give this digest. The runners never write the registry.
 */
export async function recordArchiveDigest(
  e: Extract<Step, { step: 'recordArchiveDigest' }>,
  held: (e: { tenantId: string; execution: string }, status: 'provisioning') => Promise<RegistryItem>,
): Promise<Record<string, unknown>> {
  if (typeof e.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(e.sha256)) {
    throw new Error(
      `recordArchiveDigest: sha256 ${JSON.stringify(e.sha256)} is not a SHA-256 in hex (the vouching runner's answer was not read right)`,
    );
  }
  const item = await held(e, 'provisioning');
  if (!item.restoreArchiveModel || item.restoreArchive !== e.archive) {
    throw new RequestRejected(
      `tenant "${e.tenantId}" is not being onboarded from ${e.archive} of another cell (its request names ${item.restoreArchive ?? 'no archive'}${item.restoreArchiveModel ? ` of the ${item.restoreArchiveModel} cell` : ''}): nothing was recorded`,
    );
  }
  const written = await write(e.tenantId, { restoreArchiveSha256: e.sha256 }, [], {
    lockedBy: e.execution,
    statusIn: ['provisioning'],
  });
  if (!written) {
    throw new LockLost(
      `tenant "${e.tenantId}" is no longer held by execution ${e.execution}: the archive's digest was not recorded`,
    );
  }
  return { tenantId: e.tenantId, sha256: e.sha256 };
}
