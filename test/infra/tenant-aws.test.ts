import { mockClient } from 'aws-sdk-client-mock';
import { CloudFormationClient, ListStackResourcesCommand } from '@aws-sdk/client-cloudformation';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { findMobilityRunner, runAwsMobility } from '../../scripts/tenant-aws';

// npm run tenant -- export|restore --aws, with CloudFormation and Lambda stubbed at the SDK boundary (the runner
// itself runs for real in test/lambda/mobility-runner.test.ts).
const cfnMock = mockClient(CloudFormationClient);
const lambdaMock = mockClient(LambdaClient);
const encode = (x: unknown) => new TextEncoder().encode(JSON.stringify(x)) as never;
const resource = (type: string, logicalId: string, physicalId = logicalId) => ({
  ResourceType: type,
  LogicalResourceId: logicalId,
  PhysicalResourceId: physicalId,
  ResourceStatus: 'CREATE_COMPLETE' as const,
  LastUpdatedTimestamp: new Date(),
});
const runner = (stack: string) =>
  resource('AWS::Lambda::Function', 'CellMobilityRunner2A250C2D', `${stack}-mobility-runner`);
const clients = () => ({ cfn: new CloudFormationClient({}), lambda: new LambdaClient({}) });

beforeEach(() => {
  cfnMock.reset();
  lambdaMock.reset();
  const stacks: Record<string, ReturnType<typeof resource>[]> = {
    'Tenant-acme': [resource('Custom::PoolTenant', 'DefaultTenant')],
    'Tenant-hooli': [resource('Custom::BridgeTenant', 'DefaultTenant')],
    // Moved from pool to bridge: its place in bridge, under the id a tenant's other models get.
    'Tenant-wonka': [resource('Custom::BridgeTenant', 'TenantBridge')],
    // ... and one whose move's last deploy has not dropped its pool place yet.
    'Tenant-gloop': [
      resource('Custom::PoolTenant', 'Tenant'),
      resource('Custom::BridgeTenant', 'TenantBridge'),
    ],
    'Tenant-northwind': [
      resource('Custom::SiloTenant', 'DefaultTenant'),
      resource('AWS::Lambda::Function', 'DefaultCellProvisionerFleetRunner991F4907'),
      { ...runner('Tenant-northwind'), LogicalResourceId: 'DefaultCellMobilityRunner2A250C2D' },
    ],
    Pool: [resource('AWS::Lambda::Function', 'CellProvisionerFleetRunner991F4907'), runner('Pool')],
    Bridge: [resource('AWS::Lambda::Function', 'CellProvisionerFleetRunner991F4907')],
  };
  cfnMock.on(ListStackResourcesCommand).callsFake(({ StackName }: { StackName: string }) => {
    if (!stacks[StackName]) throw new Error(`Stack with id ${StackName} does not exist`);
    return { StackResourceSummaries: stacks[StackName] };
  });
});

test("the runner is the tenant's cell's: the pool cell's for a pool tenant, the silo stack's own for a silo", async () => {
  expect(await findMobilityRunner(new CloudFormationClient({}), 'acme')).toEqual({
    tenantId: 'acme',
    model: 'pool',
    stack: 'Pool',
    functionName: 'Pool-mobility-runner',
  });
  expect(await findMobilityRunner(new CloudFormationClient({}), 'northwind')).toEqual({
    tenantId: 'northwind',
    model: 'silo',
    stack: 'Tenant-northwind',
    functionName: 'Tenant-northwind-mobility-runner',
  });
});

test("a moved tenant's runner is its new cell's; a stack that still holds both cells' places is named with the fix", async () => {
  // (This fixture's Bridge stack has no runner yet: the error names the cell the tenant's stack points at.)
  await expect(findMobilityRunner(new CloudFormationClient({}), 'wonka')).rejects.toThrow(
    'stack Bridge has no mobility runner',
  );
  await expect(findMobilityRunner(new CloudFormationClient({}), 'gloop')).rejects.toThrow(
    "stack Tenant-gloop holds the tenant's place in pool and bridge: a move between them is under way, or its last deploy failed",
  );
});

test('a tenant with no stack, or a cell not yet deployed with a runner, is named with the fix', async () => {
  await expect(findMobilityRunner(new CloudFormationClient({}), 'nobody')).rejects.toThrow(
    'tenant "nobody" has no stack Tenant-nobody in this account and Region: onboard it first',
  );
  await expect(findMobilityRunner(new CloudFormationClient({}), 'hooli')).rejects.toThrow(
    'stack Bridge has no mobility runner: deploy this release to it first (cdk deploy Bridge)',
  );
});

