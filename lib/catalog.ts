/**
 * The tenant catalog: its schema, defaults and validation.
 *
 * Validation runs before any construct is built and reports every problem at once, each naming the source,
 * the tenant, the field and the fix, as data (a code, the tenant, the field, the message). This module imports
 * nothing from aws-cdk-lib, so the onboarding pipeline's handlers and the local tools apply exactly the same
 * rules to a single request.
 */
import * as fs from 'fs';
import { DeletionPolicy, ISOLATION_MODELS, IsolationModel, TENANT_TIERS, TenantTier } from '../contracts';
import { tenantIdProblem } from '../db/naming';
import { CidrRange, overlaps, parseCidr } from './cidr';
import type { SharedModel } from './cell-size';
import { DEFAULT_SILO_PROFILE, siloProfile } from './silo-profiles';
import { SiloSettings, siloSettings, validVpcCidr } from './catalog-silo';

export type { SiloSettings };
export { SILO_DEFAULTS, MIN_BACKUP_RETENTION_DAYS, MAX_BACKUP_RETENTION_DAYS } from './catalog-silo';

export type { DeletionPolicy };

export interface Tenant {
  readonly id: string;
  readonly name: string;
  readonly model: IsolationModel;
  /** `retain` keeps the tenant's data when its stack is destroyed; `destroy` is for test tenants only. */
  readonly deletionPolicy: DeletionPolicy;
  /**
   * The tenant's DNS label when the fleet has a domain (`<hostname>.<domain>`).
   * @default - the tenant id
   */
  readonly hostname: string;
  /** Its service tier: its limits in a shared cell (requests, concurrency, database share). */
  readonly tier: TenantTier;
  /** Present for silo tenants only. */
  readonly silo?: SiloSettings;
  /**
   * The model the tenant was first provisioned in, when a move has since taken it to another (the move writes it
   * into the tenant's request; never set it by hand). Its stack's tenant resource is `Tenant` in that model and
   * `Tenant<Model>` in any other (tenantResourceId): CloudFormation cannot change a resource's type in place.
   * `silo` on a silo tenant: it is back in a silo after moving out of the one it was first provisioned in, so its
   * stack has held a silo before, whose log groups and backup vault outlive it under the stack's names: this cell
   * names what it keeps after the stack with its own key's id instead (tenant-provisioning.ts siloCell).
   * @default - the tenant has always been in `model`
   */
  readonly firstModel?: IsolationModel;
  /**
   * The silo a move out of it kept (the move writes it into the tenant's request; never set it by hand): the tenant
   * as it was in its silo, whose cell its stack keeps, unchanged and frozen, until an approver's purge removes it.
   * @default - no silo kept
   */
  readonly keptSilo?: Tenant;
}

/** A shared cell's entry in the catalog: it exists when a tenant uses it, or when it is named here. */
export interface SharedCellPlan {
  /**
   * The tenant count to size the cell for (lib/cell-size.ts `cellSizeFor`) when more tenants are expected than the
   * catalog lists (tenants onboarded through the pipeline are not in it): the cell is sized for the larger of
   * this and the catalog's tenants of its model.
   */
  readonly plannedTenants: number;
}

export type { SharedModel };
export const SHARED_MODELS: readonly SharedModel[] = ['pool', 'bridge'];

export interface Catalog {
  readonly source: string;
  readonly tenants: readonly Tenant[];
  /** Shared cells named in the catalog (`"sharedCells": { "pool": { "plannedTenants": 300 } }`). */
  readonly sharedCells?: Readonly<Partial<Record<SharedModel, SharedCellPlan>>>;
}

/** Most tenants a shared cell is planned for (the sizing rule's largest step is well below it). */
export const MAX_PLANNED_TENANTS = 100_000;

/** The shared VPCs' ranges: no silo VPC may overlap them, so they can be peered or routed later. */
export const SHARED_VPC_CIDRS: Readonly<Record<'pool' | 'bridge', string>> = {
  pool: '10.0.0.0/16',
  bridge: '10.1.0.0/16',
};

/**
 * The range of the platform's VPC IP Address Manager pool, from which every silo VPC without a catalog range
 * gets a /20 (2,048 of them). A range set in the catalog must lie outside it.
 */
export const SILO_IPAM_CIDR = '10.128.0.0/9';

