/**
 *   npm run request -- onboard --tenant <id> --model <silo|pool|bridge> --admin-email <email>
 *                      [--name <name>] [--settings '<json>'] [--restore | --restore-from <archive key> [--restore-from-model <pool|bridge>]]
 *                      [--url <entry URL>]
 *   npm run request -- offboard --tenant <id> [--url <entry URL>]
 *   npm run request -- restore --tenant <id> --from <archive key> | --abandon [--url <entry URL>]
 *   npm run request -- move --tenant <id> --to <pool|bridge|silo> [--profile <silo profile>] [--url <entry URL>]
 *   npm run request -- purge --tenant <id> [--url <entry URL>]
 *
 * Sends an onboarding, offboarding, restore, move or purge request to the Onboarding stack's entry with your AWS credentials (the usual
 * chain: AWS_PROFILE, the AWS_* variables, SSO, an instance role). It proves who you are twice: the HTTP request is
 * signed for the function URL (AWS_IAM), and it carries a signed STS GetCallerIdentity request bound to this
 * request's payload, which the entry sends to STS (lambda/onboarding-entry/caller-proof.ts). The URL is --url,
 * else ENTRY_URL, else the Onboarding stack's EntryUrl output.
 */
import { createHash, createHmac } from 'crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, SourceData } from '@smithy/types';
import { PAYLOAD_HEADER, payloadDigest, STS_BODY } from '../lambda/onboarding-entry/caller-proof';

/** SHA-256 and HMAC-SHA-256 from node:crypto, in the shape the SigV4 signer takes. */
const bytes = (d: SourceData): string | Uint8Array =>
  typeof d === 'string' ? d : d instanceof Uint8Array ? d : new Uint8Array(d as ArrayBuffer);

export class NodeSha256 {
  private hash: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
  constructor(private readonly secret?: SourceData) {
    this.hash = this.fresh();
  }
  private fresh() {
    return this.secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(this.secret));
  }
  update(data: SourceData): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {
    this.hash = this.fresh();
  }
}

/** A request signed with SigV4 for `service` in `region`, as headers to send. */
export async function signRequest(options: {
  url: string;
  body: string;
  headers?: Record<string, string>;
  service: string;
  region: string;
  credentials: AwsCredentialIdentity;
  now?: Date;
}): Promise<Record<string, string>> {
  const url = new URL(options.url);
  const signer = new SignatureV4({
    service: options.service,
    region: options.region,
    credentials: options.credentials,
    sha256: NodeSha256,
  });
  const signed = await signer.sign(
    {
      method: 'POST',
      protocol: url.protocol,
      hostname: url.hostname,
      path: url.pathname,
      query: {},
      headers: { host: url.hostname, ...options.headers },
      body: options.body,
    },
    { signingDate: options.now },
  );
  return signed.headers as Record<string, string>;
}

/** The entry's request body: the payload, and the STS proof of who sends it, bound to that payload. */
export async function entryRequestBody(options: {
  payload: string;
  region: string;
  credentials: AwsCredentialIdentity;
  now?: Date;
}): Promise<string> {
  const stsUrl = `https://sts.${options.region}.amazonaws.com/`;
  const headers = await signRequest({
    url: stsUrl,
    body: STS_BODY,
    headers: {
      'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
      [PAYLOAD_HEADER]: payloadDigest(options.payload),
    },
    service: 'sts',
    region: options.region,
    credentials: options.credentials,
    now: options.now,
  });
  return JSON.stringify({ payload: options.payload, proof: { url: stsUrl, headers, body: STS_BODY } });
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) {
    console.error(`request: --${name} needs a value`);
    process.exit(2);
  }
  return v;
}

async function entryUrl(args: string[]): Promise<string> {
  const given = flag(args, 'url') ?? process.env.ENTRY_URL;
  if (given) return given;
  const { CloudFormationClient, DescribeStacksCommand } = await import('@aws-sdk/client-cloudformation');
  const { STACK_NAMES } = await import('../contracts');
  const stack = await new CloudFormationClient({}).send(
    new DescribeStacksCommand({ StackName: STACK_NAMES.onboarding }),
  );
  const url = stack.Stacks?.[0]?.Outputs?.find((o) => o.OutputKey === 'EntryUrl')?.OutputValue;
  if (!url)
    throw new Error(`the ${STACK_NAMES.onboarding} stack has no EntryUrl output: pass --url <entry URL>`);
  return url;
}

