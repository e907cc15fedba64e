/** EventBridge: requests come in with REQUEST_SOURCE, the pipeline's results go out with EVENT_SOURCE. */
export const REQUEST_SOURCE = 'tenantforge.requests';
export const EVENT_SOURCE = 'tenantforge.onboarding';

export const REQUEST_DETAIL_TYPES = { onboard: 'OnboardTenant', offboard: 'OffboardTenant' } as const;
export const RESULT_DETAIL_TYPES = {
  onboarded: 'TenantOnboarded',
  onboardingFailed: 'TenantOnboardingFailed',
  offboarded: 'TenantOffboarded',
} as const;

/** The offboarding path's failure event. */
export const OFFBOARDING_FAILED_DETAIL_TYPE = 'TenantOffboardingFailed';
