import { Match } from 'aws-cdk-lib/assertions';
import {
  WAF_ADDRESS_RATE_PER_MINUTE,
  WAF_BODY_RULES_COUNTED,
  WAF_TOKEN_RATE_PER_MINUTE,
} from '../../lib/constructs/api-service';
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

describe('noisy neighbours at the edge and in operations (issue 15)', () => {
  test.each(CELLS)(
    '%s: the WAF answers 429 to one token over its rate, keyed on the Authorization header',
    (stack) => {
      fleet.template(stack).hasResourceProperties('AWS::WAFv2::WebACL', {
        Rules: Match.arrayWith([
          Match.objectLike({
            Name: 'RatePerToken',
            Action: { Block: { CustomResponse: { ResponseCode: 429 } } },
            Statement: {
              RateBasedStatement: {
                AggregateKeyType: 'CUSTOM_KEYS',
                CustomKeys: [
                  { Header: { Name: 'authorization', TextTransformations: [{ Priority: 0, Type: 'NONE' }] } },
                ],
                Limit: WAF_TOKEN_RATE_PER_MINUTE,
                EvaluationWindowSec: 60,
              },
            },
          }),
        ]),
      });
    },
  );

  test.each(CELLS)(
    '%s: a per-address backstop rule, and WAF logs keep only a hash of the Authorization header',
    (stack) => {
      fleet.template(stack).hasResourceProperties('AWS::WAFv2::WebACL', {
        Rules: Match.arrayWith([
          Match.objectLike({
            Name: 'RatePerAddress',
            Action: { Block: { CustomResponse: { ResponseCode: 429 } } },
            Statement: {
              RateBasedStatement: {
                AggregateKeyType: 'IP',
                Limit: WAF_ADDRESS_RATE_PER_MINUTE,
                EvaluationWindowSec: 60,
              },
            },
          }),
        ]),
        DataProtectionConfig: {
          DataProtections: [
            { Action: 'HASH', Field: { FieldType: 'SINGLE_HEADER', FieldKeys: ['authorization'] } },
          ],
        },
      });
    },
  );

  test.each(CELLS)(
    '%s: the API scales out on CPU and on requests per task, from its desired count up',
    (stack) => {
      const t = fleet.template(stack);
      // Autoscaling owns the count: a DesiredCount in the template would reset it on every service update.
      for (const service of Object.values(t.findResources('AWS::ECS::Service')) as { Properties: object }[]) {
        expect(service.Properties).not.toHaveProperty('DesiredCount');
      }
      t.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
        MinCapacity: 2,
        MaxCapacity: 8,
        ScalableDimension: 'ecs:service:DesiredCount',
      });
      t.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
        TargetTrackingScalingPolicyConfiguration: Match.objectLike({
          PredefinedMetricSpecification: { PredefinedMetricType: 'ECSServiceAverageCPUUtilization' },
          TargetValue: 60,
        }),
      });
      t.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
        TargetTrackingScalingPolicyConfiguration: Match.objectLike({
          PredefinedMetricSpecification: Match.objectLike({
            PredefinedMetricType: 'ALBRequestCountPerTarget',
          }),
        }),
      });
    },
  );

  test.each(CELLS)(
    '%s: per-tenant metrics from the API log (tenant as a dimension), and an alarm on sustained throttling',
    (stack) => {
      const t = fleet.template(stack);
      for (const [name, value] of [
        ['TenantRequests', '$.requests'],
        ['TenantThrottled', '$.throttled'],
        ['TenantLatencyMaxMs', '$.latencyMsMax'],
      ]) {
        t.hasResourceProperties('AWS::Logs::MetricFilter', {
          FilterPattern: '{ $.msg = "tenant usage" }',
          MetricTransformations: [
            {
              MetricNamespace: 'TenantForge/Api',
              MetricName: name,
              MetricValue: value,
              Dimensions: [{ Key: 'TenantId', Value: '$.tenantId' }],
            },
          ],
        });
      }
      t.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'TenantForge/Api',
        MetricName: 'TenantsThrottled',
        Statistic: 'Sum',
        Period: 60,
        EvaluationPeriods: 10,
        DatapointsToAlarm: 10,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        AlarmActions: Match.anyValue(),
      });
    },
  );
});
