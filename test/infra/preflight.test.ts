import * as fs from 'fs';
import * as path from 'path';
import { mockClient } from 'aws-sdk-client-mock';
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
import { fleetNeeds, fleetTemplates, PreflightClients, report, runPreflight } from '../../scripts/preflight';
import { setupCommands } from '../../scripts/deploy-policies';

const sts = mockClient(STSClient);
const cfn = mockClient(CloudFormationClient);
const ssm = mockClient(SSMClient);
const acm = mockClient(ACMClient);
const quotas = mockClient(ServiceQuotasClient);
const ec2 = mockClient(EC2Client);
const elb = mockClient(ElasticLoadBalancingV2Client);

const fleet = fleetTemplates(path.join(__dirname, '..', '..', 'tenants.json'), 'us-east-1');
const clients = (docker: boolean): PreflightClients => ({
  sts: new STSClient({}),
  cfn: new CloudFormationClient({}),
  ssm: new SSMClient({}),
  acm: new ACMClient({}),
  quotas: new ServiceQuotasClient({}),
  ec2: new EC2Client({}),
  elb: new ElasticLoadBalancingV2Client({}),
  exec: async (_cmd, args) => {
    if (!docker) throw new Error('Cannot connect to the Docker daemon at unix:///var/run/docker.sock');
    return args[0] === 'info' ? '28.2.2\n' : 'github.com/docker/buildx v0.24.0\n';
  },
});

beforeEach(() => [sts, cfn, ssm, acm, quotas, ec2, elb].forEach((m) => m.reset()));

function freshAccount(): void {
  sts
    .on(GetCallerIdentityCommand)
    .resolves({ Account: '111122223333', Arn: 'arn:aws:iam::111122223333:user/ops' });
  ssm.on(GetParameterCommand).rejects(new Error('ParameterNotFound'));
  cfn.on(DescribeStacksCommand).rejects(new Error('Stack does not exist'));
  quotas.on(GetServiceQuotaCommand).resolves({ Quota: { Value: 5 } });
  ec2.on(DescribeVpcsCommand).resolves({ Vpcs: [{ VpcId: 'vpc-default' }] });
  ec2.on(DescribeAddressesCommand).resolves({ Addresses: [] });
  ec2.on(DescribeNatGatewaysCommand).resolves({ NatGateways: [] });
  elb.on(DescribeLoadBalancersCommand).resolves({ LoadBalancers: [] });
}

describe('npm run preflight', () => {
  test('counts what deploying the fleet adds, leaving out stacks that already exist', () => {
    const all = fleetNeeds(fleet.templates, new Set());
    expect(all['AWS::EC2::VPC']).toBe(4); // Pool, Bridge, two silos
    expect(all['AWS::ElasticLoadBalancingV2::LoadBalancer']).toBe(4);
    expect(fleetNeeds(fleet.templates, new Set(['Pool', 'Bridge']))['AWS::EC2::VPC']).toBe(2);
    expect(fleet.requiredBootstrapVersion).toBeGreaterThanOrEqual(6);
  });

  test('a fresh account: says what to do about the bootstrap, the certificate, a quota and Docker', async () => {
    freshAccount();
    const checks = await runPreflight(clients(false), { region: 'us-east-1', ...fleet });
    const text = report(checks);
    expect(checks.find((c) => c.name === 'credentials')).toMatchObject({ ok: true });
    expect(checks.find((c) => c.name === 'CDK bootstrap')).toMatchObject({
      ok: false,
      fix: expect.stringContaining(
        'npx cdk bootstrap aws://<account>/us-east-1 --cloudformation-execution-policies arn:aws:iam::<account>:policy/tenantforge-platform-1,arn:aws:iam::<account>:policy/tenantforge-platform-2',
      ),
    });
    expect(checks.find((c) => c.name === 'CDK bootstrap (tenants)')).toMatchObject({
      ok: false,
      fix: expect.stringContaining(
        'aws cloudformation deploy --region us-east-1 --stack-name CDKToolkit-tenants --template-file deploy/tenants-bootstrap-template.json --capabilities CAPABILITY_NAMED_IAM --parameter-overrides Qualifier=tftenants CloudFormationExecutionPolicies=arn:aws:iam::<account>:policy/tenantforge-tenants-1,',
      ),
    });
    expect(checks.find((c) => c.name === 'certificate')).toMatchObject({
      ok: false,
      fix: expect.stringContaining('aws ssm put-parameter --name /tenantforge/platform/certificate-arn'),
    });
    // 1 VPC in use + 4 to add = 5 <= 5 fits, just; a NAT gateway per AZ in each VPC needs 8 Elastic IPs.
    expect(checks.find((c) => c.name === 'VPCs per Region')).toMatchObject({ ok: true });
    expect(checks.find((c) => c.name === 'EC2-VPC Elastic IPs')).toMatchObject({ ok: false });
    expect(checks.find((c) => c.name === 'NAT gateways per Availability Zone')).toMatchObject({ ok: true });
    expect(checks.find((c) => c.name === 'Docker')).toMatchObject({ ok: false });
    expect(text).toContain('preflight: 5 things to fix before deploying');
    // The README shows exactly this output.
    const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
    const shown = /`npm run preflight` on a fresh account[^\n]*\n\n```\n([\s\S]*?)\n```/.exec(readme);
    expect(shown?.[1]).toBe(text);
  });

  test("the README's once-per-account commands are the ones npm run deploy-policies -- --commands prints", () => {
    const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
    const block = /npm run -s deploy-policies -- --commands[^\n]*\n([\s\S]*?)\naws ssm put-parameter/.exec(
      readme,
    );
    expect(block?.[1]).toBe(setupCommands('<region>').join('\n'));
  });

  test('a third silo on a fresh account goes over the default VPC quota, and the fix names the increase', async () => {
    freshAccount();
    ec2.on(DescribeVpcsCommand).resolves({ Vpcs: [{ VpcId: 'a' }, { VpcId: 'b' }] });
    const checks = await runPreflight(clients(true), { region: 'us-east-1', ...fleet });
    expect(checks.find((c) => c.name === 'VPCs per Region')).toEqual({
      name: 'VPCs per Region',
      ok: false,
      detail: '2 in use + 4 for this deploy > quota 5',
      fix: 'request an increase to at least 6: aws service-quotas request-service-quota-increase --service-code vpc --quota-code L-F678F1CE --desired-value 6',
    });
  });

  test('a ready account passes every check', async () => {
    freshAccount();
    for (const q of ['hnb659fds', 'tftenants']) {
      ssm
        .on(GetParameterCommand, { Name: `/cdk-bootstrap/${q}/version` })
        .resolves({ Parameter: { Value: '30' } });
    }
    ssm
      .on(GetParameterCommand, { Name: '/tenantforge/platform/certificate-arn' })
      .resolves({ Parameter: { Value: 'arn:aws:acm:us-east-1:111122223333:certificate/abc' } });
    acm
      .on(DescribeCertificateCommand)
      .resolves({ Certificate: { Status: 'ISSUED', DomainName: '*.saas.example.com' } });
    quotas.on(GetServiceQuotaCommand).resolves({ Quota: { Value: 50 } });
    const checks = await runPreflight(clients(true), { region: 'us-east-1', ...fleet });
    expect(checks.filter((c) => !c.ok)).toEqual([]);
    expect(report(checks)).toContain('preflight: ready to deploy');
  });
});
