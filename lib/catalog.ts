/**
 * The tenant catalog: its schema, defaults and validation.
 *
 * Validation runs before any construct is built and reports every problem at once, each naming the source
 * file, the tenant, the field and the fix. This module imports nothing from aws-cdk-lib, so the onboarding
 * pipeline's handlers can apply exactly the same rules to a single request.
 */
import * as fs from 'fs';
import { createHash } from 'crypto';
import { DeletionPolicy, ISOLATION_MODELS, IsolationModel } from '../contracts';
import { tenantIdProblem } from '../db/naming';
import { CidrRange, intToIp, isPrivate, nthBlock, overlaps, parseCidr } from './cidr';

export type { DeletionPolicy };

/** Settings as they come in the catalog (all optional). */
export interface TenantSettingsInput {
  readonly deletionPolicy?: DeletionPolicy;
  readonly instanceClass?: string;
  readonly multiAz?: boolean;
  readonly backupRetentionDays?: number;
  readonly vpcCidr?: string;
}

/** Silo-only settings after defaults are applied. */
export interface SiloSettings {
  /** RDS instance class without the `db.` prefix. */
  readonly instanceClass: string;
  readonly multiAz: boolean;
  readonly backupRetentionDays: number;
  readonly vpcCidr: string;
  /** True when `vpcCidr` was derived from the tenant id rather than set in the catalog. */
  readonly vpcCidrDerived: boolean;
}

export interface Tenant {
  readonly id: string;
  readonly name: string;
  readonly model: IsolationModel;
  /** `retain` keeps the tenant's data when its stack is destroyed; `destroy` is for test tenants only. */
  readonly deletionPolicy: DeletionPolicy;
  /** Present for silo tenants only. */
  readonly silo?: SiloSettings;
}

export interface Catalog {
  readonly source: string;
  readonly tenants: readonly Tenant[];
}

/** The shared VPCs' ranges: no silo VPC may overlap them, so they can be peered or routed later. */
export const SHARED_VPC_CIDRS: Readonly<Record<'pool' | 'bridge', string>> = {
  pool: '10.0.0.0/16',
  bridge: '10.1.0.0/16',
};

export const SILO_DEFAULTS = {
  instanceClass: 't4g.medium',
  multiAz: true,
  backupRetentionDays: 14,
} as const;

export const MIN_BACKUP_RETENTION_DAYS = 7;
export const MAX_BACKUP_RETENTION_DAYS = 35;

/** Silo VPCs without an explicit CIDR get a /20 in 10.128.0.0/9 chosen from a hash of the tenant id. */
const DERIVED_CIDR_BASE = '10.128.0.0';
const DERIVED_CIDR_PREFIX = 20;
const DERIVED_CIDR_SLOTS = 2 ** (DERIVED_CIDR_PREFIX - 9);

const TENANT_FIELDS = new Set(['id', 'name', 'model', 'settings']);
const SETTINGS_FIELDS = new Set([
  'deletionPolicy',
  'instanceClass',
  'multiAz',
  'backupRetentionDays',
  'vpcCidr',
]);
const SILO_ONLY_SETTINGS = ['instanceClass', 'multiAz', 'backupRetentionDays', 'vpcCidr'];
const INSTANCE_CLASS_PATTERN = /^[a-z][a-z0-9-]*\.[a-z0-9]+$/;

/** What a problem is about, so code can decide on it without reading its message. */
export type ProblemCode =
  | 'unreadable'
  | 'invalid-document'
  | 'unknown-field'
  | 'invalid-id'
  | 'invalid-field'
  | 'silo-only-setting'
  | 'duplicate-id'
  | 'cidr-overlap';

/** One problem with a catalog or a request: a code, the tenant and field it concerns, and the message users see. */
export interface Problem {
  readonly code: ProblemCode;
  /** The tenant's id, when the id itself is usable. */
  readonly tenantId?: string;
  /** The field, as written in the catalog (`settings.vpcCidr`). */
  readonly field?: string;
  readonly message: string;
}

export class CatalogError extends Error {
  constructor(
    readonly source: string,
    readonly problems: readonly Problem[],
  ) {
    super(
      `${source}: the tenant catalog has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n` +
        problems.map((p) => `  - ${p.message}`).join('\n'),
    );
    this.name = 'CatalogError';
  }

  /** The problems' messages, in order. */
  get messages(): string[] {
    return this.problems.map((p) => p.message);
  }
}

const problem = (code: ProblemCode, message: string, tenantId?: string, field?: string): Problem => ({
  code,
  message,
  ...(tenantId !== undefined ? { tenantId } : {}),
  ...(field !== undefined ? { field } : {}),
});

/**
 * Reads and validates a catalog file. Throws CatalogError naming the file on any problem. `extraTenants` (an
 * onboarding request) are validated together with the file's, so duplicates and CIDR overlaps are caught.
 */
