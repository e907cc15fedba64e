/**
 * One tenant entry of the catalog (or one request): its fields, its validation with every problem reported, and its
 * form as the registry keeps it. Imports nothing from aws-cdk-lib, like the rest of the catalog.
 */
import { DeletionPolicy, ISOLATION_MODELS, IsolationModel, TENANT_TIERS, TenantTier } from '../contracts';
import { tenantIdProblem } from '../db/naming';
import { DEFAULT_SILO_PROFILE, siloProfile } from './silo-profiles';
import { SiloSettings, siloSettings, validVpcCidr } from './catalog-silo';
import { isObject, Problem, problem, ProblemCode } from './catalog-problems';

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

const TENANT_FIELDS = new Set(['id', 'name', 'model', 'settings', 'firstModel', 'keptSilo']);
const SILO_ONLY_SETTINGS = [
  'profile',
  'instanceClass',
  'multiAz',
  'backupRetentionDays',
  'vpcCidr',
  'restoredFromSnapshot',
];
const SETTINGS_FIELDS = new Set(['deletionPolicy', 'hostname', 'tier', ...SILO_ONLY_SETTINGS]);
const HOSTNAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

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
