import { Construct } from 'constructs';
import { RemovalPolicy } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';

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

/** A log group encrypted with the stack's own key and with a retention period, as HIPAA and NIST ask. */
export class EncryptedLogGroup extends logs.LogGroup {
  constructor(scope: Construct, id: string, props: EncryptedLogGroupProps) {
    super(scope, id, {
      encryptionKey: props.key,
      retention: props.retention ?? logs.RetentionDays.ONE_YEAR,
      removalPolicy: props.disposable ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
    });
  }
}