const TENANT_FIELDS = new Set(['id', 'name', 'model', 'settings', 'firstModel', 'keptSilo']);
const SETTINGS_FIELDS = new Set([
  'deletionPolicy',
  'hostname',
  'tier',
  'profile',
  'instanceClass',
  'multiAz',
  'backupRetentionDays',
  'vpcCidr',
  'restoredFromSnapshot',
]);
const SILO_ONLY_SETTINGS = [
  'profile',
  'instanceClass',
  'multiAz',
  'backupRetentionDays',
  'vpcCidr',
  'restoredFromSnapshot',
];
const HOSTNAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** What a problem is about, so code can decide on it without reading its message. */
export type ProblemCode =
  | 'unreadable'
  | 'invalid-document'
  | 'unknown-field'
  | 'invalid-id'
  | 'invalid-field'
  | 'silo-only-setting'
  | 'duplicate-id'
  | 'duplicate-hostname'
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

/** Reads and validates a catalog file. Throws CatalogError naming the file on any problem. */
export function loadCatalog(path: string): Catalog {
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
  return parseCatalog(raw, path);
}

/** Validates a parsed catalog document (`{ "tenants": [...] }`). */
export function parseCatalog(raw: unknown, source: string): Catalog {
  if (!isObject(raw) || !Array.isArray(raw.tenants)) {
    throw new CatalogError(source, [
      problem('invalid-document', 'must be an object with a "tenants" array: { "tenants": [ ... ] }'),
    ]);
  }
  const unknownTop = Object.keys(raw).filter((k) => !['tenants', 'sharedCells', '$schema'].includes(k));
  const problems: Problem[] = unknownTop.map((k) =>
    problem(
      'unknown-field',
      `unknown top-level field "${k}": only "tenants" and "sharedCells" are allowed (check the spelling)`,
    ),
  );
  const sharedCells = parseSharedCells(raw.sharedCells, problems);
  const parsed = raw.tenants.map((entry: unknown, index: number) =>
    parseTenant(entry, `tenant #${index + 1}`),
  );
  parsed.forEach((p) => problems.push(...p.problems));
  // Cross-tenant rules look at every entry whose id (or range) is usable, even one with other problems, so
  // every problem is reported at once.
  problems.push(...crossTenantProblems(parsed));
  if (problems.length > 0) throw new CatalogError(source, problems);
  return { source, tenants: parsed.map((p) => p.tenant!), ...(sharedCells ? { sharedCells } : {}) };
}

function parseSharedCells(raw: unknown, problems: Problem[]): Catalog['sharedCells'] {
  if (raw === undefined) return undefined;
  const example = '{ "pool": { "plannedTenants": 300 } }';
  if (!isObject(raw)) {
    problems.push(problem('invalid-field', `field "sharedCells" must be an object such as ${example}`));
    return undefined;
  }
  const cells: Partial<Record<SharedModel, SharedCellPlan>> = {};
  for (const [model, plan] of Object.entries(raw)) {
    const field = `sharedCells.${model}`;
    if (!SHARED_MODELS.includes(model as SharedModel)) {
      problems.push(
        problem(
          'unknown-field',
          `unknown field "${field}": shared cells are "pool" and "bridge" (a silo tenant has a cell of its own)`,
          undefined,
          field,
        ),
      );
      continue;
    }
    const extra = isObject(plan) ? Object.keys(plan).filter((k) => k !== 'plannedTenants') : [];
    const n = isObject(plan) ? (plan.plannedTenants ?? 0) : undefined;
    if (
      !isObject(plan) ||
      extra.length > 0 ||
      typeof n !== 'number' ||
      !Number.isInteger(n) ||
      n < 0 ||
      n > MAX_PLANNED_TENANTS
    ) {
      problems.push(
        problem(
          'invalid-field',
          `field "${field}" is ${JSON.stringify(plan)}: use { "plannedTenants": <a whole number from 0 to ${MAX_PLANNED_TENANTS}> } (0 builds the cell with no tenant yet)`,
          undefined,
          field,
        ),
      );
      continue;
    }
    cells[model as SharedModel] = { plannedTenants: n };
  }
  return cells;
}

/** One entry's validation: the tenant when it is valid, and what could be read of it either way. */
export interface ParsedTenant {
  readonly tenant?: Tenant;
  readonly problems: Problem[];
  /** The entry's id, when it is a valid id (even if other fields are not). */
  readonly id?: string;
  readonly hostname?: string;
  /** The entry's catalog VPC range, when it is a valid one. */
  readonly vpcCidr?: string;
  readonly where: string;
}

/**
 * Validates one tenant entry, e.g. an onboarding request. `where` names it in messages when the id itself
 * is unusable. Returns the tenant with defaults applied, or the problems.
 */
