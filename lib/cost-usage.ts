/**
 * The usage assumptions `npm run cost` prices usage-driven lines with (log volume, NAT traffic, load balancer
 * capacity, WAF requests, backup storage, active users, IPAM addresses, registry reads, Aurora use, burstable databases' CPU): the defaults,
 * which flags change, and an idle tenant's.
 */
export interface Usage {
  /** GB ingested per month into each log group (API, provisioner, flow logs, WAF). */
  readonly logGbPerLogGroup: number;
  /** GB per month through each NAT gateway. */
  readonly natGbPerGateway: number;
  /** Average load balancer capacity units per load balancer. */
  readonly albLcu: number;
  /** Millions of requests per month per web ACL. */
  readonly wafMillionRequests: number;
  /** Backup storage as a multiple of the database's allocated storage. */
  readonly backupGbFactor: number;
  /** Monthly active users per tenant (Cognito). */
  readonly mauPerTenant: number;
  /** Active IP addresses the IPAM monitors, per VPC. */
  readonly ipamIpsPerVpc: number;
  /** Millions of registry reads per month (DynamoDB on demand). */
  readonly registryMillionReads: number;
  /** Aurora Serverless v2 capacity-unit hours per cluster per month above its minimum (a pausing cluster's use). */
  readonly auroraAcuHours: number;
  /** GB stored per Aurora cluster (Aurora bills what is used, not what is allocated). */
  readonly auroraStorageGb: number;
  /**
   * Average CPU utilization, in percent, of each burstable (T class) RDS database: what it uses above its class's
   * baseline is billed as CPU credits (RDS runs T classes in Unlimited mode).
   */
  readonly dbCpuPercent: number;
}

export const DEFAULT_USAGE: Usage = {
  logGbPerLogGroup: 0.2,
  natGbPerGateway: 5,
  albLcu: 1,
  wafMillionRequests: 1,
  backupGbFactor: 1,
  mauPerTenant: 5,
  ipamIpsPerVpc: 16,
  registryMillionReads: 1,
  auroraAcuHours: 30,
  auroraStorageGb: 10,
  dbCpuPercent: 20,
};

/**
 * A tenant with no traffic: no load balancer capacity, WAF requests or NAT traffic, little logging, a pausing
 * database that stays paused. What an "idle silo" costs is the fleet's floor.
 */
export const IDLE_USAGE: Usage = {
  ...DEFAULT_USAGE,
  logGbPerLogGroup: 0.01,
  natGbPerGateway: 0,
  albLcu: 0,
  wafMillionRequests: 0,
  mauPerTenant: 1,
  registryMillionReads: 0,
  auroraAcuHours: 0,
  auroraStorageGb: 1,
  dbCpuPercent: 5,
};