test('export invokes the runner with the export event and returns its report', async () => {
  lambdaMock
    .on(InvokeCommand)
    .resolves({ StatusCode: 200, Payload: encode({ action: 'export', archive: 'tenants/acme/x.tfa' }) });
  const r = await runAwsMobility('export', { tenant: 'acme' }, clients());
  expect(r.archive).toBe('tenants/acme/x.tfa');
  const call = lambdaMock.commandCalls(InvokeCommand)[0].args[0].input;
  expect(call.FunctionName).toBe('Pool-mobility-runner');
  expect(JSON.parse(new TextDecoder().decode(call.Payload as Uint8Array))).toEqual({
    action: 'export',
    tenantId: 'acme',
  });
});

test("restore goes to the tenant's own runner with its own archive; the runner's error comes back as the message", async () => {
  lambdaMock.on(InvokeCommand).resolves({
    StatusCode: 200,
    FunctionError: 'Unhandled',
    Payload: encode({ errorMessage: 'tenant "acme" already has rows in invoices: ...' }),
  });
  await expect(
    runAwsMobility('restore', { tenant: 'acme', from: 'tenants/acme/x.tfa' }, clients()),
  ).rejects.toThrow(`Pool's mobility runner: tenant "acme" already has rows in invoices`);
  expect(
    JSON.parse(
      new TextDecoder().decode(lambdaMock.commandCalls(InvokeCommand)[0].args[0].input.Payload as Uint8Array),
    ),
  ).toEqual({ action: 'restore', tenantId: 'acme', archive: 'tenants/acme/x.tfa' });
});

test("bad input is refused before any AWS call: another tenant's archive, a bad id", async () => {
  await expect(
    runAwsMobility('restore', { tenant: 'acme', from: 'tenants/globex/x.tfa' }, clients()),
  ).rejects.toThrow(
    `restore --aws: --from names one of tenant "acme"'s archives in its cell's bucket, as export --aws printed it ("tenants/acme/..."), got "tenants/globex/x.tfa" (in AWS an archive is restored into its own tenant only)`,
  );
  await expect(runAwsMobility('export', { tenant: 'Acme; rm -rf /' }, clients())).rejects.toThrow(
    'export --tenant',
  );
  expect(cfnMock.calls()).toHaveLength(0);
  expect(lambdaMock.calls()).toHaveLength(0);
});

test("an export larger than the runner's function goes to its runner task: the command waits, polling, for its report", async () => {
  const task = `arn:aws:ecs:us-east-1:111122223333:task/pool-cell/${'a1'.repeat(16)}`;
  const result = 'runner-events/out/0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f.result.json';
  const report = {
    action: 'export',
    tenantId: 'acme',
    model: 'pool',
    archive: 'tenants/acme/x.tfa',
    rows: {},
  };
  const answers = [
    { action: 'export', tenantId: 'acme', handedToTask: task, bytes: 3 * 1024 ** 3, result },
    { action: 'result', tenantId: 'acme', pending: true, status: 'PROVISIONING' },
    { action: 'result', tenantId: 'acme', pending: true, status: 'RUNNING' },
    report,
  ];
  lambdaMock.on(InvokeCommand).callsFake(() => ({ StatusCode: 200, Payload: encode(answers.shift()) }));
  const lines: string[] = [];
  const waits: number[] = [];
  const r = await runAwsMobility(
    'export',
    { tenant: 'acme' },
    clients(),
    (l) => lines.push(l),
    async (ms) => {
      waits.push(ms);
    },
  );
  expect(r).toEqual(report);
  const payloads = lambdaMock
    .commandCalls(InvokeCommand)
    .map((c) => JSON.parse(new TextDecoder().decode(c.args[0].input.Payload as Uint8Array)));
  expect(payloads).toEqual([
    { action: 'export', tenantId: 'acme' },
    ...Array(3).fill({ action: 'result', tenantId: 'acme', result, task }),
  ]);
  expect(waits).toEqual([15000, 15000, 15000]);
  expect(lines[0]).toContain(`tenant "acme" is about 3.0 GiB: Pool's runner task ${task} does the export`);
  expect(lines.slice(1)).toEqual(['  provisioning...', '  running...']);
  // The task's error (the runner throws it on the poll that finds it) is the command's.
  answers.push({
    action: 'export',
    tenantId: 'acme',
    handedToTask: task,
    bytes: 3 * 1024 ** 3,
    result,
  } as never);
  lambdaMock.on(InvokeCommand).callsFake(() =>
    answers.length
      ? { StatusCode: 200, Payload: encode(answers.shift()) }
      : {
          StatusCode: 200,
          FunctionError: 'Unhandled',
          Payload: encode({
            errorMessage: `the runner task ${task} stopped without a result: Essential container exited`,
          }),
        },
  );
  await expect(
    runAwsMobility(
      'export',
      { tenant: 'acme' },
      clients(),
      () => undefined,
      async () => undefined,
    ),
  ).rejects.toThrow(
    `Pool's mobility runner: the runner task ${task} stopped without a result: Essential container exited`,
  );
});
