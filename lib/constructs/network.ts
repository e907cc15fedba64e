import { Construct } from 'constructs';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import { ack, childOfType, HIPAA_AND_NIST } from '../nag';
import { EncryptedLogGroup } from './encrypted-log-group';

/** The size of a VPC allocated from an IPAM pool: a /20 holds three /24 tiers in two AZs with room to grow. */
export const SILO_VPC_NETMASK = 20;

export interface NetworkProps {
  /**
   * The VPC's IPv4 range (fixed for the shared stacks; set in the catalog for a silo tenant that needs a
   * known range). Exactly one of `cidr` and `ipamPoolId`.
   * @default - a /20 allocated from `ipamPoolId`
   */
  readonly cidr?: string;
  /**
   * A VPC IP Address Manager pool to take a /20 from: ranges never overlap, at any fleet size, and go back to
   * the pool when the VPC is deleted.
   * @default - `cidr` is used
   */
  readonly ipamPoolId?: string;
  /** Encrypts the flow logs. */
  readonly key: kms.IKey;
  /**
   * Availability zones to span.
   * @default 2
   */
  readonly maxAzs?: number;
  /**
   * NAT gateways for the private tier (the service and the provisioner reach AWS APIs through them). One per
   * AZ, so losing an AZ never cuts the tasks in the other off KMS, Secrets Manager, Cognito's keys or the
   * registry. Each NAT gateway costs about $33 a month (us-east-1, $0.045 an hour) plus $0.045 per GB; the
   * alternative, interface endpoints for each service the tasks call (KMS, Secrets Manager, ECR, CloudWatch
   * Logs, STS), costs about $7.30 a month per service per AZ (about $73 for five services in two AZs) and still
   * leaves Cognito's signing keys on the internet. S3 and DynamoDB go through free gateway endpoints either way.
   * @default one per AZ
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
    if ((props.cidr === undefined) === (props.ipamPoolId === undefined)) {
      throw new Error(`Network ${id}: give exactly one of cidr and ipamPoolId`);
    }
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: props.cidr
        ? ec2.IpAddresses.cidr(props.cidr)
        : ec2.IpAddresses.awsIpamAllocation({
            ipv4IpamPoolId: props.ipamPoolId!,
            ipv4NetmaskLength: SILO_VPC_NETMASK,
            defaultSubnetIpv4NetmaskLength: 24,
          }),
      maxAzs: props.maxAzs ?? 2,
      natGateways: props.natGateways ?? props.maxAzs ?? 2,
      // S3 (image layers, access logs) and DynamoDB (the registry) without the NAT gateways: free, and in every AZ.
      gatewayEndpoints: {
        S3: { service: ec2.GatewayVpcEndpointAwsService.S3 },
        DynamoDB: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
      },
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
