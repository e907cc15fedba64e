/**
 * Who is asking, proven by AWS itself. A Lambda function is invoked with whatever event its invoker writes, so an
 * identity in the event (a function URL's requestContext) proves nothing to a function that anyone allowed
 * `lambda:InvokeFunction` on it can call directly. Instead, the request carries a signed but unsent STS
 * GetCallerIdentity request (the way aws-iam-authenticator and Vault's AWS auth prove an IAM identity): only the
 * holder of the principal's credentials can sign it, its signature covers a digest of this very request, and the
 * entry sends it to STS, which answers with the caller's ARN. A replay carries the same request only, within the
 * signature's few minutes.
 */
import { createHash } from 'crypto';

/** A signed, unsent STS request, as the client (npm run request) builds it. */
export interface CallerProof {
  /** `https://sts.<region>.amazonaws.com/` (or the global endpoint). */
  readonly url: string;
  readonly headers: Record<string, string>;
  /** `Action=GetCallerIdentity&Version=2011-06-15` */
  readonly body: string;
}

/** The signed header that binds the proof to one request: the SHA-256 of the request's payload. */
export const PAYLOAD_HEADER = 'x-tenantforge-payload-sha256';
export const STS_BODY = 'Action=GetCallerIdentity&Version=2011-06-15';
const MAX_SKEW_MS = 5 * 60 * 1000;

export class ProofRejected extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProofRejected';
  }
}

export const payloadDigest = (payload: string) => createHash('sha256').update(payload, 'utf8').digest('hex');

/**
 * Checks the proof's shape (STS only, this payload, signed, fresh), sends it to STS and returns the caller's ARN
 * as STS states it. Throws ProofRejected with the reason otherwise.
 */
export async function verifyCallerProof(
  proof: unknown,
  payload: string,
  options: { now?: number; fetch?: typeof fetch } = {},
): Promise<string> {
  const p = proof as Partial<CallerProof> | undefined;
  if (!p || typeof p.url !== 'string' || typeof p.body !== 'string' || typeof p.headers !== 'object') {
    throw new ProofRejected(
      'the request carries no caller proof: send it with npm run request (it signs an STS GetCallerIdentity request)',
    );
  }
  let url: URL;
  try {
    url = new URL(p.url);
  } catch {
    throw new ProofRejected('the caller proof names no STS endpoint');
  }
  // Only STS, so the entry never becomes a way to send signed requests anywhere else.
  if (
    url.protocol !== 'https:' ||
    !/^sts(\.[a-z]{2}(-[a-z]+)+-\d)?\.amazonaws\.com(\.cn)?$/.test(url.hostname) ||
    url.port !== '' ||
    url.pathname !== '/' ||
    url.search !== ''
  ) {
    throw new ProofRejected(`the caller proof is addressed to ${url.origin}${url.pathname}, not to STS`);
  }
  if (p.body !== STS_BODY) throw new ProofRejected('the caller proof is not a GetCallerIdentity request');
  const headers = Object.fromEntries(
    Object.entries(p.headers as Record<string, unknown>).map(([k, v]) => [k.toLowerCase(), String(v)]),
  );
  const signed = /SignedHeaders=([a-z0-9;-]+)/.exec(headers.authorization ?? '')?.[1]?.split(';') ?? [];
  if (!headers.authorization?.startsWith('AWS4-HMAC-SHA256 ') || !signed.includes(PAYLOAD_HEADER)) {
    throw new ProofRejected(`the caller proof's signature does not cover ${PAYLOAD_HEADER}`);
  }
  if (headers[PAYLOAD_HEADER] !== payloadDigest(payload)) {
    throw new ProofRejected('the caller proof was signed for another request');
  }
  const date = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(headers['x-amz-date'] ?? '');
  const signedAt = date ? Date.UTC(+date[1], +date[2] - 1, +date[3], +date[4], +date[5], +date[6]) : NaN;
  if (!(Math.abs((options.now ?? Date.now()) - signedAt) <= MAX_SKEW_MS)) {
    throw new ProofRejected('the caller proof is older than 5 minutes (or from the future): sign it again');
  }
  // The connection sets Host (from the URL, which the signature covers) and the length itself.
  const forwarded = Object.fromEntries(
    Object.entries(headers).filter(([k]) => !['host', 'content-length', 'connection'].includes(k)),
  );
  const response = await (options.fetch ?? fetch)(url.toString(), {
    method: 'POST',
    headers: forwarded,
    body: p.body,
    signal: AbortSignal.timeout(5000),
  });
  const text = await response.text();
  if (!response.ok) {
    const code = /<Code>([^<]+)<\/Code>/.exec(text)?.[1] ?? String(response.status);
    throw new ProofRejected(`STS did not accept the caller proof (${code})`);
  }
  const arn = /<Arn>([^<]+)<\/Arn>/.exec(text)?.[1];
  if (!arn) throw new ProofRejected('STS answered without a caller ARN');
  return arn;
}
