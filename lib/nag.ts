/**
 * Acknowledging compliance findings. Each construct acknowledges the findings of its own resources, next to
 * them, with a reason a compliance reviewer would accept: one rule, on the narrowest resource (an L1), reached
 * through typed references rather than child ids. The packs themselves are applied in compliance.ts.
 */
import { CfnElement, CfnResource, Stack, Validations } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

export const AWS_SOLUTIONS = (rule: string) => `AwsSolutions::AwsSolutions-${rule}`;
/** HIPAA Security and NIST 800-53 R5 share many rule names; a reason given for one holds for both. */
export const HIPAA_AND_NIST = (rule: string) => [
  `HIPAA.Security::HIPAA.Security-${rule}`,
  `NIST.800.53.R5::NIST.800.53.R5-${rule}`,
];
export const HIPAA = (rule: string) => `HIPAA.Security::HIPAA.Security-${rule}`;

/** Acknowledges `rules` on one L1 resource. */
export function ack(resource: CfnResource, rules: string | string[], reason: string): void {
  for (const id of Array.isArray(rules) ? rules : [rules]) {
    Validations.of(resource).acknowledge({ id, reason });
  }
}

/** The L1 resource behind an L2 construct. */
export function l1(construct: IConstruct): CfnResource {
  const child = construct.node.defaultChild;
  if (!(child instanceof CfnResource)) {
    throw new Error(
      `${construct.node.path} has no CloudFormation resource of its own to acknowledge a finding on`,
    );
  }
  return child;
}

/** The one child of `scope` that is a `type` (for resources CDK creates inside its own constructs). */
export function childOfType<T extends IConstruct>(
  scope: IConstruct,
  type: abstract new (...args: never[]) => T,
): T {
  const found = scope.node.children.filter((c): c is T => c instanceof type);
  if (found.length !== 1) {
    throw new Error(
      `${scope.node.path} has ${found.length} children of type ${type.name}, expected exactly one`,
    );
  }
  return found[0];
}

export function logicalIdOf(c: IConstruct): string {
  return Stack.of(c).getLogicalId(c as CfnElement);
}

/**
 * The stack's partition as a literal, from its region (acknowledgement ids must be plain strings; a resource ARN
 * in a finding is written with the region the stack is synthesized for).
 */
export function partitionOf(stack: Stack): string {
  return stack.region.startsWith('cn-')
    ? 'aws-cn'
    : stack.region.startsWith('us-gov-')
      ? 'aws-us-gov'
      : 'aws';
}
