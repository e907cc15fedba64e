/**
 * Tenant context: the only way the API touches tenant data. A `TenantDatabase` is the connection pool(s) of one
 * model; `forTenant(id)` binds it to one verified tenant and returns a `TenantScope`, the handle routes and domain
 * functions receive. No caller ever passes a tenant id beside a handle.
 *
 * Every unit of work is, on one connection, ONE protocol exchange (db/unit-of-work.ts): one write, one reply,
 * one implicit transaction that the exchange's Sync commits (or rolls back whole):
 *
 *   SELECT tenancy_api.enter($names, $values)   -- a clean session, then the model's settings and the credential
 *   <the statement, its values as bind parameters; prepared once per connection>
 *
 * The credential (db/context.ts) is an HMAC over tenant, backend pid and expiry that PostgreSQL verifies on every
 * statement that reads tenant rows, with a key no runtime role can read (I1, I2); enter() first clears whatever a
 * previous unit of work left in the session (I4, I5). Values travel as bind parameters, never in SQL text, so no
 * activity view or log line shows them (I3). Everything is transaction-local: a pooled connection never carries
 * one tenant's context into another's transaction (P14). `transaction(work)` runs any number of statements in
 * one explicit transaction (BEGIN READ WRITE and enter() in one round trip, then one per statement).
 */
import type { Pool, PoolClient, QueryResult, QueryResultRow } from 'pg';
import { CONTEXT_API_SCHEMA, ContextKey, SNAPSHOT_CREDENTIAL_SECONDS, TenantContextError } from './context';
import { isConnectionFault } from './faults';
import { IsolationModel, validateTenantId } from './naming';
import { DataModel, dataModel } from './models';
import { Sql } from './sql';
import { assertSafeRuntimeRole, repairRuntimeRoleSettings } from './runtime-role';
import { runUnitOfWork } from './unit-of-work';
import { abandon, destroy, resetSession, resetStatements, statementName, txStatus } from './connection-care';

export interface TenantDatabaseOptions {
  /**
   * The connections. Several pools (partitions of one budget) route each tenant to one of them by a hash of its
   * id, so each backend serves a share of the tenants and keeps their catalog entries warm (bridge: see
   * maxTenantsPerConnection); a tenant still has every connection of its partition.
   */
  readonly pool: Pool | readonly Pool[];
  readonly model: IsolationModel;
  /** Silo only: the one tenant this database serves. */
  readonly siloTenantId?: string;
  /**
   * A per-transaction statement timeout for this database's tenants, overriding the runtime role's own (which
   * enter() sets on every unit of work anyway); `forTenant(id, { statementTimeoutMs })` overrides it per tenant.
   * @default - the runtime role's `statement_timeout` (5 s, set by bootstrapDatabase)
   */
  readonly statementTimeoutMs?: number;
  /** The key the database verifies tenant credentials with (the same one its bootstrap installed). */
  readonly contextKey: ContextKey;
  /**
   * Bridge: the key for opaque schema and role names (see `tenantDbNames`); the provisioner must use the same.
   * @default - names derived from the tenant id
   */
  readonly namingKey?: string;
  /**
   * A connection is closed (not returned to the pool) once it has served this many distinct tenants. Each
   * backend caches the catalog entries of every schema it touches (about 64 KB per bridge tenant, never freed
   * while it lives), so this bounds a backend's memory whatever the tenant count; see bench/db.ts.
   * @default - bridge: BRIDGE_TENANTS_PER_CONNECTION; pool and silo: unlimited (their tables are shared)
   */
  readonly maxTenantsPerConnection?: number;
}

/**
 * Distinct tenants a bridge connection serves before it is replaced (see maxTenantsPerConnection): about 17.5 KB
 * of catalog cache each on PostgreSQL 18 over a 6 MB base, so a backend stays near 30 MB (npm run bench:db).
 */
export const BRIDGE_TENANTS_PER_CONNECTION = 1400;
/**
 * The API splits a bridge cell's connections into this many pools and routes each tenant to one, so a backend
 * serves a fifth of the tenants and keeps them warm (service/src/main.ts, DB_POOL_PARTITIONS).
 */
export const BRIDGE_POOL_PARTITIONS = 5;

export { TenantContextError };

export interface TenantTransaction {
  readonly tenantId: string;
  query<R extends QueryResultRow = QueryResultRow>(statement: Sql): Promise<QueryResult<R>>;
}

/** A database bound to one tenant: everything a route or a domain function may do with tenant data. */
export interface TenantScope {
  readonly tenantId: string;
  readonly model: IsolationModel;
  /** One statement in its own tenant-scoped transaction, in one round trip. */
  run<R extends QueryResultRow = QueryResultRow>(statement: Sql): Promise<QueryResult<R>>;
  /** Any number of statements in one tenant-scoped transaction. */
  transaction<T>(work: (tx: TenantTransaction) => Promise<T>): Promise<T>;
  /**
   * Any number of reads in one READ ONLY transaction that sees one snapshot (REPEATABLE READ): what an export
   * reads. Admitted while the tenant is frozen for a move (db/mobility/).
   */
  snapshot<T>(work: (tx: TenantTransaction) => Promise<T>): Promise<T>;
}

