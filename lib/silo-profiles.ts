/**
 * Silo cost profiles: how a silo tenant's own cell is built. Every profile keeps the silo's isolation (its own
 * VPC, its own database, its own KMS key) and passes the same compliance packs; they differ in what is paid for
 * by the hour. The README's "Silo cost profiles" section states each one's trade-offs; `npm run cost` prices
 * them. This module imports nothing from aws-cdk-lib: the catalog validates against it.
 */
import { SILO_PROFILES, SiloProfileName } from '../contracts';

export { SILO_PROFILES };
export type { SiloProfileName };

/** The silo database: an RDS PostgreSQL instance, or an Aurora PostgreSQL Serverless v2 cluster. */
export type SiloDatabase =
  | {
      readonly engine: 'rds';
      /** RDS instance class without the `db.` prefix (the catalog's `settings.instanceClass` overrides it). */
      readonly instanceClass: string;
      readonly multiAz: boolean;
      readonly storageGiB: number;
    }
  | {
      readonly engine: 'aurora-serverless';
      /** Aurora capacity units: 0 lets the cluster pause when idle (no compute is billed while paused). */
      readonly minAcu: number;
      readonly maxAcu: number;
      /** Idle time before a paused-capable cluster pauses. */
      readonly autoPauseMinutes: number;
    };

/**
 * How the API tasks and the provisioner reach AWS APIs and the identity provider's keys:
 * - `nat-per-az`: tasks in private subnets behind a NAT gateway in each AZ;
 * - `task-public-ip`: tasks in the public subnets with a public IPv4 address each and a security group that
 *   admits only the load balancer; no NAT gateway. The provisioner (a Lambda function, which cannot hold a
 *   public address) reaches Secrets Manager over IPv6 through an egress-only internet gateway, and DynamoDB/S3
 *   through gateway endpoints.
 */
export type SiloEgress = 'nat-per-az' | 'task-public-ip';

export interface SiloProfile {
  readonly name: SiloProfileName;
  /** One line for tables and errors. */
  readonly summary: string;
  readonly database: SiloDatabase;
  readonly egress: SiloEgress;
  /** The API service's minimum task count (autoscaling adds up to 4x) and each task's size (Graviton). */
  readonly tasks: { readonly count: number; readonly cpu: number; readonly memoryMiB: number };
}

export const SILO_PROFILE_TABLE: Readonly<Record<SiloProfileName, SiloProfile>> = {
  standard: {
    name: 'standard',
    summary: 'Multi-AZ RDS db.t4g.medium, tasks in private subnets behind a NAT gateway per AZ (the default)',
    database: { engine: 'rds', instanceClass: 't4g.medium', multiAz: true, storageGiB: 50 },
    egress: 'nat-per-az',
    tasks: { count: 2, cpu: 512, memoryMiB: 1024 },
  },
  production: {
    name: 'production',
    summary: 'Multi-AZ RDS db.t4g.small, two tasks in two AZs with public addresses, no NAT gateway',
    // The same storage as standard: RDS never shrinks storage, so a silo moving between the two never has to.
    database: { engine: 'rds', instanceClass: 't4g.small', multiAz: true, storageGiB: 50 },
    egress: 'task-public-ip',
    tasks: { count: 2, cpu: 512, memoryMiB: 1024 },
  },
  'idle-friendly': {
    name: 'idle-friendly',
    summary: 'Aurora Serverless v2 pausing at 0 ACU, one small task with a public address, no NAT gateway',
    database: { engine: 'aurora-serverless', minAcu: 0, maxAcu: 4, autoPauseMinutes: 15 },
    egress: 'task-public-ip',
    tasks: { count: 1, cpu: 256, memoryMiB: 512 },
  },
};

/** The profile a silo gets when its catalog entry names none. */
export const DEFAULT_SILO_PROFILE: SiloProfileName = 'standard';

export function siloProfile(name: SiloProfileName): SiloProfile {
  return SILO_PROFILE_TABLE[name];
}
