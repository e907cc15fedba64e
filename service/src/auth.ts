/**
 * Authentication: a Bearer ID token from the Cognito user pool, verified with aws-jwt-verify (signature,
 * expiry, issuer, token_use "id", audience = the app client). The tenant comes only from the verified
 * `custom:tenant_id` claim, which no app client may write (see the Platform stack).
 *
 * On the local platform the same verifier is used with the local issuer's JWKS as its only keys (an offline key
 * cache): nothing is ever fetched, nothing is skipped, and a token signed by a key the issuer does not have (one
 * minted before `npm run local -- --reset`, say) gets a 401 that says so.
 */
import { createHash } from 'crypto';
import { CognitoJwtVerifier } from 'aws-jwt-verify';
import type { Jwks, JwksCache, JwkWithKid } from 'aws-jwt-verify/jwk';
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
  /** The only keys (the local issuer): never fetched. In AWS they are fetched from Cognito and cached. */
  readonly jwks?: Jwks;
  /** What to tell a caller whose token was signed by a key `jwks` does not have (local: how to get a new one). */
  readonly unknownKeyHint?: string;
  /** The clock (tests). */
  readonly now?: () => number;
}

/** Verified tokens a task remembers (expired ones, then the oldest, are forgotten first): about 300 bytes each. */
export const VERIFIED_TOKENS_KEPT = 10_000;

/** A key cache that holds `jwks` and nothing else, and never reaches the network. */
class OfflineJwks implements JwksCache {
  constructor(
    private readonly jwks: Jwks,
    private readonly hint: string,
  ) {}

  getCachedJwk(_uri: string, jwt: { header: { kid?: string } }): JwkWithKid {
    const jwk = this.jwks.keys.find((k) => k.kid !== undefined && k.kid === jwt.header.kid);
    if (!jwk) {
      throw new AuthError(
        `the token was signed with key "${String(jwt.header.kid)}", which this issuer does not have. ${this.hint}`,
      );
    }
    return jwk as JwkWithKid;
  }

  async getJwk(uri: string, jwt: { header: { kid?: string } }): Promise<JwkWithKid> {
    return this.getCachedJwk(uri, jwt);
  }

  addJwks(): void {}

  async getJwks(): Promise<Jwks> {
    return this.jwks;
  }
}

export type Authenticate = (authorization: string | undefined) => Promise<Principal>;

export function createAuthenticator(options: AuthenticatorOptions): Authenticate {
  const verifier = CognitoJwtVerifier.create(
    { userPoolId: options.userPoolId, tokenUse: 'id', clientId: options.clientId },
    options.jwks
      ? {
          jwksCache: new OfflineJwks(
            options.jwks,
            options.unknownKeyHint ?? 'Get a new token from its issuer.',
          ),
        }
      : undefined,
  );
  // Tokens already verified, by their exact text, until they expire: a token's signature is checked once per
  // task, not on every request (a flood of one tenant's requests, even refused by its limits, then costs little).
  const verified = new Map<string, { principal: Principal; expiresAt: number }>();
  const now = options.now ?? Date.now;
  return async (authorization) => {
    const match = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/.exec(authorization ?? '');
    if (!match) throw new AuthError('missing or malformed Authorization header: send "Bearer <ID token>"');
    // Keyed by a digest of the token: a large token costs the cache no more than a small one.
    const key = createHash('sha256').update(match[1]).digest('base64');
    const known = verified.get(key);
    if (known) {
      if (known.expiresAt > now()) return known.principal;
      verified.delete(key);
    }
    let payload: Record<string, unknown>;
    try {
      payload = (await verifier.verify(match[1])) as Record<string, unknown>;
    } catch (e) {
      if (e instanceof AuthError) throw e;
      throw new AuthError(`invalid token: ${(e as Error).message}`);
    }
    const tenantId = payload[TENANT_CLAIM];
    if (tenantIdProblem(tenantId)) throw new AuthError(`the token carries no valid ${TENANT_CLAIM} claim`);
    const principal: Principal = {
      tenantId: tenantId as string,
      subject: String(payload.sub),
      username:
        typeof payload['cognito:username'] === 'string' ? (payload['cognito:username'] as string) : undefined,
    };
    if (typeof payload.exp === 'number') {
      if (verified.size >= VERIFIED_TOKENS_KEPT) {
        // Expired ones go first; if none has, the oldest.
        const t = now();
        for (const [k, v] of verified) if (v.expiresAt <= t) verified.delete(k);
        if (verified.size >= VERIFIED_TOKENS_KEPT) verified.delete(verified.keys().next().value!);
      }
      verified.set(key, { principal, expiresAt: payload.exp * 1000 });
    }
    return principal;
  };
}
