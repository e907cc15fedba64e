/**
 * The cell's runner task launcher: the only function of the cell that may start tasks (ecs:RunTask on the runner
 * task definition, in the cell's cluster) and pass roles (the task's and its execution role, to ECS). The mobility
 * runner invokes it with the key of an event it put in the cell's archive bucket; it starts the runner task with
 * that key and nothing else: the task definition's image, entry point and role, the cell's subnets and security
 * group (runner-task.ts startRunnerTask). So whoever holds the runner's role can start the runner's own code with
 * an event, nothing else, nowhere else.
 *
 * Environment (the CDK construct sets it): RUNNER_TASK_DEFINITION, RUNNER_TASK_CLUSTER, RUNNER_TASK_SUBNETS,
 * RUNNER_TASK_SECURITY_GROUPS, RUNNER_TASK_PUBLIC_IP.
 */
import { ECSClient } from '@aws-sdk/client-ecs';
import { launchSettingsFromEnv, startRunnerTask } from './runner-task';

let ecs: ECSClient | undefined;

export async function handler(event: { eventKey?: unknown }): Promise<{ taskArn: string }> {
  const taskArn = await startRunnerTask(
    (ecs ??= new ECSClient({})),
    launchSettingsFromEnv(),
    event?.eventKey,
  );
  console.log(JSON.stringify({ level: 'info', message: 'runner task started', taskArn }));
  return { taskArn };
}
