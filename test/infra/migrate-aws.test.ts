import { mockClient } from 'aws-sdk-client-mock';
import {
  CloudFormationClient,
  ListStackResourcesCommand,
  ListStacksCommand,
} from '@aws-sdk/client-cloudformation';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { allCurrent, findProvisioners, migrateAwsFleet, resultLines } from '../../scripts/migrate-aws';
import type { FleetReport } from '../../lambda/tenant-provisioner/fleet';

// npm run migrate -- --aws, with CloudFormation and Lambda stubbed at the SDK boundary.
const cfnMock = mockClient(CloudFormationClient);
const lambdaMock = mockClient(LambdaClient);
// The SDK's response payload type is a Uint8Array with helpers; the code under test decodes the bytes.
const encode = (x: unknown) => new TextEncoder().encode(JSON.stringify(x)) as never;
const report = (cell: string, extra: Partial<FleetReport> = {}): FleetReport => ({
  cell,
  action: 'migrate-fleet',
  toVersion: 5,
  targets: 3,
  current: 1,
  done: 2,
  failed: [],
  skipped: [],
  stoppedAfterCanary: false,
  ms: 1200,
  ...extra,
});

beforeEach(() => {
  cfnMock.reset();
  lambdaMock.reset();
  // Two pages of stacks; only the cells and tenant stacks matter.
  cfnMock
    .on(ListStacksCommand)
    .resolvesOnce({
      StackSummaries: [
        { StackName: 'Tenant-northwind', StackStatus: 'UPDATE_COMPLETE', CreationTime: new Date() },
        { StackName: 'Platform', StackStatus: 'CREATE_COMPLETE', CreationTime: new Date() },
      ],
      NextToken: 'page-2',
    })
    .resolvesOnce({
      StackSummaries: [
        { StackName: 'Bridge', StackStatus: 'CREATE_COMPLETE', CreationTime: new Date() },
        { StackName: 'Pool', StackStatus: 'CREATE_COMPLETE', CreationTime: new Date() },
        { StackName: 'Tenant-acme', StackStatus: 'CREATE_COMPLETE', CreationTime: new Date() },
      ],
    });
  const resources = (stack: string, withProvisioner: boolean) => ({
    StackResourceSummaries: [
      ...(withProvisioner
        ? [
            {
              LogicalResourceId: 'CellProvisionerFleetRunner991F4907',
              PhysicalResourceId: `${stack}-provisioner`,
              ResourceType: 'AWS::Lambda::Function',
              ResourceStatus: 'CREATE_COMPLETE' as const,
              LastUpdatedTimestamp: new Date(),
            },
          ]
        : []),
      {
        LogicalResourceId: 'CellProvisionerHandler989583A8', // the custom-resource handler: never invoked
        PhysicalResourceId: `${stack}-handler`,
        ResourceType: 'AWS::Lambda::Function',
        ResourceStatus: 'CREATE_COMPLETE' as const,
        LastUpdatedTimestamp: new Date(),
      },
      {
        LogicalResourceId: 'CellProvisionerProviderframeworkonEvent821C6C51',
        PhysicalResourceId: `${stack}-framework`,
        ResourceType: 'AWS::Lambda::Function',
        ResourceStatus: 'CREATE_COMPLETE' as const,
        LastUpdatedTimestamp: new Date(),
      },
    ],
  });
  for (const [stack, has] of [
    ['Pool', true],
    ['Bridge', true],
    ['Tenant-northwind', true], // a silo: its own provisioner
    ['Tenant-acme', false], // a pool tenant's stack: none
  ] as const) {
    cfnMock.on(ListStackResourcesCommand, { StackName: stack }).resolves(resources(stack, has));
  }
});

test("finds every cell's fleet runner (not its custom-resource handler or the provider framework), cells first", async () => {
  expect(await findProvisioners(new CloudFormationClient({}))).toEqual([
    { stack: 'Bridge', functionName: 'Bridge-provisioner' },
    { stack: 'Pool', functionName: 'Pool-provisioner' },
    { stack: 'Tenant-northwind', functionName: 'Tenant-northwind-provisioner' },
  ]);
});

test('invokes the cells, then the silos; adds up the reports', async () => {
  lambdaMock
    .on(InvokeCommand, { FunctionName: 'Pool-provisioner' })
    .resolves({ Payload: encode(report('pool cell')) });
  lambdaMock
    .on(InvokeCommand, { FunctionName: 'Bridge-provisioner' })
    .resolves({ Payload: encode(report('bridge cell')) });
  lambdaMock
    .on(InvokeCommand, { FunctionName: 'Tenant-northwind-provisioner' })
    .resolves({ Payload: encode(report('silo northwind', { targets: 1, current: 0, done: 1 })) });
  const provisioners = await findProvisioners(new CloudFormationClient({}));
  const order: string[] = [];
  const { results, stoppedAfterCells } = await migrateAwsFleet(
    provisioners,
    { action: 'migrate-fleet', toVersion: 5 },
    { lambda: new LambdaClient({}), onResult: (r) => order.push(r.provisioner.stack) },
  );
  expect(stoppedAfterCells).toBe(false);
  expect(order.slice(2)).toEqual(['Tenant-northwind']); // the silo after both cells
  expect(allCurrent(results, false)).toBe(true);
  const sent = lambdaMock
    .commandCalls(InvokeCommand)
    .map((c) => JSON.parse(new TextDecoder().decode(c.args[0].input.Payload as Uint8Array)));
  expect(sent).toEqual(Array(3).fill({ action: 'migrate-fleet', toVersion: 5 }));
  expect(resultLines(results)[2]).toBe('| Bridge | bridge cell | 3 | 1 | 2 | 0 | 0 | 1.2 s |');
});

test('a cell that fails (or whose function errors) stops the run before any silo, and the run is not current', async () => {
  lambdaMock.on(InvokeCommand, { FunctionName: 'Pool-provisioner' }).resolves({
    FunctionError: 'Unhandled',
    Payload: encode({ errorMessage: 'cannot reach the database at pool.example:5432 after 5 attempts' }),
  });
  lambdaMock.on(InvokeCommand, { FunctionName: 'Bridge-provisioner' }).resolves({
    Payload: encode(report('bridge cell', { failed: [{ target: 'bridge:umbrella', reason: 'boom' }] })),
  });
  const { results, stoppedAfterCells } = await migrateAwsFleet(
    await findProvisioners(new CloudFormationClient({})),
    { action: 'migrate-fleet' },
    { lambda: new LambdaClient({}) },
  );
  expect(stoppedAfterCells).toBe(true);
  expect(
    lambdaMock
      .commandCalls(InvokeCommand)
      .map((c) => c.args[0].input.FunctionName)
      .sort(),
  ).toEqual(['Bridge-provisioner', 'Pool-provisioner']);
  expect(allCurrent(results, false)).toBe(false);
  const lines = resultLines(results).join('\n');
  expect(lines).toContain('error: Pool (Pool-provisioner): cannot reach the database at pool.example:5432');
  expect(lines).toContain('failed: Bridge bridge:umbrella: boom');
});
