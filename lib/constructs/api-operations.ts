/**
 * What keeps an API service (lib/constructs/api-service.ts) serving under load, and what tells its operators which
 * tenant causes it: autoscaling, and per-tenant metrics with an alarm on sustained throttling.
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';

/** More tasks under load: on CPU, and on requests per task (a flood that the limits refuse still costs CPU). */
export function scaleOnLoad(
  service: ecs.FargateService,
  targetGroup: elbv2.ApplicationTargetGroup,
  desired: number,
  max?: number,
): void {
  const scaling = service.autoScaleTaskCount({
    minCapacity: desired,
    maxCapacity: max ?? desired * 4,
  });
  scaling.scaleOnCpuUtilization('Cpu', { targetUtilizationPercent: 60 });
  scaling.scaleOnRequestCount('Requests', { requestsPerTarget: 3000, targetGroup });
}

/**
 * Per-tenant metrics from the API's once-a-minute usage lines (service/src/tenant-usage.ts, "tenant usage"): requests,
 * throttled requests and the slowest request, with the tenant as a dimension (namespace TenantForge/Api), and
 * an alarm when some tenant has been throttled in every minute for 10 minutes.
 */
export function tenantMetrics(scope: Construct, logGroup: logs.ILogGroup, topic?: sns.ITopic): void {
  const namespace = 'TenantForge/Api';
  const usage = '{ $.msg = "tenant usage" }';
  for (const [name, field] of [
    ['TenantRequests', '$.requests'],
    ['TenantThrottled', '$.throttled'],
    ['TenantLatencyMaxMs', '$.latencyMsMax'],
  ] as const) {
    new logs.MetricFilter(scope, `${name}Filter`, {
      logGroup,
      metricNamespace: namespace,
      metricName: name,
      filterPattern: logs.FilterPattern.literal(usage),
      metricValue: field,
      dimensions: { TenantId: '$.tenantId' },
    });
  }
  const throttledTenants = new logs.MetricFilter(scope, 'TenantsThrottledFilter', {
    logGroup,
    metricNamespace: namespace,
    metricName: 'TenantsThrottled',
    filterPattern: logs.FilterPattern.literal('{ $.msg = "tenant usage" && $.throttled > 0 }'),
    metricValue: '1',
  });
  if (!topic) return;
  const alarm = new cloudwatch.Alarm(scope, 'SustainedThrottling', {
    alarmDescription:
      'Some tenant of this cell was throttled (429/503 from its limits) in every minute for 10 minutes, not necessarily the same one each minute: see TenantThrottled by TenantId to find which; raise its tier or find what floods.',
    metric: throttledTenants.metric({ statistic: 'Sum', period: Duration.minutes(1) }),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 10,
    datapointsToAlarm: 10,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });
  alarm.addAlarmAction(new cloudwatchActions.SnsAction(topic));
}
