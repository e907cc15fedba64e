/** What the workflow reads from a tenant's stack: why it failed, and (silo) its database for a final snapshot. */
import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import {
  CloudFormationClient,
  DescribeStackEventsCommand,
  ListStackResourcesCommand,
  StackResourceSummary,
} from '@aws-sdk/client-cloudformation';
import {
  CreateDBClusterSnapshotCommand,
  CreateDBSnapshotCommand,
  DescribeDBClusterSnapshotsCommand,
  DescribeDBSnapshotsCommand,
  RDSClient,
} from '@aws-sdk/client-rds';
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
  /** The tenant stack's own events say why (false: a step that deploys nothing, such as a restore). */
  fromStack = true,
): Promise<string> {
  const stackName = tenantStackName(tenantId);
  if (!fromStack) {
    const cause = error?.Cause ? parseCause(error.Cause) : undefined;
    return `tenant "${tenantId}": ${error?.Error ?? 'failed'}${cause ? `: ${cause}` : ''}`;
  }
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
 * Whether the tenant's stack holds a database (a silo's RDS instance or Aurora cluster, in any state but deleted):
 * true, false, or undefined when CloudFormation's answer does not say (the caller then assumes it may).
 */
export async function stackHasDatabase(tenantId: string): Promise<boolean | undefined> {
  try {
    const resources = await stackResources(tenantStackName(tenantId));
    return resources.some(
      (r) =>
        (r.ResourceType === 'AWS::RDS::DBInstance' || r.ResourceType === 'AWS::RDS::DBCluster') &&
        r.ResourceStatus !== 'DELETE_COMPLETE',
    );
  } catch {
    return undefined;
  }
}

/**
 * Every resource of the stack, page by page: DescribeStackResources lists only the first 100, and a silo's stack
 * has more (its database may be past them). Throws when CloudFormation's answer holds no list.
 */
async function stackResources(stackName: string): Promise<StackResourceSummary[]> {
  const resources: StackResourceSummary[] = [];
  let NextToken: string | undefined;
  do {
    const page = await cfn.send(new ListStackResourcesCommand({ StackName: stackName, NextToken }));
    if (!Array.isArray(page?.StackResourceSummaries)) {
      throw new Error(`CloudFormation listed no resources for ${stackName}`);
    }
    resources.push(...page.StackResourceSummaries);
    NextToken = page.NextToken;
  } while (NextToken);
  return resources;
}

/** What a final snapshot is of: an RDS instance, or an Aurora cluster (the idle-friendly silo profile). */
export type SnapshotKind = 'instance' | 'cluster';

/**
 * A manual snapshot of a silo tenant's database, tagged as its offboarding snapshot, before its stack goes: of
 * its Aurora cluster when it has one (Aurora snapshots are of the cluster), else of its RDS instance.
 * Deletion protection is not touched here: the stack lifts it itself (its `retire` deploy).
 */
export async function finalSnapshot(tenantId: string): Promise<Record<string, unknown>> {
  const stackName = tenantStackName(tenantId);
  const resources = await stackResources(stackName);
  const cluster = resources?.find((r) => r.ResourceType === 'AWS::RDS::DBCluster');
  const instance = resources?.find((r) => r.ResourceType === 'AWS::RDS::DBInstance');
  const db = cluster ?? instance;
  if (!db?.PhysicalResourceId)
    throw new Error(`${stackName} has no database (RDS instance or Aurora cluster) to snapshot`);
  const snapshotId = `${tenantId}-final-${new Date()
    .toISOString()
    .replace(/[^0-9]/g, '')
    .slice(0, 14)}`;
  const Tags = [
    { Key: 'tenant-id', Value: tenantId },
    { Key: 'purpose', Value: 'offboarding-final-snapshot' },
  ];
  if (cluster) {
    await rds.send(
      new CreateDBClusterSnapshotCommand({
        DBClusterIdentifier: db.PhysicalResourceId,
        DBClusterSnapshotIdentifier: snapshotId,
        Tags,
      }),
    );
    return { snapshotId, kind: 'cluster', dbClusterId: db.PhysicalResourceId };
  }
  await rds.send(
    new CreateDBSnapshotCommand({
      DBInstanceIdentifier: db.PhysicalResourceId,
      DBSnapshotIdentifier: snapshotId,
      Tags,
    }),
  );
  return { snapshotId, kind: 'instance', dbInstanceId: db.PhysicalResourceId };
}

export async function snapshotStatus(
  snapshotId: string,
  kind: SnapshotKind = 'instance',
): Promise<Record<string, unknown>> {
  const status =
    kind === 'cluster'
      ? (await rds.send(new DescribeDBClusterSnapshotsCommand({ DBClusterSnapshotIdentifier: snapshotId })))
          .DBClusterSnapshots?.[0]?.Status
      : (await rds.send(new DescribeDBSnapshotsCommand({ DBSnapshotIdentifier: snapshotId })))
          .DBSnapshots?.[0]?.Status;
  const state = status ?? 'unknown';
  if (state === 'failed') throw new Error(`final snapshot ${snapshotId} failed`);
  return { snapshotId, available: state === 'available', status: state };
}

/** How a workflow execution ended (SUCCEEDED, FAILED, TIMED_OUT, ABORTED), or undefined while it runs. */
export async function executionEnded(executionArn: string): Promise<string | undefined> {
  const r = await sfn.send(new DescribeExecutionCommand({ executionArn }));
  return r.status === 'RUNNING' || r.status === 'PENDING_REDRIVE' ? undefined : r.status;
}
