/** What the workflow reads from a tenant's stack: why it failed, and (silo) its database for a final snapshot. */
import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import {
  CloudFormationClient,
  DescribeStackEventsCommand,
  DescribeStackResourcesCommand,
} from '@aws-sdk/client-cloudformation';
import { CreateDBSnapshotCommand, DescribeDBSnapshotsCommand, RDSClient } from '@aws-sdk/client-rds';
import { tenantStackName } from '../../contracts';

const cfn = new CloudFormationClient({});
const rds = new RDSClient({});
const sfn = new SFNClient({});

/**
 * The first real reason CloudFormation gave for the tenant stack's failure (not the cascade of "Resource
 * creation cancelled" that follows it), or the workflow's own error when the stack never started.
 */
export async function failureReason(
  tenantId: string,
  error?: { Error?: string; Cause?: string },
): Promise<string> {
  const stackName = tenantStackName(tenantId);
  try {
    const r = await cfn.send(new DescribeStackEventsCommand({ StackName: stackName }));
    const failed = (r.StackEvents ?? [])
      .filter((e) => /FAILED$/.test(e.ResourceStatus ?? '') && e.ResourceStatusReason)
      .filter((e) => !/cancelled|The following resource\(s\) failed/i.test(e.ResourceStatusReason!))
      .sort((a, b) => (a.Timestamp?.getTime() ?? 0) - (b.Timestamp?.getTime() ?? 0));
    if (failed.length > 0) {
      const first = failed[0];
      return `${stackName}: ${first.LogicalResourceId} (${first.ResourceType}) ${first.ResourceStatus}: ${first.ResourceStatusReason}`;
    }
  } catch (e) {
    if (!/does not exist/.test((e as Error).message)) throw e;
  }
  const cause = error?.Cause ? parseCause(error.Cause) : undefined;
  return `${stackName}: ${error?.Error ?? 'failed'}${cause ? `: ${cause}` : ''}`;
}

function parseCause(cause: string): string {
  try {
    const c = JSON.parse(cause) as { errorMessage?: string; Build?: { BuildStatus?: string } };
    return c.errorMessage ?? (c.Build?.BuildStatus ? `build ${c.Build.BuildStatus}` : cause.slice(0, 500));
  } catch {
    return cause.slice(0, 500);
  }
}

/**
 * A manual snapshot of a silo tenant's database, tagged as its offboarding snapshot, before its stack goes.
 * Deletion protection is not touched here: the stack lifts it itself (its `retire` deploy).
 */
export async function finalSnapshot(tenantId: string): Promise<Record<string, unknown>> {
  const stackName = tenantStackName(tenantId);
  const resources = await cfn.send(new DescribeStackResourcesCommand({ StackName: stackName }));
  const db = (resources.StackResources ?? []).find((r) => r.ResourceType === 'AWS::RDS::DBInstance');
  if (!db?.PhysicalResourceId) throw new Error(`${stackName} has no RDS instance to snapshot`);
  const snapshotId = `${tenantId}-final-${new Date()
    .toISOString()
    .replace(/[^0-9]/g, '')
    .slice(0, 14)}`;
  await rds.send(
    new CreateDBSnapshotCommand({
      DBInstanceIdentifier: db.PhysicalResourceId,
      DBSnapshotIdentifier: snapshotId,
      Tags: [
        { Key: 'tenant-id', Value: tenantId },
        { Key: 'purpose', Value: 'offboarding-final-snapshot' },
      ],
    }),
  );
  return { snapshotId, dbInstanceId: db.PhysicalResourceId };
}

export async function snapshotStatus(snapshotId: string): Promise<Record<string, unknown>> {
  const r = await rds.send(new DescribeDBSnapshotsCommand({ DBSnapshotIdentifier: snapshotId }));
  const status = r.DBSnapshots?.[0]?.Status ?? 'unknown';
  if (status === 'failed') throw new Error(`final snapshot ${snapshotId} failed`);
  return { snapshotId, available: status === 'available', status };
}

/** How a workflow execution ended (SUCCEEDED, FAILED, TIMED_OUT, ABORTED), or undefined while it runs. */
export async function executionEnded(executionArn: string): Promise<string | undefined> {
  const r = await sfn.send(new DescribeExecutionCommand({ executionArn }));
  return r.status === 'RUNNING' || r.status === 'PENDING_REDRIVE' ? undefined : r.status;
}
