/**
 * The runner task's entry (the cell's runner image, lambda/tenant-provisioner/Dockerfile): the event its function
 * handed it (MOBILITY_EVENT_KEY, in the cell's archive bucket), run by the runner's own handler, which answers the
 * workflow's step through the event's token (runner-task.ts). The environment is the function's, plus
 * RUNNER_IN_TASK=true (so the work is done here, never handed on) and a larger MAX_ARCHIVE_BYTES and workDir.
 */
import { SendTaskFailureCommand } from '@aws-sdk/client-sfn';
import { archiveClient, handler, stepFunctions } from './mobility-entry';
import { takeHandedEvent } from './runner-task';
import { log } from './index';

export async function runHandedEvent(): Promise<void> {
  if (process.env.RUNNER_IN_TASK !== 'true') {
    throw new Error('runner task misconfigured: RUNNER_IN_TASK is not "true" (the task definition sets it)');
  }
  const bucket = process.env.ARCHIVE_BUCKET;
  if (!bucket)
    throw new Error('runner task misconfigured: ARCHIVE_BUCKET is not set (the task definition sets it)');
  const event = await takeHandedEvent(archiveClient(), bucket, process.env.MOBILITY_EVENT_KEY);
  try {
    await handler(event);
  } catch (e) {
    // The handler answers the step with its error once it has begun the work; one that fails before (its
    // settings, its first checks) is answered here, so the step fails now rather than when its heartbeat stops.
    if (event.taskToken) {
      await stepFunctions()
        .send(
          new SendTaskFailureCommand({
            taskToken: event.taskToken,
            error: ((e as Error).name || 'Error').slice(0, 256),
            cause: JSON.stringify({ errorType: (e as Error).name, errorMessage: (e as Error).message }),
          }),
        )
        .catch(() => undefined);
    }
    throw e;
  }
}

if (require.main === module) {
  runHandedEvent().then(
    () => process.exit(0),
    (e: Error) => {
      // The step already has this error when the handler got as far as its token; if not, its heartbeat timeout
      // fails it. Either way the reason is in the task's log.
      log('runner task failed', { error: `${e.name}: ${e.message}` });
      process.exit(1);
    },
  );
}