export function parseTenant(entry: unknown, where: string): ParsedTenant {
  if (!isObject(entry)) {
    return {
      where,
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
  const modelOk = ISOLATION_MODELS.includes(model as IsolationModel);
  if (!modelOk) {
    add(
      'invalid-field',
      'model',
      `field "model" is ${JSON.stringify(model)}: use one of ${ISOLATION_MODELS.map((m) => `"${m}"`).join(', ')}`,
    );
  }

  const firstModel = entry.firstModel;
  if (firstModel !== undefined && !ISOLATION_MODELS.includes(firstModel as IsolationModel)) {
    add(
      'invalid-field',
      'firstModel',
      `field "firstModel" is ${JSON.stringify(firstModel)}: it is written by a move (the model the tenant was first provisioned in) and must be one of ${ISOLATION_MODELS.map((m) => `"${m}"`).join(', ')}; copy it unchanged from the registry's request (npm run fleet -- pull)`,
    );
  }

  const settings = entry.settings ?? {};
  if (!isObject(settings)) {
    add('invalid-field', 'settings', 'field "settings" must be an object');
    return { where, problems, id: tenantId };
  }
  for (const k of Object.keys(settings)) {
    if (!SETTINGS_FIELDS.has(k)) {
      add(
        'unknown-field',
        `settings.${k}`,
        `unknown field "settings.${k}": allowed settings are ${[...SETTINGS_FIELDS].join(', ')}`,
      );
    } else if (modelOk && model !== 'silo' && SILO_ONLY_SETTINGS.includes(k)) {
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
  const tier = settings.tier ?? 'standard';
  if (!TENANT_TIERS.includes(tier as TenantTier)) {
    add(
      'invalid-field',
      'settings.tier',
      `field "settings.tier" is ${JSON.stringify(settings.tier)}: use one of ${TENANT_TIERS.map((t) => `"${t}"`).join(', ')} (the default is "standard")`,
    );
  }
  const hostname = settings.hostname ?? tenantId;
  if (settings.hostname !== undefined && (typeof hostname !== 'string' || !HOSTNAME_PATTERN.test(hostname))) {
    add(
      'invalid-field',
      'settings.hostname',
      `field "settings.hostname" is ${JSON.stringify(settings.hostname)}: use a DNS label of 1-63 lowercase letters, digits and hyphens`,
    );
  }
  const silo = model === 'silo' ? siloSettings(settings, add, tenantId) : undefined;
  const keptSilo = keptSiloOf(entry.keptSilo, model, tenantId, label, problems, add);
  // A kept silo's catalog range is still in use: it must overlap nothing either.
  const validCidr =
    silo?.vpcCidr ??
    keptSilo?.silo?.vpcCidr ??
    (model === 'silo' && problems.length > 0 ? validVpcCidr(settings) : undefined);

  const common = {
    where,
    id: tenantId,
    hostname: typeof hostname === 'string' ? hostname : undefined,
    vpcCidr: validCidr,
  };
  if (problems.length > 0) return { ...common, problems };
  return {
    ...common,
    problems,
    tenant: {
      id: tenantId!,
      name: (entry.name as string).trim(),
      model: model as IsolationModel,
      deletionPolicy: deletionPolicy as DeletionPolicy,
      hostname: hostname as string,
      tier: tier as TenantTier,
      ...(silo ? { silo } : {}),
      // The same as the model says nothing (the tenant has not moved away from it), except for a silo: back in a
      // silo after leaving its first one (see Tenant.firstModel).
      ...(firstModel !== undefined && (firstModel !== model || model === 'silo')
        ? { firstModel: firstModel as IsolationModel }
        : {}),
      ...(keptSilo ? { keptSilo } : {}),
    },
  };
}

/**
 * A tenant entry's `keptSilo` (written by a move out of a silo): the tenant as it was in that silo, a valid silo
 * entry of the same id that keeps no silo of its own, on a tenant no longer in a silo. Undefined when absent or
 * invalid (its problems added).
 */
function keptSiloOf(
  raw: unknown,
  model: unknown,
  tenantId: string | undefined,
  label: string,
  problems: Problem[],
  add: (code: ProblemCode, field: string | undefined, message: string) => void,
): Tenant | undefined {
  if (raw === undefined) return undefined;
  const written =
    "it is written by a move out of a silo (the silo its stack keeps until a purge): copy it unchanged from the registry's request (npm run fleet -- pull)";
  if (model === 'silo') {
    add('invalid-field', 'keptSilo', `field "keptSilo" is set on a silo tenant: ${written}`);
    return undefined;
  }
  if (isObject(raw) && raw.keptSilo !== undefined) {
    add('invalid-field', 'keptSilo', `field "keptSilo" holds a "keptSilo" of its own: ${written}`);
    return undefined;
  }
  const parsed = parseTenant(raw, `${label}'s field "keptSilo"`);
  if (!parsed.tenant) {
    problems.push(
      ...parsed.problems.map((p) => ({
        ...p,
        field: p.field ? `keptSilo.${p.field}` : 'keptSilo',
        message: `${label}, field "keptSilo": ${p.message}`,
      })),
    );
    return undefined;
  }
  if (parsed.tenant.model !== 'silo' || parsed.tenant.id !== tenantId) {
    add(
      'invalid-field',
      'keptSilo',
      `field "keptSilo" is tenant "${parsed.tenant.id}" in ${parsed.tenant.model}, not this tenant in a silo: ${written}`,
    );
    return undefined;
  }
  return parsed.tenant;
}

/** Ranges no catalog silo range may overlap: the shared VPCs and the address pool silo ranges come from. */
function reservedRanges(): { owner: string; range: CidrRange }[] {
  return [
    ...Object.entries(SHARED_VPC_CIDRS).map(([model, cidr]) => ({
      owner: `the shared ${model} VPC (${cidr})`,
      range: parseCidr(cidr)!,
    })),
    { owner: `the platform's silo address pool (${SILO_IPAM_CIDR})`, range: parseCidr(SILO_IPAM_CIDR)! },
  ];
}

/** Rules across entries: unique ids and hostnames, and catalog VPC ranges that overlap nothing. */
function crossTenantProblems(entries: readonly ParsedTenant[]): Problem[] {
  const problems: Problem[] = [];
  const firstWithId = new Map<string, number>();
  const firstWithHost = new Map<string, number>();
  entries.forEach((e, index) => {
    if (e.id) {
      const first = firstWithId.get(e.id);
      if (first !== undefined) {
        problems.push(
          problem(
            'duplicate-id',
            `tenant "${e.id}" (#${index + 1}): duplicate id, already used by tenant #${first + 1}: ids must be unique`,
            e.id,
            'id',
          ),
        );
      } else firstWithId.set(e.id, index);
    }
    if (e.hostname && e.id) {
      const first = firstWithHost.get(e.hostname);
      if (first !== undefined && entries[first].id !== e.id) {
        problems.push(
          problem(
            'duplicate-hostname',
            `tenant "${e.id}" (#${index + 1}): hostname "${e.hostname}" is already used by tenant "${entries[first].id}": set settings.hostname to another label`,
            e.id,
            'settings.hostname',
          ),
        );
      } else if (first === undefined) firstWithHost.set(e.hostname, index);
    }
  });
  problems.push(...rangeProblems(entries.filter((e) => e.vpcCidr)));
  return problems;
}

/** Catalog VPC ranges against the reserved ranges and each other. */
export function rangeProblems(
  entries: readonly Pick<ParsedTenant, 'id' | 'vpcCidr' | 'where'>[],
  taken: readonly { owner: string; cidr: string }[] = [],
): Problem[] {
  const problems: Problem[] = [];
  const ranges = [
    ...reservedRanges(),
    ...taken.map((t) => ({ owner: `${t.owner} (${t.cidr})`, range: parseCidr(t.cidr)! })),
  ];
  for (const e of entries) {
    const range = parseCidr(e.vpcCidr!)!;
    const label = e.id ? `tenant "${e.id}"` : e.where;
    const clash = ranges.find((r) => overlaps(range, r.range));
    if (clash) {
      problems.push(
        problem(
          'cidr-overlap',
          `${label}: field "settings.vpcCidr" ${e.vpcCidr} overlaps ${clash.owner}: choose a free private range, or leave settings.vpcCidr out to get one from the platform's address pool`,
          e.id,
          'settings.vpcCidr',
        ),
      );
      continue;
    }
    ranges.push({ owner: `${label} (${e.vpcCidr})`, range });
  }
  return problems;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A tenant as a catalog entry (its settings written out in full): what the registry keeps as its request. */
export function tenantRequestOf(t: Tenant): string {
  const settings: Record<string, unknown> = { deletionPolicy: t.deletionPolicy };
  if (t.hostname !== t.id) settings.hostname = t.hostname;
  if (t.tier !== 'standard') settings.tier = t.tier;
  if (t.silo) {
    if (t.silo.profile !== DEFAULT_SILO_PROFILE) settings.profile = t.silo.profile;
    if (siloProfile(t.silo.profile).database.engine === 'rds') {
      settings.instanceClass = t.silo.instanceClass;
      settings.multiAz = t.silo.multiAz;
    }
    settings.backupRetentionDays = t.silo.backupRetentionDays;
    if (t.silo.vpcCidr) settings.vpcCidr = t.silo.vpcCidr;
    if (t.silo.restoredFromSnapshot) settings.restoredFromSnapshot = t.silo.restoredFromSnapshot;
  }
  return JSON.stringify({
    id: t.id,
    name: t.name,
    model: t.model,
    ...(t.firstModel ? { firstModel: t.firstModel } : {}),
    settings,
    ...(t.keptSilo ? { keptSilo: JSON.parse(tenantRequestOf(t.keptSilo)) as unknown } : {}),
  });
}
