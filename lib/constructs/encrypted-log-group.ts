import { Construct } from 'constructs';
import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { logGroupPrefix } from '../../contracts';
import { incarnationSuffix } from './names';

export interface EncryptedLogGroupProps {
  /** The key that encrypts the log events. */
  readonly key: kms.IKey;
  /**
   * How long events are kept.
   * @default logs.RetentionDays.ONE_YEAR - long enough for a yearly audit
   */
  readonly retention?: logs.RetentionDays;
  /**
   * Delete the log group with its stack (disposable tenants only).
   * @default false - the log group is retained
   */
  readonly disposable?: boolean;
}

/**
 * A log group encrypted with the stack's own key and with a retention period, as HIPAA and NIST ask. Its name
 * is under the stack's log group prefix (the only log groups the stack's key admits CloudWatch Logs for), and
 * carries the stack's incarnation, since it is kept when the stack goes.
 */
export class EncryptedLogGroup extends logs.LogGroup {
  constructor(scope: Construct, id: string, props: EncryptedLogGroupProps) {
    super(scope, id, {
      logGroupName: stackLogGroupName(scope, id),
      encryptionKey: props.key,
      retention: props.retention ?? logs.RetentionDays.ONE_YEAR,
      removalPolicy: props.disposable ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
    });
  }
}

/** `<stack prefix><construct path>-<incarnation>` for a log group `id` under `scope`. */
export function stackLogGroupName(scope: Construct, id: string, prefix = logGroupPrefix): string {
  const stack = Stack.of(scope);
  const where = [...scope.node.scopes.slice(scope.node.scopes.indexOf(stack) + 1).map((s) => s.node.id), id]
    .filter((part) => part !== 'Default')
    .join('-');
  return `${prefix(stack.stackName)}${where}-${incarnationSuffix(scope)}`;
}
