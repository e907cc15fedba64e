import { Construct } from 'constructs';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import { ack, HIPAA_AND_NIST, l1 } from '../nag';
import { EncryptedLogGroup } from './encrypted-log-group';
import { SiloEgress } from '../silo-profiles';

/** Where the provisioner's functions run, whatever the egress: the `app` tier. */
export const APP_SUBNETS: ec2.SubnetSelection = { subnetGroupName: 'app' };

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
  /**
   * `nat-per-az`: the `app` tier has a route out through NAT gateways. `task-public-ip`: no NAT gateway; the API
   * tasks run in the public tier with public addresses (ApiService); the VPC is dual-stack and the `app` tier's
   * only route out is IPv6 through an egress-only internet gateway (the provisioner's way to Secrets Manager).
   * @default 'nat-per-az'
   */
  readonly egress?: SiloEgress;
}

/**
 * A three-tier VPC: public (the load balancer only), private with egress (the service and the provisioner)
 * and isolated (the database, no route out). Every packet decision is recorded in encrypted flow logs, and
 * the default security group allows nothing.
 */
export class Network extends Construct {
  readonly vpc: ec2.Vpc;
  /** Whether the `app` tier's functions must be allowed IPv6 out (the VPC has no NAT gateway). */
  readonly ipv6Egress: boolean;

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    if ((props.cidr === undefined) === (props.ipamPoolId === undefined)) {
      throw new Error(`Network ${id}: give exactly one of cidr and ipamPoolId`);
    }
    const publicTasks = props.egress === 'task-public-ip';
    this.ipv6Egress = publicTasks;
    // Only the `app` tier hands out IPv6 addresses (the provisioner's functions need one to go out; its only route
    // is the egress-only gateway, so nothing can reach them); the public and data tiers assign none.
    const noIpv6AutoAssign = publicTasks ? { ipv6AssignAddressOnCreation: false } : {};
    const appIpv6AutoAssign = publicTasks ? { ipv6AssignAddressOnCreation: true } : {};
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: props.cidr
        ? ec2.IpAddresses.cidr(props.cidr)
        : ec2.IpAddresses.awsIpamAllocation({
            ipv4IpamPoolId: props.ipamPoolId!,
            ipv4NetmaskLength: SILO_VPC_NETMASK,
            defaultSubnetIpv4NetmaskLength: 24,
          }),
      maxAzs: props.maxAzs ?? 2,
      // Without NAT gateways, the isolated `app` tier's only way out is IPv6 (see the egress-only gateway below).
      ipProtocol: publicTasks ? ec2.IpProtocol.DUAL_STACK : ec2.IpProtocol.IPV4_ONLY,
      natGateways: publicTasks ? 0 : (props.natGateways ?? props.maxAzs ?? 2),
      // S3 (image layers, access logs) and DynamoDB (the registry) without the NAT gateways: free, and in every AZ.
      gatewayEndpoints: {
        S3: { service: ec2.GatewayVpcEndpointAwsService.S3 },
        DynamoDB: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
      },
      restrictDefaultSecurityGroup: true,
      subnetConfiguration: [
        {
          name: 'public',
          subnetType: ec2.SubnetType.PUBLIC,
          cidrMask: 24,
          mapPublicIpOnLaunch: false,
          ...noIpv6AutoAssign,
        },
        {
          name: 'app',
          subnetType: publicTasks ? ec2.SubnetType.PRIVATE_ISOLATED : ec2.SubnetType.PRIVATE_WITH_EGRESS,
          cidrMask: 24,
          ...appIpv6AutoAssign,
        },
        { name: 'data', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24, ...noIpv6AutoAssign },
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
    if (publicTasks) {
      // The provisioner's way out: IPv6 only, through an egress-only gateway (nothing can connect in). Secrets
      // Manager's regional endpoint is dual-stack; DynamoDB and S3 are reached through the gateway endpoints;
      // CloudFormation is answered by the provider framework's function, which runs outside the VPC, and asked
      // (a shared cell's tenant stack status) at its dual-stack endpoint (test/lambda/ipv6-egress-clients.test.ts).
      // A dual-stack VPC comes with an egress-only gateway; only the `app` tier gets a route to it.
      const eigw = this.vpc.node.children.find(
        (c): c is ec2.CfnEgressOnlyInternetGateway => c instanceof ec2.CfnEgressOnlyInternetGateway,
      );
      if (!eigw) throw new Error(`Network ${id}: the dual-stack VPC has no egress-only internet gateway`);
      for (const subnet of this.vpc.selectSubnets(APP_SUBNETS).subnets) {
        (subnet as ec2.Subnet).addIpv6DefaultEgressOnlyInternetRoute(eigw.attrId);
        ack(
          l1(subnet),
          HIPAA_AND_NIST('VPCSubnetAutoAssignPublicIpDisabled'),
          'The provisioner tier assigns IPv6 addresses so its functions can call AWS APIs without a NAT gateway; its only route beyond the VPC is an egress-only internet gateway, which lets no connection in, and no IPv4 public address is ever assigned.',
        );
      }
    }
    for (const subnet of this.vpc.publicSubnets) {
      for (const route of subnet.node.children.filter((c): c is ec2.CfnRoute => c instanceof ec2.CfnRoute))
        ack(
          route,
          HIPAA_AND_NIST('VPCNoUnrestrictedRouteToIGW'),
          publicTasks
            ? "The public tier holds the internet-facing load balancer, the API tasks and, while it runs, the mobility runner's task (this cell's profile has no NAT gateway): the API tasks' security group admits only the load balancer and the runner task's admits nothing, so nothing on the internet can open a connection to a task; the database sits in isolated subnets with no route out, and the only way out of the provisioner tier is an egress-only IPv6 gateway."
            : 'The public tier holds only the internet-facing load balancer and the NAT gateway; the API tasks and the database sit in private and isolated subnets with no route to the internet gateway.',
        );
    }
  }
}
