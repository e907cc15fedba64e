import { Construct } from 'constructs';
import { Fn, Stack } from 'aws-cdk-lib';

/**
 * Eight hex digits unique to this incarnation of the stack (taken from its stack id, which CloudFormation
 * makes new each time a stack is created). Resources that outlive their stack (kept on delete) and need a
 * physical name carry it, so re-creating the stack (a retry after a failed first deploy, or onboarding the same
 * tenant again after offboarding) never collides with what an earlier incarnation left behind.
 */
export function incarnationSuffix(scope: Construct): string {
  const own = scope.node.tryGetContext(INCARNATION_CONTEXT) as (() => string) | undefined;
  if (typeof own === 'function') return own();
  return Fn.select(0, Fn.split('-', Fn.select(2, Fn.split('/', Stack.of(scope).stackId))));
}

/**
 * Context a construct sets (before its children exist) to give everything under it an incarnation of its own: a
 * function returning the suffix, called where a name is made. A cell a move adds to a stack that lives on uses it
 * (Cell `incarnationFromKey`): the stack's id is the same for every cell it ever held.
 */
export const INCARNATION_CONTEXT = 'tenantforge:incarnation';
