/**
 * Authentication: a Bearer ID token from the Cognito user pool, verified with aws-jwt-verify (signature,
 * expiry, issuer, token_use "id", audience = the app client). The tenant comes only from the verified
 * `custom:tenant_id` claim, which no app client may write (see the Platform stack).
 *
 * On the local platform the same verifier is used with the local issuer's JWKS preloaded (`cacheJwks`), so
 * nothing is fetched and nothing is skipped.
 */
import { CognitoJwtVerifier } from 'aws-jwt-verify';
import type { Jwks } from 'aws-jwt-verify/jwk';
import { TENANT_CLAIM } from '../../contracts';
import { tenantIdProblem } from '../../db/naming';

export { TENANT_CLAIM };

export class AuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthError';
  }
}

export interface Principal {
  readonly tenantId: string;
  readonly subject: string;
  readonly username?: string;
}

export interface AuthenticatorOptions {
  readonly userPoolId: string;
  readonly clientId: string;
  /** Preloaded keys (the local issuer); in AWS they are fetched from Cognito and cached. */
  readonly jwks?: Jwks;
}

export type Authenticate = (authorization: string | undefined) => Promise<Principal>;

export function createAuthenticator(options: AuthenticatorOptions): Authenticate {
  const verifier = CognitoJwtVerifier.create({
    userPoolId: options.userPoolId,
    tokenUse: 'id',
    clientId: options.clientId,
  });
  if (options.jwks) verifier.cacheJwks(options.jwks);
  return async (authorization) => {
    const match = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/.exec(authorization ?? '');
    if (!match) throw new AuthError('missing or malformed Authorization header: send "Bearer <ID token>"');
    let payload: Record<string, unknown>;
    try {
      payload = (await verifier.verify(match[1])) as Record<string, unknown>;
    } catch (e) {
      throw new AuthError(`invalid token: ${(e as Error).message}`);
    }
    const tenantId = payload[TENANT_CLAIM];
    if (tenantIdProblem(tenantId)) throw new AuthError(`the token carries no valid ${TENANT_CLAIM} claim`);
    return {
      tenantId: tenantId as string,
      subject: String(payload.sub),
      username:
        typeof payload['cognito:username'] === 'string' ? (payload['cognito:username'] as string) : undefined,
    };
  };
}