export class TenantDatabase {
  readonly model: IsolationModel;
  private readonly impl: DataModel;
  private readonly pool: Pool;
  private readonly partitions: readonly Pool[];
  private readonly siloTenantId?: string;
  private readonly statementTimeoutMs?: number;
  private readonly namingKey?: string;
  private readonly contextKey: ContextKey;
  private readonly maxTenantsPerConnection: number;
  /** The distinct tenants each pooled connection has served. */
  private readonly served = new WeakMap<PoolClient, Set<string>>();

  constructor(options: TenantDatabaseOptions) {
    this.namingKey = options.namingKey;
    if (!(options.contextKey instanceof ContextKey)) {
      throw new TenantContextError('TenantDatabase needs the contextKey its database was bootstrapped with');
    }
    this.contextKey = options.contextKey;
    this.maxTenantsPerConnection =
      options.maxTenantsPerConnection ??
      (options.model === 'bridge' ? BRIDGE_TENANTS_PER_CONNECTION : Number.POSITIVE_INFINITY);
    if (!(this.maxTenantsPerConnection >= 1)) {
      throw new TenantContextError(
        `maxTenantsPerConnection must be at least 1 (got ${options.maxTenantsPerConnection})`,
      );
    }
    this.partitions = Array.isArray(options.pool) ? options.pool : [options.pool as Pool];
    if (this.partitions.length === 0) throw new TenantContextError('TenantDatabase needs at least one pool');
    this.pool = this.partitions[0];
    this.model = options.model;
    this.impl = dataModel(options.model);
    this.statementTimeoutMs = options.statementTimeoutMs;
    if (this.impl.databasePerTenant) {
      this.siloTenantId = validateTenantId(options.siloTenantId, 'TenantDatabase siloTenantId');
    }
    if (
      this.statementTimeoutMs !== undefined &&
      (!Number.isInteger(this.statementTimeoutMs) || this.statementTimeoutMs <= 0)
    ) {
      throw new TenantContextError(
        `statementTimeoutMs must be a positive whole number (got ${this.statementTimeoutMs})`,
      );
    }
  }

  /** Whether this database serves the tenant: its model's tenants; for a silo database, its own tenant only. */
  serves(tenant: { readonly tenantId: string; readonly model: IsolationModel }): boolean {
    return (
      tenant.model === this.model &&
      (this.siloTenantId === undefined || tenant.tenantId === this.siloTenantId)
    );
  }

