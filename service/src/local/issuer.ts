/**
 * The local platform's token issuer: an RSA key of its own under .local/issuer, and ID tokens shaped exactly
 * like Cognito's (issuer URL, audience = app client, token_use "id", custom:tenant_id), so the API verifies
 * them with the same CognitoJwtVerifier it uses in AWS, its JWKS preloaded instead of fetched.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  createSign,
  generateKeyPairSync,
  KeyObject,
  randomUUID,
} from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { Jwks } from 'aws-jwt-verify/jwk';
import { TENANT_CLAIM } from '../../../contracts';

export const LOCAL_REGION = 'us-east-1';
export const LOCAL_USER_POOL_ID = `${LOCAL_REGION}_TenantForgeLocal`;
export const LOCAL_CLIENT_ID = 'tenantforge-local-client';
/** The local API's 401 for a token signed by a key this issuer does not have. */
export const LOCAL_UNKNOWN_KEY_HINT =
  'It was minted by another local issuer (before `npm run local -- --reset`, or in another checkout): get a new one with: npm run -s token -- <tenant id>';
export const LOCAL_ISSUER = `https://cognito-idp.${LOCAL_REGION}.amazonaws.com/${LOCAL_USER_POOL_ID}`;

export interface TokenRequest {
  readonly tenantId: string;
  /** @default 'demo-user' */
  readonly username?: string;
  /** @default 3600 */
  readonly expiresInSeconds?: number;
  /** Claim overrides, for tests of bad tokens. */
  readonly overrides?: Record<string, unknown>;
}

export class LocalIssuer {
  readonly kid: string;

  private constructor(private readonly privateKey: KeyObject) {
    const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
    this.kid = createHash('sha256').update(spki).digest('base64url').slice(0, 16);
  }

  /** Loads the key from `dir`, creating it on first use (so tokens stay valid across restarts). */
  static open(dir: string): LocalIssuer {
    const file = path.join(dir, 'issuer-key.pem');
    if (!fs.existsSync(file)) {
      fs.mkdirSync(dir, { recursive: true });
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      fs.writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    }
    return new LocalIssuer(createPrivateKey(fs.readFileSync(file)));
  }

  /** A fresh in-memory issuer (tests). */
  static ephemeral(): LocalIssuer {
    return new LocalIssuer(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
  }

  get jwks(): Jwks {
    const jwk = createPublicKey(this.privateKey).export({ format: 'jwk' }) as { n: string; e: string };
    return { keys: [{ kty: 'RSA', n: jwk.n, e: jwk.e, kid: this.kid, alg: 'RS256', use: 'sig' }] };
  }

  idToken(request: TokenRequest): string {
    const now = Math.floor(Date.now() / 1000);
    const username = request.username ?? 'demo-user';
    const payload = {
      sub: uuidFrom(`${request.tenantId}/${username}`),
      iss: LOCAL_ISSUER,
      aud: LOCAL_CLIENT_ID,
      token_use: 'id',
      auth_time: now,
      iat: now,
      exp: now + (request.expiresInSeconds ?? 3600),
      jti: randomUUID(),
      'cognito:username': username,
      email: username.includes('@') ? username : `${username}@${request.tenantId}.example`,
      [TENANT_CLAIM]: request.tenantId,
      ...request.overrides,
    };
    return this.sign({ alg: 'RS256', kid: this.kid, typ: 'JWT' }, payload);
  }

  sign(header: Record<string, unknown>, payload: Record<string, unknown>): string {
    const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const input = `${enc(header)}.${enc(payload)}`;
    const signature = createSign('RSA-SHA256').update(input).sign(this.privateKey).toString('base64url');
    return `${input}.${signature}`;
  }
}

function uuidFrom(s: string): string {
  const h = createHash('sha256').update(s).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
