/**
 * What a cell's mobility runner may do with the onboarding workflow (lib/constructs/mobility-runner.ts): read the
 * executions that ask it to restore or vouch for an archive, and (a shared cell's) answer the workflow's vouch task.
 * Execution names: contracts onboardingExecutionName.
 */
import { Construct } from 'constructs';
import { ArnFormat, CfnResource, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { ONBOARDING_STATE_MACHINE_NAME, tenantExecutionsPattern } from '../../contracts';
import { ack, AWS_SOLUTIONS, partitionOf } from '../nag';

/** What this module needs of the runner's props. */
interface RunnerWorkflow {
  readonly model: string;
  readonly tenantId?: string;
  readonly workflow: 'vouchAndRestore' | 'restore';
}

/** The runner's statements on the onboarding workflow. */
export function onboardingStatements(scope: Construct, props: RunnerWorkflow): iam.PolicyStatement[] {
  return [
    // A shared cell's runner answers the workflow's vouch task with its token.
    new iam.PolicyStatement({
      // A shared cell's vouch and moveOut tasks; a silo's moveOut task, for its tenant moving out of it.
      sid: props.workflow === 'vouchAndRestore' ? 'AnswerOnboardingVouchTasks' : 'AnswerOwnMoveOutTasks',
      // And beats for a data step while it works (the function or its runner task: runner-task.ts).
      actions: ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
      resources: [onboardingStateMachineArn(scope)],
    }),
    ...onboardingReads(props).map(
      ({ sid, actions, pattern }) =>
        new iam.PolicyStatement({ sid, actions, resources: [executionArn(scope, pattern)] }),
    ),
  ];
}

/** The reasons for the execution patterns those statements name (AwsSolutions-IAM5). */
export function acknowledgeOnboardingReads(policy: CfnResource, props: RunnerWorkflow): void {
  const stack = Stack.of(policy);
  for (const { pattern, why } of onboardingReads(props)) {
    ack(
      policy,
      AWS_SOLUTIONS(
        `IAM5[Resource::arn:${partitionOf(stack)}:states:${stack.region}:<AWS::AccountId>:execution:${ONBOARDING_STATE_MACHINE_NAME}:${pattern}]`,
      ),
      why,
    );
  }
}

export function onboardingStateMachineArn(scope: Construct): string {
  return Stack.of(scope).formatArn({
    service: 'states',
    resource: 'stateMachine',
    resourceName: ONBOARDING_STATE_MACHINE_NAME,
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
}

/**
 * Which executions of the onboarding workflow the runner may read (names: contracts onboardingExecutionName). A
 * shared cell's runner describes any (it vouches for its archives to other models' onboardings, whose input says
 * what was asked; an input holds no link) and reads the history only of its own model's onboardings (where the other
 * cell's runner put a link for it). A silo's runner reads only its own tenant's onboardings. So no runner reads a
 * link handed to another.
 */
function onboardingReads(
  props: RunnerWorkflow,
): { sid: string; actions: string[]; pattern: string; why: string }[] {
  if (props.model === 'silo') {
    return [
      {
        sid: 'ReadOwnOnboardings',
        actions: ['states:DescribeExecution', 'states:GetExecutionHistory'],
        pattern: tenantExecutionsPattern('onboard', 'silo', props.tenantId!),
        why: "Reads (DescribeExecution and GetExecutionHistory only) the onboarding workflow's executions that onboard this silo's own tenant (their names carry its id's mark and start): the runner restores another cell's archive into it only for a running one, started for it, with the digest and link that cell's runner handed to it.",
      },
      {
        sid: 'ReadOwnMovesHere',
        actions: ['states:DescribeExecution', 'states:GetExecutionHistory'],
        pattern: tenantExecutionsPattern('move', 'silo', props.tenantId!),
        why: "Reads (DescribeExecution and GetExecutionHistory only) the onboarding workflow's executions that move this silo's own tenant into it (their names carry its id's mark and start): the runner restores the tenant only for a running one, started to move it here, with the digest and link the shared cell's runner handed to it.",
      },
      ...(['pool', 'bridge'] as const).map((to) => ({
        sid: `DescribeOwnMovesTo${to.charAt(0).toUpperCase()}${to.slice(1)}`,
        actions: ['states:DescribeExecution'],
        pattern: tenantExecutionsPattern('move', to, props.tenantId!),
        why: `Describes (DescribeExecution only: status and input, which holds no link) the onboarding workflow's executions that move this silo's own tenant out of it to the ${to} cell (their names carry its id's mark and start): the runner freezes, exports and hands over its tenant, or thaws it, only for a running one, started for that move.`,
      })),
      {
        sid: 'DescribeOwnRestores',
        actions: ['states:DescribeExecution'],
        pattern: tenantExecutionsPattern('restore', 'x', props.tenantId!),
        why: "Describes (DescribeExecution only) the onboarding workflow's executions that restore one of this silo's own tenant's archives over its data (their names carry its id's mark and start): the runner freezes, replaces and thaws its tenant only for a running one, started for that archive.",
      },
      {
        sid: 'DescribeOwnPurges',
        actions: ['states:DescribeExecution'],
        pattern: tenantExecutionsPattern('purge', 'x', props.tenantId!),
        why: "Describes (DescribeExecution only) the onboarding workflow's executions that purge this silo's own tenant's kept copy (their names carry its id's mark and start): the runner empties the silo a move out of it kept only for a running one, started for that purge.",
      },
    ];
  }
  return [
    {
      sid: 'DescribeOnboardingExecutions',
      actions: ['states:DescribeExecution'],
      pattern: '*',
      why: 'Describes (DescribeExecution only: status and input, which holds no link) executions of the onboarding workflow, named exactly: the runner restores or vouches for an archive only for a running execution started for that tenant and archive.',
    },
    {
      sid: 'ReadOwnModelOnboardingHistories',
      actions: ['states:GetExecutionHistory'],
      pattern: `onboard_${props.model}_*`,
      why: `Reads the history of the onboarding workflow's executions that onboard a ${props.model} tenant only (their names say so): the runner restores the other cell's archive only with the digest and link that cell's runner handed to that execution; it cannot read links handed to other models.`,
    },
    {
      sid: 'ReadMovesHereHistories',
      actions: ['states:GetExecutionHistory'],
      pattern: `move_${props.model}_*`,
      why: `Reads the history of the onboarding workflow's executions that move a tenant into the ${props.model} cell only (their names say so): the runner restores the moving tenant only with the digest and link the other cell's runner handed to that execution; it cannot read links handed to other moves.`,
    },
  ];
}

function executionArn(scope: Construct, pattern: string): string {
  return Stack.of(scope).formatArn({
    service: 'states',
    resource: 'execution',
    resourceName: `${ONBOARDING_STATE_MACHINE_NAME}:${pattern}`,
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
}
