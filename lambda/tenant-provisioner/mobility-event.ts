/**
 * The mobility runner's events (mobility.ts has the forms): what each action may name, validated before any AWS
 * call or SQL, every error naming the field, its value and the fix.
 */
import { ARCHIVE_OBJECT_KEY } from '../../contracts';
import { validateTenantId } from '../../db/naming';
import { ProvisioningInputError } from './request';

export interface MobilityEvent {
  readonly action: 'export' | 'restore' | 'replace' | 'thaw';
  readonly tenantId: string;
  /** restore: the archive's key in the cell's bucket, as an export returned it. */
  readonly archive?: string;
  /**
   * restore into a tenant being onboarded from an archive, replace, thaw: the onboarding workflow's execution (its
   * ARN), which must hold the tenant's lock with this archive recorded as the one the request names.
   */
  readonly execution?: string;
}

export function isMobilityEvent(event: unknown): event is MobilityEvent {
  return typeof event === 'object' && event !== null && 'action' in event && 'tenantId' in event;
}

/** Validates an event's fields; the error names the field, its value and the fix. */
export function parseMobilityEvent(event: MobilityEvent): {
  action: MobilityEvent['action'];
  tenantId: string;
  archive?: { key: string; tenantId: string };
  execution?: string;
} {
  const bad = (field: string, fix: string) =>
    new ProvisioningInputError(
      `mobility event field "${field}" is ${JSON.stringify((event as unknown as Record<string, unknown>)[field])}: ${fix}`,
    );
  if (!['export', 'restore', 'replace', 'thaw'].includes(event.action)) {
    throw bad('action', 'use "export" or "restore" ("replace" and "thaw" are the onboarding workflow\'s)');
  }
  const tenantId = validateTenantId(event.tenantId, 'mobility event field "tenantId"');
  if (event.action === 'export') {
    if (event.archive !== undefined)
      throw bad('archive', 'an export names no archive (it returns the one it wrote)');
    if (event.execution !== undefined)
      throw bad('execution', 'an export is asked for by an operator, never by the onboarding workflow');
    return { action: 'export', tenantId };
  }
  if (
    event.execution !== undefined &&
    (typeof event.execution !== 'string' || !/^arn:aws[a-z-]*:states:[^\s]{1,1000}$/.test(event.execution))
  ) {
    throw bad('execution', 'leave it out (only the onboarding workflow names its execution ARN here)');
  }
  if ((event.action === 'replace' || event.action === 'thaw') && event.execution === undefined) {
    throw bad(
      'execution',
      `"${event.action}" is the onboarding workflow's, for an approver's restore request: ask for it with npm run request -- restore`,
    );
  }
  if (event.action === 'thaw') {
    if (event.archive !== undefined) throw bad('archive', 'a thaw names no archive');
    return { action: 'thaw', tenantId, execution: event.execution };
  }
  const m = typeof event.archive === 'string' ? ARCHIVE_OBJECT_KEY.exec(event.archive) : null;
  if (!m) {
    throw bad(
      'archive',
      'the key of an archive in the cell\'s bucket, as an export returned it: "tenants/<tenant id>/<name>.tfa"',
    );
  }
  if (event.action === 'replace' && m[1] !== tenantId) {
    throw bad('archive', `restore over tenant "${tenantId}"'s data from one of its own archives only`);
  }
  return {
    action: event.action,
    tenantId,
    archive: { key: event.archive!, tenantId: m[1] },
    ...(event.execution !== undefined ? { execution: event.execution } : {}),
  };
}
