import { Construct } from 'constructs';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import { ack, childOfType, HIPAA_AND_NIST } from '../nag';
import { EncryptedLogGroup } from './encrypted-log-group';

export interface NetworkProps {
  /** The VPC's IPv4 range (from the catalog for a silo tenant, fixed for the shared stacks). */
  readonly cidr: string;
  /** Encrypts the flow logs. */
  readonly key: kms.IKey;
  /**
   * Availability zones to span.
   * @default 2
   */
  readonly maxAzs?: number;
  /**
   * NAT gateways for the private tier (the service and the provisioner reach AWS APIs through them).
   * @default 1
   */
  readonly natGateways?: number;
  /** @default false - flow logs are retained */
  readonly disposable?: boolean;
}

/**
 * A three-tier VPC: public (the load balancer only), private with egress (the service and the provisioner)
 * and isolated (the database, no route out). Every packet decision is recorded in encrypted flow logs, and
 * the default security group allows nothing.
 */
export class Network extends Construct {
  readonly vpc: ec2.Vpc;

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(props.cidr),
      maxAzs: props.maxAzs ?? 2,
      natGateways: props.natGateways ?? 1,
      restrictDefaultSecurityGroup: true,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24, mapPublicIpOnLaunch: false },
        { name: 'app', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 24 },
        { name: 'data', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
    });
    const logGroup = new EncryptedLogGroup(this, 'FlowLogs', {
      key: props.key,
      disposable: props.disposable,
    });
    this.vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(logGroup),
      trafficType: ec2.FlowLogTrafficType.ALL,
    });
    for (const subnet of this.vpc.publicSubnets) {
      ack(
        childOfType(subnet, ec2.CfnRoute),
        HIPAA_AND_NIST('VPCNoUnrestrictedRouteToIGW'),
        'The public tier holds only the internet-facing load balancer and the NAT gateway; the API tasks and the database sit in private and isolated subnets with no route to the internet gateway.',
      );
    }
  }
}
