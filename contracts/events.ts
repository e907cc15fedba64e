/**
 * EventBridge: the pipeline's results go out with EVENT_SOURCE. Requests come in through the onboarding entry
 * (an IAM-authorized function URL), never from the event bus, where anyone allowed events:PutEvents could send one.
 */
export const EVENT_SOURCE = 'tenantforge.onboarding';
export const RESULT_DETAIL_TYPES = {
  onboarded: 'TenantOnboarded',
  onboardingFailed: 'TenantOnboardingFailed',
  offboarded: 'TenantOffboarded',
} as const;

/** The offboarding path's failure event. */
export const OFFBOARDING_FAILED_DETAIL_TYPE = 'TenantOffboardingFailed';

/** A restore over a tenant's data (an approver's `restore` request): its result events. */
export const RESTORE_DETAIL_TYPES = {
  restored: 'TenantRestored',
  restoreFailed: 'TenantRestoreFailed',
} as const;

/** A move between the pool and bridge cells (an approver's `move` request): done, or failed and rolled back. */
export const MOVE_DETAIL_TYPES = {
  moved: 'TenantMoved',
  moveFailed: 'TenantMoveFailed',
  /** The copy a move kept was removed (an approver's `purge` request). */
  copyPurged: 'TenantCopyPurged',
} as const;