const USAGE =
  'usage: npm run request -- onboard --tenant <id> --model <silo|pool|bridge> --admin-email <email> [--name <name>] [--settings <json>] [--restore | --restore-from <archive key> [--restore-from-model <pool|bridge>]] [--url <entry URL>]\n' +
  '       npm run request -- offboard --tenant <id> [--url <entry URL>]\n' +
  '       npm run request -- restore --tenant <id> --from <archive key> [--url <entry URL>]   (approvers: restores one of the\n' +
  "         tenant's own archives over its data; what it holds is exported first)\n" +
  '       npm run request -- restore --tenant <id> --abandon [--url <entry URL>]   (approvers: thaws a tenant a failed restore\n' +
  '         left frozen; it serves again with the data it has)\n' +
  '       npm run request -- move --tenant <id> --to <pool|bridge|silo> [--profile <standard|production|idle-friendly>]\n' +
  '         [--url <entry URL>]   (approvers: moves a tenant with its data to the other shared cell, into a silo of\n' +
  '         its own of the profile given (default standard), or out of its silo; it answers 503 meanwhile)\n' +
  '       npm run request -- purge --tenant <id> [--url <entry URL>]   (approvers: removes the copy a move kept in the\n' +
  "         cell the tenant left, and the tenant's archives there)";

async function main(): Promise<number> {
  const [action, ...args] = process.argv.slice(2);
  const tenantId = flag(args, 'tenant');
  if (!['onboard', 'offboard', 'restore', 'move', 'purge'].includes(action) || !tenantId) {
    console.error(USAGE);
    return 2;
  }
  if (action === 'restore' && (flag(args, 'from') === undefined) === !args.includes('--abandon')) {
    console.error(
      `request: restore needs --from <archive key> (npm run tenant -- export --aws printed it), or --abandon alone\n${USAGE}`,
    );
    return 2;
  }
  if (action === 'move' && flag(args, 'to') === undefined) {
    console.error(`request: move needs --to <pool|bridge|silo>\n${USAGE}`);
    return 2;
  }
  let settings: unknown;
  const rawSettings = flag(args, 'settings');
  if (rawSettings !== undefined) {
    try {
      settings = JSON.parse(rawSettings);
    } catch (e) {
      console.error(`request: --settings is not JSON (${(e as Error).message}): e.g. '{"multiAz":true}'`);
      return 2;
    }
  }
  const request =
    action === 'onboard'
      ? {
          tenantId,
          model: flag(args, 'model'),
          name: flag(args, 'name'),
          adminEmail: flag(args, 'admin-email'),
          ...(settings !== undefined ? { settings } : {}),
          ...(args.includes('--restore') ? { restore: true } : {}),
          // An archive of the pool or bridge cell (npm run tenant -- export --aws printed its key): approvers only.
          ...(flag(args, 'restore-from') !== undefined ? { restoreFrom: flag(args, 'restore-from') } : {}),
          // ... of the other shared cell (a bridge tenant from a pool tenant's archive, or the other way round).
          ...(flag(args, 'restore-from-model') !== undefined
            ? { restoreFromModel: flag(args, 'restore-from-model') }
            : {}),
        }
      : action === 'restore'
        ? // One of the tenant's own archives in its cell's bucket: approvers only.
          args.includes('--abandon')
          ? { tenantId, abandon: true }
          : { tenantId, from: flag(args, 'from') }
        : action === 'move'
          ? {
              tenantId,
              to: flag(args, 'to'),
              // Into a silo: its cost profile (the entry checks it).
              ...(flag(args, 'profile') !== undefined ? { profile: flag(args, 'profile') } : {}),
            }
          : { tenantId };
  const url = await entryUrl(args);
  const region = /\.lambda-url\.([a-z0-9-]+)\.on\.aws/.exec(new URL(url).hostname)?.[1];
  if (!region)
    throw new Error(`${url} is not a Lambda function URL (https://<id>.lambda-url.<region>.on.aws/)`);
  const { fromNodeProviderChain } = await import('@aws-sdk/credential-providers');
  const credentials = await fromNodeProviderChain()();
  const body = await entryRequestBody({ payload: JSON.stringify({ action, request }), region, credentials });
  const headers = await signRequest({
    url,
    body,
    headers: { 'content-type': 'application/json' },
    service: 'lambda',
    region,
    credentials,
  });
  const response = await fetch(url, { method: 'POST', headers, body }).catch((e: Error) => {
    throw new Error(`could not reach ${url}: ${(e.cause as Error | undefined)?.message ?? e.message}`);
  });
  const text = await response.text();
  console.log(`${response.status} ${text}`);
  return response.status === 202 ? 0 : 1;
}

if (require.main === module) {
  main()
    .then((code) => process.exit(code))
    .catch((e) => {
      console.error(`request: ${(e as Error).message}`);
      process.exit(1);
    });
}
