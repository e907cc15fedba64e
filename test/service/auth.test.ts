import { CognitoJwtVerifier } from 'aws-jwt-verify';
import { AuthError, createAuthenticator } from '../../service/src/auth';
import { LocalIssuer, LOCAL_CLIENT_ID, LOCAL_USER_POOL_ID } from '../../service/src/local/issuer';

// The authenticator on its own: a token's signature is verified once, then remembered until the token expires.
const issuer = LocalIssuer.ephemeral();

/** The prototype that defines verify() (the verifier's base class). */
function verifyOwner(): { verify: (...a: unknown[]) => unknown } {
  for (let p = CognitoJwtVerifier.prototype; p; p = Object.getPrototypeOf(p)) {
    if (Object.prototype.hasOwnProperty.call(p, 'verify')) return p as never;
  }
  throw new Error('no verify() on the verifier');
}

test('a verified token is remembered until it expires, then verified again', async () => {
  let now = Date.now();
  const authenticate = createAuthenticator({
    userPoolId: LOCAL_USER_POOL_ID,
    clientId: LOCAL_CLIENT_ID,
    jwks: issuer.jwks,
    now: () => now,
  });
  const spy = jest.spyOn(verifyOwner(), 'verify');
  try {
    const token = issuer.idToken({ tenantId: 'acme', expiresInSeconds: 600 });
    const first = await authenticate(`Bearer ${token}`);
    const second = await authenticate(`Bearer ${token}`);
    expect(second).toEqual(first);
    expect(first.tenantId).toBe('acme');
    expect(spy).toHaveBeenCalledTimes(1);
    now += 601_000; // past the token's expiry: the remembered result is not used
    await authenticate(`Bearer ${token}`).catch(() => undefined);
    expect(spy).toHaveBeenCalledTimes(2);
  } finally {
    spy.mockRestore();
  }
});

test('only the exact text is remembered: a token altered after a good one is verified (and refused)', async () => {
  const authenticate = createAuthenticator({
    userPoolId: LOCAL_USER_POOL_ID,
    clientId: LOCAL_CLIENT_ID,
    jwks: issuer.jwks,
  });
  const token = issuer.idToken({ tenantId: 'acme' });
  await authenticate(`Bearer ${token}`);
  const [h, p, s] = token.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
  claims['custom:tenant_id'] = 'globex';
  const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
  await expect(authenticate(`Bearer ${forged}`)).rejects.toBeInstanceOf(AuthError);
});
