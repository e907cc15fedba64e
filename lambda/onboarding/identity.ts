/**
 * A tenant's users in the platform's Cognito user pool. Onboarding invites the tenant's first administrator with
 * the tenant claim set by the platform (no app client may write it); offboarding disables every user of the
 * tenant and signs them out; a restore enables them again. Each tenant's users are one group, `tenant-<id>`.
 */
import {
  AdminAddUserToGroupCommand,
  AdminCreateUserCommand,
  AdminDisableUserCommand,
  AdminEnableUserCommand,
  AdminGetUserCommand,
  AdminUserGlobalSignOutCommand,
  CognitoIdentityProviderClient,
  CreateGroupCommand,
  ListUsersInGroupCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { TENANT_CLAIM } from '../../contracts';

const cognito = new CognitoIdentityProviderClient({});

function userPoolId(): string {
  const id = process.env.USER_POOL_ID;
  if (!id) throw new Error('onboarding misconfigured: USER_POOL_ID is not set');
  return id;
}

export const tenantGroup = (tenantId: string) => `tenant-${tenantId}`;

async function usersOf(tenantId: string): Promise<string[]> {
  const users: string[] = [];
  let token: string | undefined;
  do {
    const page = await cognito.send(
      new ListUsersInGroupCommand({
        UserPoolId: userPoolId(),
        GroupName: tenantGroup(tenantId),
        NextToken: token,
      }),
    );
    users.push(...(page.Users ?? []).map((u) => u.Username!));
    token = page.NextToken;
  } while (token);
  return users;
}

/** A new tenant: its group and its first administrator, invited by email. A restore: its users enabled again. */
export async function inviteAdmin(tenant: {
  tenantId: string;
  adminEmail?: string;
  restore?: boolean;
}): Promise<Record<string, unknown>> {
  const UserPoolId = userPoolId();
  if (tenant.restore) {
    const users = await usersOf(tenant.tenantId);
    for (const Username of users) await cognito.send(new AdminEnableUserCommand({ UserPoolId, Username }));
    return { enabled: users.length };
  }
  if (!tenant.adminEmail) throw new Error(`tenant "${tenant.tenantId}" has no administrator to invite`);
  await cognito
    .send(
      new CreateGroupCommand({
        UserPoolId,
        GroupName: tenantGroup(tenant.tenantId),
        Description: `Users of tenant ${tenant.tenantId}`,
      }),
    )
    .catch((e: Error) => {
      if (e.name !== 'GroupExistsException') throw e;
    });
  try {
    await cognito.send(
      new AdminCreateUserCommand({
        UserPoolId,
        Username: tenant.adminEmail,
        UserAttributes: [
          { Name: 'email', Value: tenant.adminEmail },
          { Name: 'email_verified', Value: 'true' },
          { Name: TENANT_CLAIM, Value: tenant.tenantId },
        ],
        DesiredDeliveryMediums: ['EMAIL'],
      }),
    );
  } catch (e) {
    if ((e as Error).name !== 'UsernameExistsException') throw e;
    // A retried step: the user exists. It must be this tenant's user, never another tenant's.
    const user = await cognito.send(new AdminGetUserCommand({ UserPoolId, Username: tenant.adminEmail }));
    const claim = user.UserAttributes?.find((a) => a.Name === TENANT_CLAIM)?.Value;
    if (claim !== tenant.tenantId) {
      throw new Error(
        `${tenant.adminEmail} is already a user of another tenant: a user belongs to one tenant; name another administrator`,
      );
    }
  }
  await cognito.send(
    new AdminAddUserToGroupCommand({
      UserPoolId,
      Username: tenant.adminEmail,
      GroupName: tenantGroup(tenant.tenantId),
    }),
  );
  return { invited: tenant.adminEmail };
}

/** Offboarding: every user of the tenant disabled and signed out everywhere (their refresh tokens revoked). */
export async function disableUsers(tenantId: string): Promise<Record<string, unknown>> {
  const UserPoolId = userPoolId();
  const users = await usersOf(tenantId).catch((e: Error) => {
    if (e.name === 'ResourceNotFoundException') return [] as string[];
    throw e;
  });
  for (const Username of users) {
    await cognito.send(new AdminDisableUserCommand({ UserPoolId, Username }));
    await cognito.send(new AdminUserGlobalSignOutCommand({ UserPoolId, Username }));
  }
  return { disabled: users.length };
}