export function loadCatalog(path: string, extraTenants: readonly unknown[] = []): Catalog {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw new CatalogError(path, [
      problem(
        'unreadable',
        `cannot read the catalog (${(e as Error).message}): pass an existing file with -c catalog=<path>`,
      ),
    ]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CatalogError(path, [
      problem('invalid-document', `is not valid JSON (${(e as Error).message}): fix the syntax`),
    ]);
  }
  if (extraTenants.length > 0 && isObject(raw) && Array.isArray(raw.tenants)) {
    raw = { ...raw, tenants: [...raw.tenants, ...extraTenants] };
  }
  return parseCatalog(raw, path);
}

/** Validates a parsed catalog document (`{ "tenants": [...] }`). */
export function parseCatalog(raw: unknown, source: string): Catalog {
  if (!isObject(raw) || !Array.isArray(raw.tenants)) {
    throw new CatalogError(source, [
      problem('invalid-document', 'must be an object with a "tenants" array: { "tenants": [ ... ] }'),
    ]);
  }
  const unknownTop = Object.keys(raw).filter((k) => k !== 'tenants' && k !== '$schema');
  const problems: Problem[] = unknownTop.map((k) =>
    problem(
      'unknown-field',
      `unknown top-level field "${k}": only "tenants" is allowed (check the spelling)`,
    ),
  );
  const tenants: Tenant[] = [];
  const seen = new Map<string, number>();
  raw.tenants.forEach((entry: unknown, index: number) => {
    const result = parseTenant(entry, `tenant #${index + 1}`);
    problems.push(...result.problems);
    if (!result.tenant) return;
    const first = seen.get(result.tenant.id);
    if (first !== undefined) {
      problems.push(
        problem(
          'duplicate-id',
          `tenant "${result.tenant.id}" (#${index + 1}): duplicate id, already used by tenant #${first + 1}: ids must be unique`,
          result.tenant.id,
          'id',
        ),
      );
      return;
    }
    seen.set(result.tenant.id, index);
    tenants.push(result.tenant);
  });
  problems.push(...cidrProblems(tenants));
  if (problems.length > 0) throw new CatalogError(source, problems);
  return { source, tenants };
}

/**
 * Validates one tenant entry, e.g. an onboarding request. `where` names it in messages when the id itself
 * is unusable. Returns the tenant with defaults applied, or the problems.
 */
