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
import { awsErrorMessage, parseCli } from './cli';

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

async function entryUrl(given: string | undefined): Promise<string> {
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
  "         cell the tenant left, and the tenant's archives there)\n" +
  '\n' +
  "Sends the request to the Onboarding stack's entry (--url, or ENTRY_URL, or the stack's EntryUrl output), signed\n" +
  'with your AWS credentials (AWS_PROFILE or the AWS_* variables; AWS_REGION for the stack lookup); prints the\n' +
  "entry's answer (202: accepted).";

/** The flags each request takes (beyond --tenant and --url). */
const FLAGS: Record<string, readonly string[]> = {
  onboard: ['model', 'name', 'admin-email', 'settings', 'restore', 'restore-from', 'restore-from-model'],
  offboard: [],
  restore: ['from', 'abandon'],
  move: ['to', 'profile'],
  purge: [],
};

const usageError = (problem: string): number => {
  console.error(`npm run request: ${problem}\n\n${USAGE}`);
  return 2;
};

async function main(): Promise<number> {
  const str = { type: 'string' } as const;
  const { values, positionals } = parseCli(
    'npm run request',
    USAGE,
    {
      tenant: str,
      url: str,
      model: str,
      name: str,
      'admin-email': str,
      settings: str,
      restore: { type: 'boolean' },
      'restore-from': str,
      'restore-from-model': str,
      from: str,
      abandon: { type: 'boolean' },
      to: str,
      profile: str,
    },
    { positionals: 1 },
  );
  const v = values as Record<string, string | boolean | undefined>;
  const flag = (name: string) => v[name] as string | undefined;
  const action = positionals[0];
  if (!action) return usageError('name the request: onboard, offboard, restore, move or purge');
  if (!(action in FLAGS)) {
    return usageError(`unknown request "${action}": use onboard, offboard, restore, move or purge`);
  }
  const tenantId = flag('tenant');
  if (!tenantId) return usageError(`${action} needs --tenant <id>`);
  const misplaced = Object.keys(v).filter(
    (k) => v[k] !== undefined && !['tenant', 'url', ...FLAGS[action]].includes(k),
  );
  if (misplaced.length > 0) {
    return usageError(`${action} takes no ${misplaced.map((k) => `--${k}`).join(', ')}`);
  }
  if (action === 'restore' && (flag('from') === undefined) === !v.abandon) {
    return usageError(
      'restore needs --from <archive key> (npm run tenant -- export --aws printed it), or --abandon alone',
    );
  }
  if (action === 'move' && flag('to') === undefined) return usageError('move needs --to <pool|bridge|silo>');
  let settings: unknown;
  const rawSettings = flag('settings');
  if (rawSettings !== undefined) {
    try {
      settings = JSON.parse(rawSettings);
    } catch (e) {
      return usageError(`--settings is not JSON (${(e as Error).message}): e.g. '{"multiAz":true}'`);
    }
  }
  const request =
    action === 'onboard'
      ? {
          tenantId,
          model: flag('model'),
          name: flag('name'),
          adminEmail: flag('admin-email'),
          ...(settings !== undefined ? { settings } : {}),
          ...(v.restore ? { restore: true } : {}),
          // An archive of the pool or bridge cell (npm run tenant -- export --aws printed its key): approvers only.
          ...(flag('restore-from') !== undefined ? { restoreFrom: flag('restore-from') } : {}),
          // ... of the other shared cell (a bridge tenant from a pool tenant's archive, or the other way round).
          ...(flag('restore-from-model') !== undefined
            ? { restoreFromModel: flag('restore-from-model') }
            : {}),
        }
      : action === 'restore'
        ? // One of the tenant's own archives in its cell's bucket: approvers only.
          v.abandon
          ? { tenantId, abandon: true }
          : { tenantId, from: flag('from') }
        : action === 'move'
          ? {
              tenantId,
              to: flag('to'),
              // Into a silo: its cost profile (the entry checks it).
              ...(flag('profile') !== undefined ? { profile: flag('profile') } : {}),
            }
          : { tenantId };
  const url = await entryUrl(flag('url') ?? process.env.ENTRY_URL);
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
      console.error(`npm run request: ${awsErrorMessage(e)}`);
      process.exit(1);
    });
}
