/**
 *   npm run preflight [-- --catalog <file>] [--region <region>]
 *
 * Checks an AWS account and region before a deploy, read-only, and says for each missing thing what to do:
 * credentials, the CDK bootstrap (present and recent enough), the load balancers' certificate, the quotas the
 * fleet needs (VPCs, Elastic IPs, NAT gateways per AZ, Application Load Balancers) against what is in use, and a
 * Docker engine able to build the API image for its platform. Exits 1 when anything must be fixed first.
 */
import { execFile } from 'child_process';
import * as path from 'path';
import { promisify } from 'util';
import { App } from 'aws-cdk-lib';
import { ACMClient, DescribeCertificateCommand } from '@aws-sdk/client-acm';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import {
  DescribeAddressesCommand,
  DescribeNatGatewaysCommand,
  DescribeVpcsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import {
  DescribeLoadBalancersCommand,
  ElasticLoadBalancingV2Client,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { GetServiceQuotaCommand, ServiceQuotasClient } from '@aws-sdk/client-service-quotas';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { BOOTSTRAP_QUALIFIERS, ssmNames } from '../contracts';
import { bootstrapCommand } from './deploy-policies';
import { CatalogError, loadCatalog } from '../lib/catalog';
import { buildFleet } from '../lib/fleet';

export interface Check {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
  /** What to do, when not ok. */
  readonly fix?: string;
}

export interface PreflightClients {
  sts: STSClient;
  cfn: CloudFormationClient;
  ssm: SSMClient;
  acm: ACMClient;
  quotas: ServiceQuotasClient;
  ec2: EC2Client;
  elb: ElasticLoadBalancingV2Client;
  /** Runs a local command (docker); rejects when it fails. */
  exec: (cmd: string, args: string[]) => Promise<string>;
}

/** The quotas the fleet uses: service, code, what counts toward it, and the resource type that needs it. */
const QUOTAS = [
  { name: 'VPCs per Region', service: 'vpc', code: 'L-F678F1CE', type: 'AWS::EC2::VPC' },
  { name: 'EC2-VPC Elastic IPs', service: 'ec2', code: 'L-0263D0A3', type: 'AWS::EC2::EIP' },
  {
    name: 'NAT gateways per Availability Zone',
    service: 'vpc',
    code: 'L-FE5A380F',
    type: 'AWS::EC2::NatGateway',
  },
  {
    name: 'Application Load Balancers per Region',
    service: 'elasticloadbalancing',
    code: 'L-53DA6B97',
    type: 'AWS::ElasticLoadBalancingV2::LoadBalancer',
  },
] as const;

/** What deploying the fleet adds: resources of each quota's type in the stacks that do not exist yet. */
export function fleetNeeds(
  templates: Record<string, { Resources?: Record<string, { Type: string }> }>,
  deployed: ReadonlySet<string>,
): Record<string, number> {
  const needs: Record<string, number> = {};
  for (const [stack, t] of Object.entries(templates)) {
    if (deployed.has(stack)) continue;
    for (const r of Object.values(t.Resources ?? {})) needs[r.Type] = (needs[r.Type] ?? 0) + 1;
  }
  return needs;
}

async function inUse(c: PreflightClients, type: string): Promise<number> {
  switch (type) {
    case 'AWS::EC2::VPC':
      return (await c.ec2.send(new DescribeVpcsCommand({}))).Vpcs?.length ?? 0;
    case 'AWS::EC2::EIP':
      return (await c.ec2.send(new DescribeAddressesCommand({}))).Addresses?.length ?? 0;
    case 'AWS::EC2::NatGateway': {
      const r = await c.ec2.send(
        new DescribeNatGatewaysCommand({ Filter: [{ Name: 'state', Values: ['pending', 'available'] }] }),
      );
      // Per AZ: the busiest one counts.
      const perSubnet = new Map<string, number>();
      for (const n of r.NatGateways ?? [])
        perSubnet.set(n.SubnetId ?? '', (perSubnet.get(n.SubnetId ?? '') ?? 0) + 1);
      return (r.NatGateways ?? []).length === 0 ? 0 : Math.max(...perSubnet.values(), 0);
    }
    default:
      return (
        (await c.elb.send(new DescribeLoadBalancersCommand({}))).LoadBalancers?.filter(
          (l) => l.Type === 'application',
        ).length ?? 0
      );
  }
}

export async function runPreflight(
  c: PreflightClients,
  options: {
    region: string;
    templates: Record<string, { Resources?: Record<string, { Type: string }> }>;
    /** The bootstrap version the synthesized stacks require (their manifest says). */
    requiredBootstrapVersion: number;
    qualifier?: string;
  },
): Promise<Check[]> {
  const checks: Check[] = [];
  const qualifier = options.qualifier ?? BOOTSTRAP_QUALIFIERS.platform;
  try {
    const me = await c.sts.send(new GetCallerIdentityCommand({}));
    checks.push({
      name: 'credentials',
      ok: true,
      detail: `account ${me.Account} as ${me.Arn}, region ${options.region}`,
    });
  } catch (e) {
    checks.push({
      name: 'credentials',
      ok: false,
      detail: (e as Error).message,
      fix: 'configure AWS credentials (aws configure, AWS_PROFILE or the AWS_* environment variables) for the target account',
    });
    return checks;
  }

  // Two bootstraps: the shared stacks' and the tenant stacks' own (whose execution role can create only what
  // tenant stacks hold, and is the only one the onboarding job may use).
  for (const [name, q, command] of [
    ['CDK bootstrap', qualifier, bootstrapCommand('platform', options.region)],
    ['CDK bootstrap (tenants)', BOOTSTRAP_QUALIFIERS.tenants, bootstrapCommand('tenants', options.region)],
  ] as const) {
    try {
      const v = await c.ssm.send(new GetParameterCommand({ Name: `/cdk-bootstrap/${q}/version` }));
      const version = Number(v.Parameter?.Value);
      checks.push(
        version >= options.requiredBootstrapVersion
          ? { name, ok: true, detail: `version ${version} (qualifier ${q})` }
          : {
              name,
              ok: false,
              detail: `version ${version} is older than the ${options.requiredBootstrapVersion} these stacks require`,
              fix: `run it again: ${command}`,
            },
      );
    } catch {
      checks.push({
        name,
        ok: false,
        detail: `no /cdk-bootstrap/${q}/version parameter: this account and region are not bootstrapped for it`,
        fix: `create the policies in deploy/ (README, Deploy), then: ${command}`,
      });
    }
  }

  try {
    const arn = (await c.ssm.send(new GetParameterCommand({ Name: ssmNames.certificateArn }))).Parameter!
      .Value!;
    const cert = (await c.acm.send(new DescribeCertificateCommand({ CertificateArn: arn }))).Certificate;
    checks.push(
      cert?.Status === 'ISSUED'
        ? { name: 'certificate', ok: true, detail: `${cert.DomainName} (${arn})` }
        : {
            name: 'certificate',
            ok: false,
            detail: `${arn} is ${cert?.Status ?? 'missing'}`,
            fix: "finish the certificate's validation in ACM (DNS records), or point the parameter at an issued certificate",
          },
    );
  } catch (e) {
    checks.push({
      name: 'certificate',
      ok: false,
      detail: `${ssmNames.certificateArn}: ${(e as Error).message}`,
      fix: `request or import a certificate in ACM, then: aws ssm put-parameter --name ${ssmNames.certificateArn} --type String --value <certificate ARN>`,
    });
  }

  const deployed = new Set<string>();
  for (const stack of Object.keys(options.templates)) {
    try {
      await c.cfn.send(new DescribeStacksCommand({ StackName: stack }));
      deployed.add(stack);
    } catch {
      // not deployed yet: its resources are new
    }
  }
  const needs = fleetNeeds(options.templates, deployed);
  for (const q of QUOTAS) {
    // NAT gateways count per AZ: each VPC puts one in each of its AZs, so an AZ gets one per VPC.
    const need =
      q.type === 'AWS::EC2::NatGateway'
        ? Math.min(needs[q.type] ?? 0, needs['AWS::EC2::VPC'] ?? 0)
        : (needs[q.type] ?? 0);
    if (need === 0) continue;
    const quota = (
      await c.quotas.send(new GetServiceQuotaCommand({ ServiceCode: q.service, QuotaCode: q.code }))
    ).Quota?.Value;
    const used = await inUse(c, q.type);
    const limit = quota ?? 0;
    checks.push(
      used + need <= limit
        ? { name: q.name, ok: true, detail: `${used} in use + ${need} for this deploy <= quota ${limit}` }
        : {
            name: q.name,
            ok: false,
            detail: `${used} in use + ${need} for this deploy > quota ${limit}`,
            fix: `request an increase to at least ${used + need}: aws service-quotas request-service-quota-increase --service-code ${q.service} --quota-code ${q.code} --desired-value ${used + need}`,
          },
    );
  }

  try {
    const server = (await c.exec('docker', ['info', '--format', '{{.ServerVersion}}'])).trim();
    const buildx = (await c.exec('docker', ['buildx', 'version'])).trim();
    checks.push({ name: 'Docker', ok: true, detail: `engine ${server}; ${buildx.split('\n')[0]}` });
  } catch (e) {
    checks.push({
      name: 'Docker',
      ok: false,
      detail: `no Docker engine with buildx answered: ${(e as Error).message.split('\n')[0]}`,
      fix: 'start Docker (with buildx) on the machine that deploys the Platform stack: it builds the API image once per release; any CPU can build it (the image only copies files into the target platform)',
    });
  }
  return checks;
}

export function report(checks: readonly Check[]): string {
  const lines = checks.map(
    (c) => `${c.ok ? 'ok  ' : 'FIX '} ${c.name}: ${c.detail}${c.fix ? `\n       -> ${c.fix}` : ''}`,
  );
  const failed = checks.filter((c) => !c.ok).length;
  lines.push(
    failed === 0
      ? 'preflight: ready to deploy'
      : `preflight: ${failed} thing${failed === 1 ? '' : 's'} to fix before deploying`,
  );
  return lines.join('\n');
}

/** The fleet's templates, synthesized in memory from the catalog (no compliance packs: this only counts). */
export function fleetTemplates(
  catalogPath: string,
  region: string,
): {
  templates: Record<string, { Resources?: Record<string, { Type: string }> }>;
  requiredBootstrapVersion: number;
} {
  const app = new App({ context: { 'aws:cdk:disable-creation-stack-traces': true } });
  buildFleet(app, loadCatalog(catalogPath), { env: { region }, skipChecks: true });
  const assembly = app.synth();
  return {
    templates: Object.fromEntries(assembly.stacks.map((s) => [s.stackName, s.template])),
    requiredBootstrapVersion: Math.max(...assembly.stacks.map((s) => s.requiresBootstrapStackVersion ?? 0)),
  };
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const flag = (n: string) => (args.includes(`--${n}`) ? args[args.indexOf(`--${n}`) + 1] : undefined);
  if (args.includes('--help')) {
    console.log('usage: npm run preflight [-- --catalog <file>] [--region <region>]');
    process.exit(0);
  }
  const region = flag('region') ?? process.env.AWS_REGION ?? process.env.CDK_DEFAULT_REGION ?? 'us-east-1';
  const run = promisify(execFile);
  const config = { region };
  (async () => {
    const fleet = fleetTemplates(flag('catalog') ?? path.join(__dirname, '..', 'tenants.json'), region);
    const checks = await runPreflight(
      {
        sts: new STSClient(config),
        cfn: new CloudFormationClient(config),
        ssm: new SSMClient(config),
        acm: new ACMClient(config),
        quotas: new ServiceQuotasClient(config),
        ec2: new EC2Client(config),
        elb: new ElasticLoadBalancingV2Client(config),
        exec: async (cmd, a) => (await run(cmd, a, { timeout: 15000 })).stdout,
      },
      { region, ...fleet },
    );
    console.log(report(checks));
    process.exit(checks.every((c) => c.ok) ? 0 : 1);
  })().catch((e) => {
    console.error(e instanceof CatalogError ? e.message : `preflight: ${(e as Error).message}`);
    process.exit(1);
  });
}