export function parseTenant(entry: unknown, where: string): { tenant?: Tenant; problems: Problem[] } {
  if (!isObject(entry)) {
    return {
      problems: [problem('invalid-document', `${where}: must be an object with "id", "name" and "model"`)],
    };
  }
  const problems: Problem[] = [];
  const idProblem = tenantIdProblem(entry.id);
  const tenantId = idProblem ? undefined : (entry.id as string);
  const label = idProblem ? where : `tenant "${tenantId}"`;
  const add = (code: ProblemCode, field: string | undefined, message: string) =>
    problems.push(problem(code, `${label}: ${message}`, tenantId, field));
  if (idProblem) problems.push(problem('invalid-id', `${where}: field "id": ${idProblem}`, undefined, 'id'));

  for (const k of Object.keys(entry)) {
    if (!TENANT_FIELDS.has(k)) {
      add('unknown-field', k, `unknown field "${k}": allowed fields are ${[...TENANT_FIELDS].join(', ')}`);
    }
  }
  if (typeof entry.name !== 'string' || entry.name.trim() === '' || entry.name.length > 128) {
    add('invalid-field', 'name', 'field "name" must be a display name of 1-128 characters');
  }
  const model = entry.model;
  if (!ISOLATION_MODELS.includes(model as IsolationModel)) {
    add(
      'invalid-field',
      'model',
      `field "model" is ${JSON.stringify(model)}: use one of ${ISOLATION_MODELS.map((m) => `"${m}"`).join(', ')}`,
    );
  }

  const settings = entry.settings ?? {};
  if (!isObject(settings)) {
    add('invalid-field', 'settings', 'field "settings" must be an object');
    return { problems };
  }
  for (const k of Object.keys(settings)) {
    if (!SETTINGS_FIELDS.has(k)) {
      add(
        'unknown-field',
        `settings.${k}`,
        `unknown field "settings.${k}": allowed settings are ${[...SETTINGS_FIELDS].join(', ')}`,
      );
    } else if (
      model !== 'silo' &&
      SILO_ONLY_SETTINGS.includes(k) &&
      ISOLATION_MODELS.includes(model as IsolationModel)
    ) {
      add(
        'silo-only-setting',
        `settings.${k}`,
        `field "settings.${k}" applies to silo tenants only, and this tenant's model is "${String(model)}": remove it or use "model": "silo"`,
      );
    }
  }
  const deletionPolicy = settings.deletionPolicy ?? 'retain';
  if (deletionPolicy !== 'retain' && deletionPolicy !== 'destroy') {
    add(
      'invalid-field',
      'settings.deletionPolicy',
      `field "settings.deletionPolicy" is ${JSON.stringify(deletionPolicy)}: use "retain" (keep data, the default) or "destroy" (test tenants only)`,
    );
  }

  let silo: SiloSettings | undefined;
  if (model === 'silo') {
    const instanceClass = settings.instanceClass ?? SILO_DEFAULTS.instanceClass;
    if (typeof instanceClass !== 'string' || !INSTANCE_CLASS_PATTERN.test(instanceClass)) {
      add(
        'invalid-field',
        'settings.instanceClass',
        `field "settings.instanceClass" is ${JSON.stringify(instanceClass)}: use an RDS class without the "db." prefix, e.g. "t4g.medium" or "r6g.large"`,
      );
    }
    const multiAz = settings.multiAz ?? SILO_DEFAULTS.multiAz;
    if (typeof multiAz !== 'boolean') {
      add('invalid-field', 'settings.multiAz', 'field "settings.multiAz" must be true or false');
    }
    const days = settings.backupRetentionDays ?? SILO_DEFAULTS.backupRetentionDays;
    if (
      typeof days !== 'number' ||
      !Number.isInteger(days) ||
      days < MIN_BACKUP_RETENTION_DAYS ||
      days > MAX_BACKUP_RETENTION_DAYS
    ) {
      add(
        'invalid-field',
        'settings.backupRetentionDays',
        `field "settings.backupRetentionDays" is ${JSON.stringify(days)}: use a whole number of days from ${MIN_BACKUP_RETENTION_DAYS} to ${MAX_BACKUP_RETENTION_DAYS}`,
      );
    }
    let vpcCidr: string | undefined;
    let vpcCidrDerived = false;
    if (settings.vpcCidr === undefined) {
      if (!idProblem) {
        vpcCidr = derivedSiloCidr(entry.id as string);
        vpcCidrDerived = true;
      }
    } else {
      const cidrProblem = siloCidrProblem(settings.vpcCidr);
      if (cidrProblem) add('invalid-field', 'settings.vpcCidr', `field "settings.vpcCidr" ${cidrProblem}`);
      else vpcCidr = settings.vpcCidr as string;
    }
    if (vpcCidr) {
      silo = {
        instanceClass: instanceClass as string,
        multiAz: multiAz as boolean,
        backupRetentionDays: days as number,
        vpcCidr,
        vpcCidrDerived,
      };
    }
  }

  if (problems.length > 0) return { problems };
  return {
    tenant: {
      id: entry.id as string,
      name: (entry.name as string).trim(),
      model: model as IsolationModel,
      deletionPolicy: deletionPolicy as DeletionPolicy,
      silo,
    },
    problems,
  };
}

/** A stable /20 for a silo tenant with no explicit CIDR: a function of its id alone, never of the others. */
export function derivedSiloCidr(id: string): string {
  const slot = createHash('sha256').update(id).digest().readUInt32BE(0) % DERIVED_CIDR_SLOTS;
  return nthBlock(DERIVED_CIDR_BASE, DERIVED_CIDR_PREFIX, slot);
}

function siloCidrProblem(value: unknown): string | undefined {
  const parsed = typeof value === 'string' ? parseCidr(value) : undefined;
  if (!parsed) {
    return `is ${JSON.stringify(value)}: use an IPv4 CIDR block such as "10.20.0.0/20"`;
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

function cidrProblems(tenants: readonly Tenant[]): Problem[] {
  const problems: Problem[] = [];
  const ranges: { owner: string; range: CidrRange }[] = Object.entries(SHARED_VPC_CIDRS).map(
    ([model, cidr]) => ({ owner: `the shared ${model} VPC (${cidr})`, range: parseCidr(cidr)! }),
  );
  for (const t of tenants) {
    if (!t.silo) continue;
    const range = parseCidr(t.silo.vpcCidr)!;
    const clash = ranges.find((r) => overlaps(range, r.range));
    if (clash) {
      const how = t.silo.vpcCidrDerived ? 'derived from its id' : 'set in settings.vpcCidr';
      problems.push(
        problem(
          'cidr-overlap',
          `tenant "${t.id}": field "settings.vpcCidr" ${t.silo.vpcCidr} (${how}) overlaps ${clash.owner}: set settings.vpcCidr to a free private range`,
          t.id,
          'settings.vpcCidr',
        ),
      );
      continue;
    }
    ranges.push({ owner: `tenant "${t.id}" (${t.silo.vpcCidr})`, range });
  }
  return problems;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