  /**
   * Binds this database to one tenant. The id is validated here, once; a silo database refuses any tenant but
   * its own. Every statement run through the scope is in that tenant's context.
   */
  forTenant(tenantId: string, options: { statementTimeoutMs?: number } = {}): TenantScope {
    validateTenantId(tenantId, 'tenant context');
    const timeout = options.statementTimeoutMs ?? this.statementTimeoutMs;
    if (timeout !== undefined && (!Number.isInteger(timeout) || timeout <= 0)) {
      throw new TenantContextError(`statementTimeoutMs must be a positive whole number (got ${timeout})`);
    }
    if (this.siloTenantId !== undefined && tenantId !== this.siloTenantId) {
      throw new TenantContextError(
        `tenant "${tenantId}" is not served by this silo database, which belongs to tenant "${this.siloTenantId}"`,
      );
    }
    const pool = this.partitionOf(tenantId);
    return {
      tenantId,
      model: this.model,
      run: (statement) => this.runIn(pool, tenantId, statement, timeout),
      transaction: (work) => this.transactionIn(pool, tenantId, work, timeout, 'BEGIN READ WRITE'),
      snapshot: (work) =>
        this.transactionIn(pool, tenantId, work, timeout, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY'),
    };
  }

  /**
   * Refuses to serve as a role that would make isolation meaningless (db/runtime-role.ts). Call at start-up.
   */
  assertSafeRuntimeRole(): Promise<void> {
    return assertSafeRuntimeRole(this.pool);
  }

  /** Puts the runtime role's own defaults back (db/runtime-role.ts); returns what it removed. Call at start-up. */
  repairRuntimeRoleSettings(): Promise<string[]> {
    return repairRuntimeRoleSettings(this.pool);
  }

  /** The partition that serves a tenant: always the same one (FNV-1a of the id). */
  private partitionOf(tenantId: string): Pool {
    if (this.partitions.length === 1) return this.pool;
    let h = 0x811c9dc5;
    for (let i = 0; i < tenantId.length; i++) h = Math.imul(h ^ tenantId.charCodeAt(i), 0x01000193);
    return this.partitions[(h >>> 0) % this.partitions.length];
  }

  private async runIn<R extends QueryResultRow>(
    pool: Pool,
    tenantId: string,
    statement: Sql,
    timeoutMs?: number,
  ): Promise<QueryResult<R>> {
    refuseExplain(statement);
    const query = statement.toQuery();
    let client = await pool.connect();
    for (let attempt = 1; ; attempt++) {
      let unit;
      try {
        // enter() then the statement, in one exchange and one implicit transaction (db/unit-of-work.ts).
        unit = await runUnitOfWork<R>(client, [
          { text: ENTER, values: this.enterValues(client, tenantId, timeoutMs), keepUnnamed: true },
          { text: query.text, values: query.values, name: statementName(query.text) },
        ]);
      } catch (e) {
        if (isConnectionFault(e) || txStatus(client) !== 'I') {
          await abandon(client, e, pool);
          throw e;
        }
        const code = (e as { code?: string }).code;
        if (code === '26000' && attempt === 1) {
          // SQL in an earlier unit deallocated one of our statements: start this connection's statements over
          // (DEALLOCATE ALL, forget them) and run the unit again on it (it was rolled back whole).
          if (await resetStatements(client)) continue;
          throw e;
        }
        // The Sync rolled the unit back whole, enter()'s reset included: so reset the session's settings now, in
        // case SQL in an earlier unit made this one fail (its transactions read-only, say).
        if (!(await resetSession(client))) throw e;
        if (attempt === 1 && code === '25006') {
          client = await pool.connect();
          continue;
        }
        throw e;
      }
      if (unit.transactionStatus !== 'I') {
        // The statement opened a transaction block the Sync did not end: never hand that to the next tenant.
        const e = new TenantContextError(
          'the unit of work left a transaction open; its connection was closed',
        );
        destroy(client, e);
        throw e;
      }
      this.release(client, tenantId);
      return unit.last;
    }
  }

  /** enter()'s arguments: the model's settings for the tenant, then the credential for this connection. */
  private enterValues(
    client: PoolClient,
    tenantId: string,
    timeoutMs?: number,
    credentialSeconds?: number,
  ): [string[], string[]] {
    const pid = (client as unknown as { processID?: number }).processID;
    if (!pid) throw new TenantContextError('the connection has no backend pid: it cannot carry a credential');
    const settings: (readonly [string, string])[] = [
      ...this.impl.contextSettings(tenantId, { namingKey: this.namingKey }),
      ...(timeoutMs !== undefined ? [['statement_timeout', `${timeoutMs}ms`] as const] : []),
      ...this.contextKey.credential(tenantId, pid, Date.now(), credentialSeconds),
    ];
    return [settings.map(([n]) => n), settings.map(([, v]) => v)];
  }

  /** Back to the pool, unless the connection has now served enough distinct tenants: then it is closed. */
  private release(client: PoolClient, tenantId: string): void {
    if (this.maxTenantsPerConnection === Number.POSITIVE_INFINITY) return client.release();
    let tenants = this.served.get(client);
    if (!tenants) this.served.set(client, (tenants = new Set()));
    tenants.add(tenantId);
    client.release(tenants.size >= this.maxTenantsPerConnection);
  }

  private async transactionIn<T>(
    pool: Pool,
    tenantId: string,
    work: (tx: TenantTransaction) => Promise<T>,
    timeoutMs: number | undefined,
    begin: 'BEGIN READ WRITE' | 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
  ): Promise<T> {
    const client = await pool.connect();
    let open = true;
    const tx: TenantTransaction = {
      tenantId,
      query: <R extends QueryResultRow>(statement: Sql) => {
        if (!open) {
          return Promise.reject(new TenantContextError('this tenant transaction has already ended'));
        }
        refuseExplain(statement);
        return client.query<R>(statement.toQuery());
      },
    };
    try {
      const [begun, enter] = await Promise.allSettled([
        client.query(begin),
        client.query(
          ENTER,
          this.enterValues(
            client,
            tenantId,
            timeoutMs,
            begin === 'BEGIN READ WRITE' ? undefined : SNAPSHOT_CREDENTIAL_SECONDS,
          ),
        ),
      ]);
      if (begun.status === 'rejected') throw begun.reason;
      if (enter.status === 'rejected') throw enter.reason;
      const result = await work(tx);
      await client.query('COMMIT');
      open = false;
      this.release(client, tenantId);
      return result;
    } catch (e) {
      open = false;
      await abandon(client, e, pool);
      throw e;
    }
  }
}

/**
 * Every unit of work starts here (db/bootstrap.ts installContext): a clean session, then its settings. Never a named
 * statement: SQL could DEALLOCATE one and PREPARE its own under the name, which the next unit would hand the next
 * tenant's credential (I4). It stays the connection's unnamed statement instead (keepUnnamed, db/unit-of-work.ts),
 * which SQL cannot replace; every name in it is qualified, so a re-plan resolves nothing through search_path.
 */
const ENTER = `SELECT ${CONTEXT_API_SCHEMA}.enter($1::pg_catalog.text[], $2::pg_catalog.text[])`;

/**
 * EXPLAIN's row estimates come from whole-table statistics, so they describe every tenant's rows (P13).
 * Tenant work never needs it; plans are read by operators as the owner.
 */
function refuseExplain(statement: Sql): void {
  if (/^\s*explain\b/i.test(statement.strings[0])) {
    throw new TenantContextError(
      'EXPLAIN is not allowed in tenant context: its estimates cover every tenant',
    );
  }
}
