/**
 * `npm run tenant -- export|restore --aws`: one tenant's data in a deployed fleet, through the mobility runner
 * beside its cell (lambda/tenant-provisioner/mobility.ts). The tenant's own stack (Tenant-<id>) says its model by
 * the provisioner resource it holds; the runner is the pool cell's, the bridge cell's, or the silo stack's own.
 *
 * Needs: cloudformation:ListStackResources on the tenant's stack and its cell's, lambda:InvokeFunction on the
 * cells' mobility runners (MobilityRunner functions) only. The archives stay in the cell's bucket, encrypted
 * with the cell's key; this command never downloads them.
 */
import { CloudFormationClient, paginateListStackResources } from '@aws-sdk/client-cloudformation';
import type { LambdaClient } from '@aws-sdk/client-lambda';
import { FunctionError, invokeJson } from '../lambda/tenant-provisioner/invoke';
import { IsolationModel, PROVISIONER_RESOURCE_TYPES, STACK_NAMES, tenantStackName } from '../contracts';
import { validateTenantId } from '../db/naming';
import type { MobilityEvent, MobilityReport } from '../lambda/tenant-provisioner/mobility';
import type { HandedToTask } from '../lambda/tenant-provisioner/runner-task';
import type { StillRunning } from '../lambda/tenant-provisioner/runner-answers';

/** The cell's mobility runner (lambda/tenant-provisioner/mobility-entry.ts). */
const MOBILITY_RUNNER_LOGICAL_ID = /MobilityRunner[0-9A-F]{8}$/;

export class AwsMobilityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AwsMobilityError';
  }
}

export interface MobilityRunnerRef {
  readonly tenantId: string;
  readonly model: IsolationModel;
  readonly stack: string;
  readonly functionName: string;
}

async function resources(cfn: CloudFormationClient, stack: string) {
  const found: { type: string; logicalId: string; physicalId: string }[] = [];
  try {
    for await (const page of paginateListStackResources({ client: cfn }, { StackName: stack })) {
      for (const r of page.StackResourceSummaries ?? []) {
        found.push({
          type: r.ResourceType ?? '',
          logicalId: r.LogicalResourceId ?? '',
          physicalId: r.PhysicalResourceId ?? '',
        });
      }
    }
  } catch (e) {
    if (/does not exist/.test((e as Error).message)) return undefined;
    throw e;
  }
  return found;
}

/** The runner that holds `tenantId`'s data: found from the tenant's own stack and its cell's. */
export async function findMobilityRunner(
  cfn: CloudFormationClient,
  tenantId: string,
): Promise<MobilityRunnerRef> {
  const own = tenantStackName(tenantId);
  const tenantResources = await resources(cfn, own);
  if (!tenantResources) {
    throw new AwsMobilityError(
      `tenant "${tenantId}" has no stack ${own} in this account and Region: onboard it first (or check AWS_REGION and AWS_PROFILE)`,
    );
  }
  const models = (['silo', 'pool', 'bridge'] as const).filter((m) =>
    tenantResources.some((r) => r.type === PROVISIONER_RESOURCE_TYPES[m]),
  );
  if (models.length > 1) {
    throw new AwsMobilityError(
      `stack ${own} holds the tenant's place in ${models.join(' and ')}: a move between them is under way, or its last deploy failed (the registry says which cell serves it; deploy ${own} from the registry's request, npm run fleet -- pull, to finish it)`,
    );
  }
  const model = models[0];
  if (!model) {
    throw new AwsMobilityError(
      `stack ${own} holds no tenant provisioning resource (${Object.values(PROVISIONER_RESOURCE_TYPES).join(', ')}): is it a tenant stack of this fleet?`,
    );
  }
  const stack = model === 'silo' ? own : STACK_NAMES[model];
  const runner = (model === 'silo' ? tenantResources : ((await resources(cfn, stack)) ?? [])).find(
    (r) => r.type === 'AWS::Lambda::Function' && MOBILITY_RUNNER_LOGICAL_ID.test(r.logicalId),
  );
  if (!runner) {
    throw new AwsMobilityError(
      `stack ${stack} has no mobility runner: deploy this release to it first (cdk deploy ${stack})`,
    );
  }
  return { tenantId, model, stack, functionName: runner.physicalId };
}

/** What the runner answers an operator: its report, or that its runner task does it (and where to poll). */
type RunnerAnswer = MobilityReport | (HandedToTask & { result: string }) | StillRunning;

/** Invokes the runner and returns its answer; the function's error comes back as the error's message. */
export async function invokeMobilityRunner(
  lambda: LambdaClient,
  runner: MobilityRunnerRef,
  event: MobilityEvent,
): Promise<RunnerAnswer> {
  try {
    return await invokeJson<RunnerAnswer>(lambda, runner.functionName, event);
  } catch (e) {
    if (e instanceof FunctionError)
      throw new AwsMobilityError(`${runner.stack}'s mobility runner: ${e.message}`);
    throw e;
  }
}

/** How often the command asks the runner whether its task is done. */
export const POLL_SECONDS = 15;

/** `export --aws` and `restore --aws`: finds the runner, checks what the command can check, invokes it. */
export async function runAwsMobility(
  command: 'export' | 'restore',
  options: { tenant: string; from?: string },
  clients: { cfn: CloudFormationClient; lambda: LambdaClient },
  progress: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
  wait: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
): Promise<MobilityReport> {
  validateTenantId(options.tenant, `${command} --tenant`);
  if (command === 'restore') {
    const prefix = `tenants/${options.tenant}/`;
    if (!options.from?.startsWith(prefix)) {
      throw new AwsMobilityError(
        `restore --aws: --from names one of tenant "${options.tenant}"'s archives in its cell's bucket, as export --aws printed it ("${prefix}..."), got "${options.from}" (in AWS an archive is restored into its own tenant only)`,
      );
    }
  }
  const runner = await findMobilityRunner(clients.cfn, options.tenant);
  const first = await invokeMobilityRunner(
    clients.lambda,
    runner,
    command === 'export'
      ? { action: 'export', tenantId: options.tenant }
      : { action: 'restore', tenantId: options.tenant, archive: options.from },
  );
  if (!('handedToTask' in first)) return first as MobilityReport;
  // Larger than the runner's function finishes: its runner task does it; ask every POLL_SECONDS until it is done.
  progress(
    `tenant "${options.tenant}" is about ${(first.bytes / 1024 ** 3).toFixed(1)} GiB: ${runner.stack}'s runner task ${first.handedToTask} does the ${command}; waiting for it (Ctrl-C stops waiting, not the task; its log group says what it did)`,
  );
  for (;;) {
    await wait(POLL_SECONDS * 1000);
    const r = await invokeMobilityRunner(clients.lambda, runner, {
      action: 'result',
      tenantId: options.tenant,
      result: first.result,
      task: first.handedToTask,
    });
    if (!('pending' in r)) return r as MobilityReport;
    progress(`  ${r.status.toLowerCase()}...`);
  }
}
