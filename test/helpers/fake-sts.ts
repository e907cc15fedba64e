/**
 * STS's GetCallerIdentity as far as the onboarding entry relies on it: it checks the request's SigV4 signature
 * against the secret of the access key that signed it (so a proof signed with anyone else's key, or altered after
 * signing, is refused as STS refuses it) and answers with that key's principal ARN. A `fetch` for jest.spyOn.
 */
import { signRequest } from '../../scripts/request';

export interface FakePrincipal {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly arn: string;
}

const xmlError = (status: number, code: string) =>
  new Response(`<ErrorResponse><Error><Type>Sender</Type><Code>${code}</Code></Error></ErrorResponse>`, {
    status,
  });

export function fakeSts(principals: readonly FakePrincipal[]): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const url = String(input);
    const headers = Object.fromEntries(
      Object.entries((init?.headers ?? {}) as Record<string, string>).map(([k, v]) => [k.toLowerCase(), v]),
    );
    const auth = headers.authorization ?? '';
    const m =
      /Credential=([^/]+)\/(\d{8})\/([a-z0-9-]+)\/sts\/aws4_request, SignedHeaders=([^,]+), Signature=/.exec(
        auth,
      );
    if (!m) return xmlError(403, 'IncompleteSignature');
    const who = principals.find((p) => p.accessKeyId === m[1]);
    if (!who) return xmlError(403, 'InvalidClientTokenId');
    const d = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(headers['x-amz-date'] ?? '');
    if (!d) return xmlError(403, 'IncompleteSignature');
    const signedAt = new Date(Date.UTC(+d[1], +d[2] - 1, +d[3], +d[4], +d[5], +d[6]));
    const signed = m[4].split(';').filter((h) => !['host', 'x-amz-date', 'x-amz-security-token'].includes(h));
    const again = await signRequest({
      url,
      body: String(init?.body ?? ''),
      headers: Object.fromEntries(signed.map((h) => [h, headers[h]])),
      service: 'sts',
      region: m[3],
      credentials: {
        accessKeyId: who.accessKeyId,
        secretAccessKey: who.secretAccessKey,
        sessionToken: headers['x-amz-security-token'],
      },
      now: signedAt,
    });
    if (again.authorization !== auth) return xmlError(403, 'SignatureDoesNotMatch');
    return new Response(
      `<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>${who.arn}</Arn><UserId>X</UserId><Account>111122223333</Account></GetCallerIdentityResult></GetCallerIdentityResponse>`,
      { status: 200 },
    );
  }) as typeof fetch;
}
