/**
 * In a cell without NAT gateways (the silo and shared-cell `production` profiles, the idle-friendly silo) the
 * provisioner's and the mobility runner's functions have one way out: IPv6, through the egress-only gateway
 * (README: "Shared cell profiles", "Silo cost profiles"). An AWS client they build must then reach a host that
 * answers over IPv6: the service's dual-stack endpoint (`S3_DUALSTACK=true`), or one whose regular host is already
 * dual-stack, or a gateway endpoint inside the VPC. A client that defaults to an IPv4-only host hangs until the
 * function times out (for the provisioner: a tenant stack stuck in DELETE_FAILED).
 */
import * as fs from 'fs';
import * as path from 'path';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

const DIR = path.join(__dirname, '..', '..', 'lambda', 'tenant-provisioner');
/** Runs outside the VPC (lib/constructs/runner-task.ts: the launcher calls the ECS API only). */
const OUTSIDE_VPC = new Set(['launcher-entry.ts']);
/** Clients that need no dual-stack flag, and why (each reason is checked below). */
const EXEMPT: Record<string, string> = {
  DynamoDBClient: "the VPC's DynamoDB gateway endpoint, reached over IPv4 inside the VPC",
  SecretsManagerClient: "its dual-stack endpoint is its regular host (the SDK's own endpoint rules)",
};

/** Every `new <X>Client(...)` in the functions' sources, with the text of its arguments. */
function clientsBuilt(): { file: string; client: string; args: string }[] {
  const found: { file: string; client: string; args: string }[] = [];
  for (const file of fs.readdirSync(DIR).filter((f) => f.endsWith('.ts') && !OUTSIDE_VPC.has(f))) {
    const src = fs.readFileSync(path.join(DIR, file), 'utf8');
    for (const m of src.matchAll(/new (\w+Client)\(/g)) {
      let depth = 1;
      let i = m.index! + m[0].length;
      const start = i;
      for (; i < src.length && depth > 0; i++) depth += src[i] === '(' ? 1 : src[i] === ')' ? -1 : 0;
      found.push({ file, client: m[1], args: src.slice(start, i - 1) });
    }
  }
  return found;
}

/** The host a client sends its first request to (the request is stopped before it leaves). */
async function hostOf(
  client: { send(c: unknown): Promise<unknown>; middlewareStack: unknown },
  command: unknown,
) {
  let host: string | undefined;
  (client.middlewareStack as { add(m: unknown, o: object): void }).add(
    () => async (args: { request: { hostname: string } }) => {
      host = args.request.hostname;
      throw new Error('stopped before sending');
    },
    { step: 'finalizeRequest', name: 'captureHost' },
  );
  await expect(client.send(command)).rejects.toThrow('stopped before sending');
  return host;
}

const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };

describe("the VPC functions' AWS clients reach hosts that answer over IPv6", () => {
  test('every client either follows S3_DUALSTACK or is exempt for a stated reason', () => {
    const clients = clientsBuilt().filter((c) => c.client !== 'Client'); // pg's Client is the database
    expect(clients.map((c) => c.client)).toEqual(
      expect.arrayContaining(['CloudFormationClient', 'SecretsManagerClient', 'DynamoDBClient', 'S3Client']),
    );
    const wrong = clients.filter(
      (c) =>
        !EXEMPT[c.client] &&
        !/useDualstackEndpoint:\s*(process\.env\.S3_DUALSTACK === 'true'|!process\.env\.AWS_ENDPOINT_URL_S3)/.test(
          c.args,
        ),
    );
    expect(wrong.map((c) => `${c.file}: new ${c.client}(${c.args})`)).toEqual([]);
  });

  test("the exemptions hold: Secrets Manager's dual-stack host is its regular one; CloudFormation's is not", async () => {
    const region = 'us-east-1';
    const secrets = (useDualstackEndpoint: boolean) =>
      hostOf(
        new SecretsManagerClient({ region, credentials, useDualstackEndpoint }),
        new GetSecretValueCommand({ SecretId: 'x' }),
      );
    expect(await secrets(true)).toBe(await secrets(false));
    const cfn = (useDualstackEndpoint: boolean) =>
      hostOf(
        new CloudFormationClient({ region, credentials, useDualstackEndpoint }),
        new DescribeStacksCommand({}),
      );
    // Without the flag CloudFormation's host is the IPv4-only one: the provisioner must pass it.
    expect(await cfn(false)).toBe('cloudformation.us-east-1.amazonaws.com');
    expect(await cfn(true)).toBe('cloudformation.us-east-1.api.aws');
  });
});
