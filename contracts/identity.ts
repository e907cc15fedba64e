/** How a signed-in user carries their tenant: one Cognito custom attribute, read from the verified ID token. */

/** The Cognito custom attribute (the user pool schema's name for it). */
export const TENANT_ID_ATTRIBUTE = 'tenant_id';
/** The claim the same attribute becomes in an ID token. */
export const TENANT_CLAIM = `custom:${TENANT_ID_ATTRIBUTE}`;
