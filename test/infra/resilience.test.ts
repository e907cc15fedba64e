import { Match } from 'aws-cdk-lib/assertions';
import { WAF_BODY_RULES_COUNTED } from '../../lib/constructs/api-service';
import { instanceMemoryGiB } from '../../lib/constructs/database';
import { synthFleet } from './fleet-helpers';

// What keeps a cell up when part of AWS is not: egress in every AZ, a WAF that agrees with the API, and an alarm
// before the database runs out of memory.
const fleet = synthFleet();
const CELLS = ['Pool', 'Bridge', 'Tenant-northwind', 'Tenant-initech-qa'];

describe('resilience of every cell', () => {
  test.each(CELLS)('%s: a NAT gateway in each AZ, and S3 and DynamoDB through gateway endpoints', (stack) => {
    const t = fleet.template(stack);
    const subnets = t.findResources('AWS::EC2::Subnet');
    const publicSubnets = Object.keys(subnets).filter((id) => /public/i.test(id));
    const nats = Object.values(t.findResources('AWS::EC2::NatGateway')) as {
      Properties: { SubnetId: { Ref: string } };
    }[];
    // One per public subnet, i.e. per AZ: losing an AZ leaves the other's tasks their way out.
    expect(nats.map((n) => n.Properties.SubnetId.Ref).sort()).toEqual(publicSubnets.sort());
    expect(nats.length).toBe(2);
    // Each private (app) subnet routes to the NAT gateway of its own AZ.
    const routes = Object.values(t.findResources('AWS::EC2::Route')) as {
      Properties: { NatGatewayId?: { Ref: string } };
    }[];
    const natRoutes = routes
      .filter((r) => r.Properties.NatGatewayId)
      .map((r) => r.Properties.NatGatewayId!.Ref);
    expect(new Set(natRoutes).size).toBe(2);
    for (const service of ['s3', 'dynamodb']) {
      t.hasResourceProperties('AWS::EC2::VPCEndpoint', {
        VpcEndpointType: 'Gateway',
        ServiceName: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([`.${service}`])] }),
      });
    }
  });

  test.each(CELLS)("%s: the WAF leaves request bodies to the API's own validation", (stack) => {
    fleet.template(stack).hasResourceProperties('AWS::WAFv2::WebACL', {
      Rules: Match.arrayWith([
        Match.objectLike({
          Name: 'AWSManagedRulesCommonRuleSet',
          Statement: {
            ManagedRuleGroupStatement: Match.objectLike({
              RuleActionOverrides: WAF_BODY_RULES_COUNTED.map((name) => ({
                Name: name,
                ActionToUse: { Count: {} },
              })),
            }),
          },
        }),
      ]),
    });
    expect(WAF_BODY_RULES_COUNTED).toEqual(['SizeRestrictions_BODY', 'CrossSiteScripting_BODY']);
  });

  test.each([
    ['Bridge', 't4g.medium'],
    ['Tenant-northwind', 'r6g.large'],
  ])('%s: an alarm on the database memory, sent to the cell topic', (stack, instanceClass) => {
    const t = fleet.template(stack);
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'FreeableMemory',
      Namespace: 'AWS/RDS',
      ComparisonOperator: 'LessThanThreshold',
      Threshold: Math.round(instanceMemoryGiB(instanceClass) * 0.1 * 1024 ** 3),
      EvaluationPeriods: 3,
      AlarmActions: [{ Ref: Match.stringLikeRegexp('Alarms') }],
    });
    t.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
  });

  test('instance memory by class', () => {
    expect(instanceMemoryGiB('t4g.medium')).toBe(4);
    expect(instanceMemoryGiB('r6g.large')).toBe(16);
    expect(instanceMemoryGiB('r7g.2xlarge')).toBe(64);
    expect(instanceMemoryGiB('m7g.xlarge')).toBe(16);
  });
});
