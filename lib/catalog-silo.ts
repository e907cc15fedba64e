/**
 * A silo tenant's own settings in the catalog: its cost profile and what the profile lets it change (instance
 * class, standby, backups, VPC range, the snapshot it was restored from), validated with defaults applied. Part of
 * the catalog's rules (lib/catalog.ts), which report every problem at once; like it, this imports nothing from
 * aws-cdk-lib.
 */
import type { ProblemCode } from './catalog-problems';
import { intToIp, isPrivate, parseCidr } from './cidr';
import { DEFAULT_SILO_PROFILE, SILO_PROFILES, siloProfile, SiloProfileName } from './silo-profiles';

/** Silo-only settings after defaults are applied. */
export interface SiloSettings {
  /** Its cost profile (lib/silo-profiles.ts): the defaults below, the database engine, egress and task size. */
  readonly profile: SiloProfileName;
  /** RDS instance class without the `db.` prefix; `serverless` for the Aurora Serverless v2 profile. */
  readonly instanceClass: string;
  /** A standby instance in a second AZ (RDS profiles; an Aurora cluster keeps its storage in three AZs). */
  readonly multiAz: boolean;
  readonly backupRetentionDays: number;
  /**
   * A VPC range set in the catalog (for a tenant that must be reachable on a known range).
   * @default - a /20 allocated from the platform's VPC IP Address Manager pool at deploy time
   */
  readonly vpcCidr?: string;
  /**
   * The snapshot this silo's database was restored from (an explicit restore of an offboarded tenant). Kept for
   * the tenant's life: CloudFormation replaces a restored instance with an empty one if the property goes away.
   * @default - a new, empty database
   */
  readonly restoredFromSnapshot?: string;
}

/** Defaults every profile shares; the database's (class, standby) come from the profile (lib/silo-profiles.ts). */
export const SILO_DEFAULTS = {
  backupRetentionDays: 14,
} as const;

export const MIN_BACKUP_RETENTION_DAYS = 7;
export const MAX_BACKUP_RETENTION_DAYS = 35;

const SNAPSHOT_ID_PATTERN = /^[a-zA-Z][a-zA-Z0-9]*(-[a-zA-Z0-9]+)*$/;
const INSTANCE_CLASS_PATTERN = /^[a-z][a-z0-9-]*\.[a-z0-9]+$/;

