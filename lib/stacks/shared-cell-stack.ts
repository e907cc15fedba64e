import { Construct } from 'constructs';
import { Stack, StackProps } from 'aws-cdk-lib';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { ssmNames } from '../../contracts';
import { ApiImageRef } from '../constructs/api-image';
import { Cell } from '../constructs/cell';
import { CELL_STORAGE_FLOOR_GIB, CellSize, cellSizeFor } from '../cell-size';
import { Annotations } from 'aws-cdk-lib';

export interface SharedCellStackProps extends StackProps {
  /** The VPC range; must not overlap any silo tenant's (the catalog checks). */
  readonly cidr: string;
  /** The release's API image (built by the Platform stack). */
  readonly image: ApiImageRef;
  /**
   * The database class and storage, the API's minimum task count and the egress (lib/cell-size.ts `cellSizeFor`).
   * @default - the size for up to 100 tenants
   */
  readonly size?: CellSize;
  /** Shown as a synth warning: the catalog lists more tenants than the cell is planned for. */
  readonly sizeWarning?: string;
}

/**
 * A cell shared by many tenants. Its provisioner's service token and its API's endpoint and service are
 * published in SSM, where tenant stacks and the onboarding workflow find them: no CloudFormation export ties
 * this stack to its tenants.
 */
abstract class SharedCellStack extends Stack {
  readonly cell: Cell;

  protected constructor(
    scope: Construct,
    id: string,
    readonly model: 'pool' | 'bridge',
    description: string,
    props: SharedCellStackProps,
  ) {
    super(scope, id, props);
    const size = props.size ?? cellSizeFor(model, 0);
    this.cell = new Cell(this, 'Cell', {
      model,
      cidr: props.cidr,
      image: props.image,
      description,
      instanceClass: size.instanceClass.replace(/^db\./, ''),
      // A fixed starting allocation (RDS never shrinks storage, so it must not follow a count down) that storage
      // autoscaling grows up to twice the rule's expected storage.
      storageGiB: CELL_STORAGE_FLOOR_GIB,
      maxStorageGiB: Math.max(4 * CELL_STORAGE_FLOOR_GIB, 2 * size.storageGb),
      tasks: { count: size.tasks, cpu: 512, memoryMiB: 1024 },
      egress: size.egress,
    });
    if (props.sizeWarning) Annotations.of(this).addWarningV2('tenantforge:cell-size', props.sizeWarning);
    new ssm.StringParameter(this, 'ProvisionerServiceToken', {
      parameterName: ssmNames.provisionerServiceToken(model),
      stringValue: this.cell.provisioner.serviceToken,
    });
    this.cell.publishApi(this, {
      endpoint: ssmNames.apiEndpoint(model),
      service: ssmNames.apiService(model),
    });
  }
}

/** Pool: tenants share tables; rows carry tenant_id and Row-Level Security keeps them apart. */
export class PoolStack extends SharedCellStack {
  constructor(scope: Construct, id: string, props: SharedCellStackProps) {
    super(scope, id, 'pool', 'Pool cell: shared tables with row-level security', props);
  }
}

/** Bridge: tenants share the server; each has its own schema and role. */
export class BridgeStack extends SharedCellStack {
  constructor(scope: Construct, id: string, props: SharedCellStackProps) {
    super(scope, id, 'bridge', 'Bridge cell: one schema and role per tenant', props);
  }
}
