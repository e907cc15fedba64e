/**
 * Is the tenant served yet? Decided from AWS's own view of the service that serves it (its ECS deployment at
 * steady state and its load balancer targets healthy), or, when the tenant has a DNS name, from
 * `https://<host>/ready` with the certificate verified. Never from the load balancer's AWS DNS name over
 * HTTPS: no certificate can cover `*.elb.amazonaws.com`.
 */
import { DescribeServicesCommand, ECSClient } from '@aws-sdk/client-ecs';
import {
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { IsolationModel, ssmNames } from '../../contracts';

const ecs = new ECSClient({});
const elb = new ElasticLoadBalancingV2Client({});
const ssm = new SSMClient({});

/** The tenant's service is not ready yet (the workflow retries). */
export class NotReady extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotReady';
  }
}

/** The tenant's service cannot become ready (its deployment failed): retrying would not help. */
export class DeploymentFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeploymentFailed';
  }
}

export async function checkReady(
  tenantId: string,
  model: IsolationModel,
  host?: string,
): Promise<Record<string, unknown>> {
  if (host) return checkHost(host);
  const name = ssmNames.apiServiceFor(model, tenantId);
  let service: { cluster: string; service: string; targetGroupArn: string };
  try {
    const r = await ssm.send(new GetParameterCommand({ Name: name }));
    service = JSON.parse(r.Parameter!.Value!);
  } catch (e) {
    throw new NotReady(`the API service parameter ${name} is not published yet: ${(e as Error).message}`);
  }
  const described = await ecs.send(
    new DescribeServicesCommand({ cluster: service.cluster, services: [service.service] }),
  );
  const svc = described.services?.[0];
  if (!svc)
    throw new NotReady(`ECS service ${service.service} is not found in cluster ${service.cluster} yet`);
  const primary = svc.deployments?.find((d) => d.status === 'PRIMARY');
  if (primary?.rolloutState === 'FAILED') {
    throw new DeploymentFailed(
      `ECS service ${service.service}: its deployment failed: ${primary.rolloutStateReason ?? 'no reason given'}`,
    );
  }
  const desired = svc.desiredCount ?? 0;
  if (primary?.rolloutState !== 'COMPLETED' || desired === 0 || (svc.runningCount ?? 0) < desired) {
    throw new NotReady(
      `ECS service ${service.service}: deployment ${primary?.rolloutState ?? 'unknown'}, ${svc.runningCount ?? 0} of ${desired} tasks running`,
    );
  }
  const health = await elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: service.targetGroupArn }));
  const states = (health.TargetHealthDescriptions ?? []).map((t) => t.TargetHealth?.State ?? 'unknown');
  if (!states.includes('healthy')) {
    throw new NotReady(`no healthy load balancer target yet (${states.join(', ') || 'no targets'})`);
  }
  return {
    ready: true,
    runningTasks: svc.runningCount,
    healthyTargets: states.filter((s) => s === 'healthy').length,
  };
}

async function checkHost(host: string): Promise<Record<string, unknown>> {
  if (!/^[a-z0-9.-]+$/.test(host))
    throw new Error(`readiness: host ${JSON.stringify(host)} is not a DNS name`);
  let status: number;
  try {
    status = (await fetch(`https://${host}/ready`, { signal: AbortSignal.timeout(5000) })).status;
  } catch (e) {
    throw new NotReady(`https://${host}/ready did not answer: ${(e as Error).message}`);
  }
  if (status !== 200) throw new NotReady(`https://${host}/ready answered ${status}`);
  return { ready: true, host };
}