/** A silo tenant's settings with defaults applied; each bad one is reported through `add`. */
export function siloSettings(
  settings: Record<string, unknown>,
  add: (code: ProblemCode, field: string, message: string) => void,
  tenantId: string | undefined,
): SiloSettings | undefined {
  let ok = true;
  const fail = (field: string, message: string) => {
    ok = false;
    add('invalid-field', field, message);
  };
  const profileName = settings.profile ?? DEFAULT_SILO_PROFILE;
  if (!SILO_PROFILES.includes(profileName as SiloProfileName)) {
    fail(
      'settings.profile',
      `field "settings.profile" is ${JSON.stringify(settings.profile)}: use one of ${SILO_PROFILES.map((p) => `"${p}"`).join(', ')} (the default is "${DEFAULT_SILO_PROFILE}"; the README's "Silo cost profiles" compares them)`,
    );
    return undefined;
  }
  const profile = siloProfile(profileName as SiloProfileName);
  const serverless = profile.database.engine === 'aurora-serverless';
  // Aurora Serverless v2 has no instance class to pick and no standby to turn off: its capacity follows load
  // and its storage is kept in three AZs. Asking for either is a contradiction, not a preference.
  for (const field of ['instanceClass', 'multiAz'] as const) {
    if (serverless && settings[field] !== undefined) {
      fail(
        `settings.${field}`,
        `field "settings.${field}" does not apply to the "${profile.name}" profile (Aurora Serverless v2 scales its capacity and keeps its storage in three AZs): remove it, or use the "standard" or "production" profile`,
      );
    }
  }
  if (profile.name === 'production' && settings.multiAz === false) {
    fail(
      'settings.multiAz',
      'field "settings.multiAz" is false, but the "production" profile is the highly available one: remove it, or use the "standard" profile for a single-AZ database',
    );
  }
  // An RDS profile's defaults, which the catalog may override; Aurora Serverless has neither setting.
  const db = profile.database;
  const instanceClass = db.engine === 'rds' ? (settings.instanceClass ?? db.instanceClass) : 'serverless';
  if (
    db.engine === 'rds' &&
    (typeof instanceClass !== 'string' || !INSTANCE_CLASS_PATTERN.test(instanceClass))
  ) {
    fail(
      'settings.instanceClass',
      `field "settings.instanceClass" is ${JSON.stringify(instanceClass)}: use an RDS class without the "db." prefix, e.g. "t4g.medium" or "r6g.large"`,
    );
  }
  const multiAz = db.engine === 'rds' ? (settings.multiAz ?? db.multiAz) : false;
  if (typeof multiAz !== 'boolean')
    fail('settings.multiAz', 'field "settings.multiAz" must be true or false');
  const days = settings.backupRetentionDays ?? SILO_DEFAULTS.backupRetentionDays;
  if (
    typeof days !== 'number' ||
    !Number.isInteger(days) ||
    days < MIN_BACKUP_RETENTION_DAYS ||
    days > MAX_BACKUP_RETENTION_DAYS
  ) {
    fail(
      'settings.backupRetentionDays',
      `field "settings.backupRetentionDays" is ${JSON.stringify(days)}: use a whole number of days from ${MIN_BACKUP_RETENTION_DAYS} to ${MAX_BACKUP_RETENTION_DAYS}`,
    );
  }
  let vpcCidr: string | undefined;
  if (settings.vpcCidr !== undefined) {
    const cidrProblem = siloCidrProblem(settings.vpcCidr);
    if (cidrProblem) fail('settings.vpcCidr', `field "settings.vpcCidr" ${cidrProblem}`);
    else vpcCidr = settings.vpcCidr as string;
  }
  const snapshot = settings.restoredFromSnapshot;
  if (
    snapshot !== undefined &&
    (typeof snapshot !== 'string' || !SNAPSHOT_ID_PATTERN.test(snapshot) || snapshot.length > 255)
  ) {
    fail(
      'settings.restoredFromSnapshot',
      `field "settings.restoredFromSnapshot" is ${JSON.stringify(snapshot)}: use an RDS snapshot identifier (letters, digits and single hyphens, starting with a letter)`,
    );
  } else if (snapshot !== undefined && tenantId && !(snapshot as string).startsWith(`${tenantId}-final-`)) {
    // A tenant's database comes back only from its own final snapshot (offboarding names it <id>-final-<time>),
    // never from another tenant's.
    fail(
      'settings.restoredFromSnapshot',
      `field "settings.restoredFromSnapshot" is ${JSON.stringify(snapshot)}: a tenant is restored only from its own final snapshot, "${tenantId}-final-<time>"`,
    );
  }
  if (!ok) return undefined;
  return {
    profile: profile.name,
    instanceClass: instanceClass as string,
    multiAz: multiAz as boolean,
    backupRetentionDays: days as number,
    ...(vpcCidr ? { vpcCidr } : {}),
    ...(snapshot ? { restoredFromSnapshot: snapshot as string } : {}),
  };
}

export function validVpcCidr(settings: Record<string, unknown>): string | undefined {
  return settings.vpcCidr !== undefined && !siloCidrProblem(settings.vpcCidr)
    ? (settings.vpcCidr as string)
    : undefined;
}

export function siloCidrProblem(value: unknown): string | undefined {
  const parsed = typeof value === 'string' ? parseCidr(value) : undefined;
  if (!parsed) {
    return `is ${JSON.stringify(value)}: use an IPv4 CIDR block such as "10.20.0.0/20", or leave it out to get a range from the platform's address pool`;
  }
  if (parsed.prefix < 16 || parsed.prefix > 22) {
    return `is "${value as string}": use a prefix from /16 to /22 (a silo VPC needs room for three subnet tiers in two AZs)`;
  }
  if (!isPrivate(parsed)) {
    return `is "${value as string}": use a private range (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)`;
  }
  if (parsed.start !== parsed.network) {
    return `is "${value as string}": host bits are set; did you mean "${intToIp(parsed.start)}/${parsed.prefix}"?`;
  }
  return undefined;
}
