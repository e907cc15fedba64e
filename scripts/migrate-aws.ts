/**
 * `npm run migrate -- --aws`: the fleet migration of a deployed fleet. Finds every provisioner (the Pool and
 * Bridge cells', and each silo tenant stack's own) from CloudFormation, and invokes each with a fleet event
 * (lambda/tenant-provisioner/fleet.ts): each migrates its own database's targets with the same runner as the local
 * platform. Pool and bridge first (one canary wave in each), then the silos, a few at a time. Tenants onboarded by
 * the pipeline are included: each cell migrates what its database holds, and each silo has its stack.
 *
 * Needs: cloudformation:ListStacks, cloudformation:ListStackResources, lambda:InvokeFunction on the cells' fleet runners (FleetRunner functions) only.
 */
import {
  CloudFormationClient,
  paginateListStackResources,
  paginateListStacks,
  type StackStatus,
} from '@aws-sdk/client-cloudformation';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { STACK_NAMES, TENANT_STACK_PREFIX } from '../contracts';
import type { FleetEvent, FleetReport } from '../lambda/tenant-provisioner/fleet';

/** A provisioner's function, in the stack that owns it. */
export interface Provisioner {
  readonly stack: string;
  readonly functionName: string;
}

export interface CellResult {
  readonly provisioner: Provisioner;
  readonly report?: FleetReport;
  /** The invocation itself failed (the function's error, or Lambda's). */
  readonly error?: string;
}

const LIVE: StackStatus[] = [
  'CREATE_COMPLETE',
  'UPDATE_COMPLETE',
  'UPDATE_ROLLBACK_COMPLETE',
  'IMPORT_COMPLETE',
  'IMPORT_ROLLBACK_COMPLETE',
];

/** The cell's fleet runner (lambda/tenant-provisioner/fleet-entry.ts), never the custom-resource handler. */
const FLEET_RUNNER_LOGICAL_ID = /ProvisionerFleetRunner[0-9A-F]{8}$/;

export async function findProvisioners(cfn: CloudFormationClient): Promise<Provisioner[]> {
  const stacks: string[] = [];
  for await (const page of paginateListStacks({ client: cfn }, { StackStatusFilter: LIVE })) {
    for (const s of page.StackSummaries ?? []) {
      const name = s.StackName!;
      if (name === STACK_NAMES.pool || name === STACK_NAMES.bridge || name.startsWith(TENANT_STACK_PREFIX)) {
        stacks.push(name);
      }
    }
  }
  const found: Provisioner[] = [];
  for (const stack of stacks.sort(cellsFirst)) {
    for await (const page of paginateListStackResources({ client: cfn }, { StackName: stack })) {
      for (const r of page.StackResourceSummaries ?? []) {
        if (
          r.ResourceType === 'AWS::Lambda::Function' &&
          FLEET_RUNNER_LOGICAL_ID.test(r.LogicalResourceId ?? '')
        ) {
          found.push({ stack, functionName: r.PhysicalResourceId! });
        }
      }
    }
  }
  return found;
}

const cellsFirst = (a: string, b: string) =>
  Number(a.startsWith(TENANT_STACK_PREFIX)) - Number(b.startsWith(TENANT_STACK_PREFIX)) || a.localeCompare(b);

export async function invokeProvisioner(
  lambda: LambdaClient,
  provisioner: Provisioner,
  event: FleetEvent,
): Promise<CellResult> {
  try {
    const r = await lambda.send(
      new InvokeCommand({
        FunctionName: provisioner.functionName,
        InvocationType: 'RequestResponse',
        Payload: new TextEncoder().encode(JSON.stringify(event)),
      }),
    );
    const body = r.Payload ? new TextDecoder().decode(r.Payload) : '';
    if (r.FunctionError) {
      const parsed = safeJson(body) as { errorMessage?: string } | undefined;
      return { provisioner, error: parsed?.errorMessage ?? (body || r.FunctionError) };
    }
    return { provisioner, report: JSON.parse(body) as FleetReport };
  } catch (e) {
    return { provisioner, error: (e as Error).message };
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Invokes every provisioner: the shared cells first (each with its canary wave), then, only if they all
 * finished cleanly, the silos `concurrency` at a time. `onResult` sees each cell's result as it comes.
 */
export async function migrateAwsFleet(
  provisioners: readonly Provisioner[],
  event: FleetEvent,
  options: {
    lambda: LambdaClient;
    concurrency?: number;
    onResult?: (r: CellResult) => void;
  },
): Promise<{ results: CellResult[]; stoppedAfterCells: boolean }> {
  const results: CellResult[] = [];
  const run = async (batch: readonly Provisioner[], concurrency: number) => {
    const queue = [...batch];
    await Promise.all(
      Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
        for (let p = queue.shift(); p; p = queue.shift()) {
          const r = await invokeProvisioner(options.lambda, p, event);
          results.push(r);
          options.onResult?.(r);
        }
      }),
    );
  };
  const cells = provisioners.filter((p) => !p.stack.startsWith(TENANT_STACK_PREFIX));
  const silos = provisioners.filter((p) => p.stack.startsWith(TENANT_STACK_PREFIX));
  await run(cells, cells.length);
  const clean = results.every(
    (r) => r.report && r.report.failed.length === 0 && !r.report.stoppedAfterCanary,
  );
  if (event.action === 'migrate-fleet' && !clean) return { results, stoppedAfterCells: true };
  await run(silos, options.concurrency ?? 4);
  return { results, stoppedAfterCells: false };
}

/** Whether every target of every result is current now (or, for a plan, could be read). */
export function allCurrent(results: readonly CellResult[], plan: boolean): boolean {
  return results.every(
    (r) =>
      r.report !== undefined &&
      r.report.failed.length === 0 &&
      (plan || (r.report.skipped.length === 0 && !r.report.stoppedAfterCanary)),
  );
}

export function resultLines(results: readonly CellResult[]): string[] {
  const lines = [
    '| stack | cell | targets | current | done | failed | skipped | time |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    if (!r.report) {
      lines.push(`| ${r.provisioner.stack} | (not reached) | | | | | | |`);
      continue;
    }
    const x = r.report;
    lines.push(
      `| ${r.provisioner.stack} | ${x.cell} | ${x.targets} | ${x.current} | ${x.done} | ${x.failed.length} | ${x.skipped.length} | ${(x.ms / 1000).toFixed(1)} s |`,
    );
  }
  for (const r of results) {
    if (r.error) lines.push(`error: ${r.provisioner.stack} (${r.provisioner.functionName}): ${r.error}`);
    for (const f of r.report?.failed ?? [])
      lines.push(`failed: ${r.provisioner.stack} ${f.target}: ${f.reason}`);
    for (const s of r.report?.skipped ?? [])
      lines.push(`skipped: ${r.provisioner.stack} ${s.target}: ${s.reason}`);
  }
  return lines;
}

export { CloudFormationClient, LambdaClient };
