/**
 * Tenant data mobility on the local platform: `npm run tenant -- export | restore | move | purge | abort-move |
 * inspect`. The data plane's part (archives, export as the runtime principal, all-or-nothing restore, the freeze)
 * is in db/mobility/; this module adds the registry, provisioning and the order of a move, under the tenant's
 * lock (tenant-lock.ts, M7):
 *
 *   registry `moving` -> freeze the source (M1) -> wait for transactions older than the freeze (M2)
 *   -> export as the tenant's runtime principal (M3) -> provision the destination -> restore (one transaction)
 *   -> verify as the destination's runtime principal -> lock and registry token still ours?
 *   -> registry: active in the new model, `keptCopy` the old one -> retire the source copy (kept, unreachable)
 *
 * Any failure before the switch removes the destination, thaws the source and sets the registry back to active
 * where the tenant was: it serves again with every write it acknowledged. After the switch it only rolls forward.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { randomBytes } from 'crypto';
import { ISOLATION_MODELS, IsolationModel } from '../../../contracts';
import { dataModel } from '../../../db/models';
import { validateTenantId } from '../../../db/naming';
import { isConnectionFault } from '../../../db/faults';
import {
  ArchiveManifest,
  digestTables,
  canonicalSession,
  exportTenant,
  Restored,
  restoreArchive,
  tableColumns,
  TENANT_TABLES,
  verifyArchive,
  waitForOlderTransactions,
} from '../../../db/mobility';
import type { LocalPlatform } from './platform';
import { type RegistryEntry, withoutFields } from '../registry';
import { MobilityError, withTenantLock } from './tenant-lock';

export { MobilityError, withTenantLock };

/** The registry lock of a restore into a new id while it runs. */
const RESTORE_MARK = 'local-restore:';

/** What `frozen`'s work returns once it has switched the tenant: from then on nothing is rolled back. */
const SWITCHED = Symbol('switched');

export interface MoveReport {
  readonly tenantId: string;
  readonly from: IsolationModel;
  readonly to: IsolationModel;
  readonly rows: Record<string, number>;
  /** Archive bytes copied. */
  readonly bytes: number;
  /** From the freeze to the switch: how long the tenant's writes were refused. */
  readonly frozenMs: number;
  readonly totalMs: number;
  readonly phasesMs: Record<string, number>;
}

export class TenantMobility {
  constructor(
    private readonly platform: LocalPlatform,
    /** Where a move keeps its archive while it runs. */
    private readonly workDir = path.join(os.tmpdir(), 'tenantforge-moves'),
  ) {}

  /** Exports an active (or moving) tenant to `file` (which must not exist), as its runtime principal. */
  async export(
    tenantId: string,
    file: string,
    options: { encrypt?: boolean } = {},
  ): Promise<ArchiveManifest> {
    const entry = await this.entryOf(tenantId, 'export');
    if (entry.status !== 'active' && entry.status !== 'moving') {
      throw new MobilityError(
        `export: tenant "${tenantId}" is ${entry.status}: only an active tenant's data can be exported by its runtime principal`,
      );
    }
    if (fs.existsSync(file))
      throw new MobilityError(
        `export: ${file} already exists: choose another --out (nothing is overwritten)`,
      );
    return this.exportFrom(entry.model, tenantId, file, options.encrypt);
  }

  /**
   * Restores an archive into `as` (default: the archive's tenant) in `model` (default: the archive's). A new tenant
   * is provisioned, filled, and only then registered active; an existing active one is refused unless `force`,
   * which exports what it has first (`safetyFile`) and replaces it.
   */
  async restore(
    file: string,
    options: { tenantId: string; as?: string; model?: IsolationModel; force?: boolean; name?: string },
  ): Promise<{
    manifest: ArchiveManifest;
    tenantId: string;
    model: IsolationModel;
    created: boolean;
    safetyFile?: string;
    schemaVersion: number;
  }> {
    const key = this.platform.archiveKey;
    const manifest = await verifyArchive(file, key);
    validateTenantId(options.tenantId, 'restore --tenant');
    if (manifest.tenantId !== options.tenantId) {
      throw new MobilityError(
        `restore: ${file} is tenant "${manifest.tenantId}"'s archive, not "${options.tenantId}"'s: name the tenant it belongs to with --tenant (and a new id with --as); nothing was written`,
      );
    }
    const id = validateTenantId(options.as ?? options.tenantId, 'restore --as');
    const model = options.model ?? manifest.model;
    if (!ISOLATION_MODELS.includes(model))
      throw new MobilityError(`restore: --model must be silo, pool or bridge (got "${model}")`);
    return this.locked(id, async () => {
      const existing = await this.platform.registry.get(id);
      if (existing) {
        if (existing.status !== 'active') {
          throw new MobilityError(
            `restore: tenant "${id}" is ${existing.status}: restore into an active tenant (with --force) or a new id (--as); nothing was written`,
          );
        }
        if (existing.model !== model) {
          throw new MobilityError(
            `restore: tenant "${id}" is a ${existing.model} tenant and the archive ${options.model ? `was asked into ${model}` : `is from ${model}`}: to restore it where the tenant lives add --model ${existing.model}; to change its model, move it first (npm run tenant -- move --tenant ${id} --to ${model}); nothing was written`,
          );
        }
        if (!options.force) {
          throw new MobilityError(
            options.as
              ? `restore: tenant "${id}" (--as) already exists and is active: choose an id no tenant has, or add --force to replace its data (what it has now is exported first); nothing was written`
              : `restore: tenant "${id}" is active and has its own data: restoring would replace it. Add --force to replace it (what it has now is exported first), or restore into a new id with --as; nothing was written`,
          );
        }
        // Over a live tenant: frozen as for a move, so no write lands between the safety export and the
        // replacement; the thaw commits with the replacement.
        // Beside the archive restored: <its name without .tfa>.before-restore-<tenant>-<UTC time, to the ms>.tfa
        const stamp = new Date().toISOString().replace(/[-:]/g, '');
        const safetyFile = `${file.replace(/\.tfa$/, '')}.before-restore-${id}-${stamp}.tfa`;
        const restored = await this.frozen(existing, model, async () => {
          await this.exportFrom(model, id, safetyFile);
          return this.platform.withMaster(model, id, (c, placement) =>
            restoreArchive(c, file, key, {
              tenantId: id,
              archiveTenantId: manifest.tenantId,
              verified: manifest,
              model,
              options: placement,
              replace: true,
              thaw: true,
            }),
          );
        });
        return {
          manifest,
          tenantId: id,
          model,
          created: false,
          safetyFile,
          schemaVersion: restored.schemaVersion,
        };
      }
      // A new tenant: provisioned, filled, then registered active; on failure its place is removed again.
      const name = options.name ?? id;
      if (await this.platform.hasPlace(model, id)) {
        throw new MobilityError(
          `restore: the registry has no tenant "${id}", but the ${model} database holds data for that id (a tenant offboarded or moved away and kept): restore into another id with --as; nothing was written`,
        );
      }
      // Marked as this restore's, so an interrupted one can be undone by abort-move (nothing else creates a tenant
      // with this mark: onboarding's provisioning entries carry none).
      this.platform.registry.put({
        tenantId: id,
        model,
        status: 'provisioning',
        name,
        lock: `${RESTORE_MARK}${randomBytes(8).toString('hex')}`,
      });
      try {
        await this.platform.provisionPlace(model, { id, name });
        const restored = await this.platform.withMaster(model, id, (c, placement) =>
          restoreArchive(c, file, key, {
            tenantId: id,
            archiveTenantId: manifest.tenantId,
            verified: manifest,
            model,
            options: placement,
          }),
        );
        if (!this.platform.users.all().some((u) => u.tenantId === id)) {
          this.platform.users.invite(id, `admin@${id}.example`);
        }
        this.platform.registry.put({
          tenantId: id,
          model,
          status: 'active',
          name,
          // The catalog's defaults for a new tenant.
          deletionPolicy: 'retain',
          tier: 'standard',
          schema: dataModel(model).schemaOf(id, {}),
          schemaVersion: restored.schemaVersion,
        });
        return { manifest, tenantId: id, model, created: true, schemaVersion: restored.schemaVersion };
      } catch (e) {
        await this.platform.removePlace(model, id).catch(() => undefined);
        this.platform.registry.remove(id);
        throw e;
      }
    });
  }

  /** Moves a tenant's data to another model with its writes frozen meanwhile (see the module comment). */
  async move(
    tenantId: string,
    to: IsolationModel,
    hooks: { afterFreeze?: () => Promise<void>; beforeSwitch?: () => Promise<void> } = {},
  ): Promise<MoveReport> {
    if (!ISOLATION_MODELS.includes(to)) {
      throw new MobilityError(`move: --to must be silo, pool or bridge (got "${to}")`);
    }
    await this.entryOf(tenantId, 'move');
    return this.locked(tenantId, async (held) => {
      const started = Date.now();
      const entry = await this.entryOf(tenantId, 'move');
      if (entry.status !== 'active') {
        throw new MobilityError(
          `move: tenant "${tenantId}" is ${entry.status}: only an active tenant can be moved` +
            (entry.status === 'moving'
              ? ` (its move to ${entry.movingTo} was interrupted: npm run tenant -- abort-move --tenant ${tenantId})`
              : ''),
        );
      }
      const from = entry.model;
      if (from === to) throw new MobilityError(`move: tenant "${tenantId}" is already a ${to} tenant`);
      if (entry.keptCopy) {
        throw new MobilityError(
          `move: tenant "${tenantId}" still has the ${entry.keptCopy} copy its last move kept: remove it first with npm run tenant -- purge --tenant ${tenantId}`,
        );
      }
      const phases: Record<string, number> = {};
      let mark = Date.now();
      const phase = (name: string) => {
        phases[name] = Date.now() - mark;
        mark = Date.now();
      };
      fs.mkdirSync(this.workDir, { recursive: true, mode: 0o700 });
      const file = path.join(this.workDir, `${tenantId}-${randomBytes(4).toString('hex')}.tfa`);
      let placed = false;
      let frozenAt = 0;
      let bytes = 0;
      let restored!: Restored;
      let manifest!: ArchiveManifest;
      try {
        await this.frozen(entry, to, async (owned) => {
          frozenAt = Date.now();
          phase('freeze');
          await hooks.afterFreeze?.();
          manifest = await this.exportFrom(from, tenantId, file);
          bytes = fs.statSync(file).size;
          phase('export');
          await this.platform.provisionPlace(to, { id: tenantId, name: entry.name ?? tenantId });
          placed = true;
          phase('provision');
          restored = await this.platform.withMaster(to, tenantId, (c, options) =>
            restoreArchive(c, file, this.platform.archiveKey, {
              tenantId,
              archiveTenantId: tenantId,
              model: to,
              options,
            }),
          );
          phase('restore');
          // Read back by the destination's own runtime principal: what the API will serve.
          const sameVersion = restored.schemaVersion === manifest.schemaVersion;
          const served = await this.digestAsRuntime(
            to,
            tenantId,
            sameVersion ? Object.fromEntries(manifest.tables.map((t) => [t.name, t.columns])) : undefined,
          );
          for (const t of TENANT_TABLES) {
            const rows = served.rows[t.name] === manifest.rows[t.name];
            const sums = !sameVersion || served.checksums[t.name] === manifest.checksums[t.name];
            if (!rows || !sums) {
              throw new Error(
                `move: ${t.name} reads back in ${to} as ${served.rows[t.name]} rows with checksum ${served.checksums[t.name]}; the source had ${manifest.rows[t.name]} rows with ${manifest.checksums[t.name]}`,
              );
            }
          }
          phase('verify');
          await hooks.beforeSwitch?.();
          // Still this operation's tenant, still under its lock: then the switch. From here on the tenant is served
          // by `to`, and nothing is rolled back.
          await held();
          await this.expectOwned(owned);
          this.platform.registry.put({
            ...withoutFields(entry, 'movingTo', 'failureReason', 'lock'),
            model: to,
            status: 'active',
            schema: dataModel(to).schemaOf(tenantId, {}),
            schemaVersion: restored.schemaVersion,
            keptCopy: from,
          });
          return SWITCHED;
        });
      } catch (e) {
        // Not switched (the switch is the work's last step): the tenant was thawed where it was.
        if (placed) await this.platform.removePlace(to, tenantId).catch(() => undefined);
        throw e;
      } finally {
        fs.rmSync(file, { force: true });
      }
      // The old copy is kept, unreachable by any runtime role, until purge.
      try {
        await this.platform.withMaster(from, tenantId, (c, options) =>
          dataModel(from).offboard(c, tenantId, 'retain', options),
        );
      } catch (e) {
        throw new MobilityError(
          `move: tenant "${tenantId}" is now served by ${to}, but its ${from} copy could not be retired (${(e as Error).message}); it stays frozen: remove it with npm run tenant -- purge --tenant ${tenantId}`,
        );
      }
      phase('switch');
      return {
        tenantId,
        from,
        to,
        rows: manifest.rows,
        bytes,
        frozenMs: Date.now() - frozenAt,
        totalMs: Date.now() - started,
        phasesMs: phases,
      };
    });
  }

  /** Finishes an interrupted move the only safe way: back where the tenant was (its source copy is complete). */
  async abortMove(tenantId: string): Promise<string> {
    await this.entryOf(tenantId, 'abort-move');
    return this.locked(tenantId, async () => {
      const entry = await this.entryOf(tenantId, 'abort-move');
      if (entry.status === 'provisioning' && entry.lock?.startsWith(RESTORE_MARK)) {
        // A restore into a new id that never finished: its place is its own (the restore refuses an id whose
        // database already holds one), so it goes, and so does the entry.
        await this.platform.removePlace(entry.model, tenantId);
        this.platform.registry.remove(tenantId);
        return `tenant "${tenantId}": the unfinished restore into this new ${entry.model} tenant was removed; restore it again`;
      }
      if (entry.status !== 'moving' || !entry.movingTo) {
        throw new MobilityError(
          `abort-move: tenant "${tenantId}" is ${entry.status}, not moving: nothing to do`,
        );
      }
      // The registry still names the source: the switch never happened, so the destination is only a partial copy.
      if (entry.movingTo !== entry.model) await this.platform.removePlace(entry.movingTo, tenantId);
      await this.platform.withMaster(entry.model, tenantId, (c, options) =>
        dataModel(entry.model).unfreeze(c, tenantId, options),
      );
      this.platform.registry.put({ ...withoutFields(entry, 'movingTo', 'lock'), status: 'active' });
      return `tenant "${tenantId}" stays ${entry.model}: ${entry.movingTo !== entry.model ? `the partial ${entry.movingTo} copy was removed and ` : ''}it serves again`;
    });
  }

  /**
   * Runs `work` holding the tenant's operation lock (db/mobility/lock.ts), in the pool cell's database. `held()`
   * proves the lock is still held (its connection alive) right before a step that must not run without it.
   */
  private locked<T>(tenantId: string, work: (held: () => Promise<void>) => Promise<T>): Promise<T> {
    return withTenantLock(this.platform, tenantId, work);
  }

  /**
   * Runs `work` with the tenant `moving` in the registry (the API answers it 503) and its writes frozen in its
   * database, after every older transaction of its runtime role has ended (M1, M2). Unless `work` reports that it
   * switched the tenant (SWITCHED), the tenant is thawed and active again afterwards, whatever happened; if the thaw
   * itself fails, the tenant stays `moving` and the error names abort-move.
   */
  private async frozen<T>(
    entry: RegistryEntry,
    movingTo: IsolationModel,
    work: (owned: RegistryEntry) => Promise<T>,
  ): Promise<T> {
    const { tenantId, model } = entry;
    // The registry entry carries this operation's token while it runs: every later write of the operation checks
    // that the entry is still its own (an operator's abort-move or offboarding in between wins).
    const token = `local-mobility:${randomBytes(8).toString('hex')}`;
    this.platform.registry.put({ ...entry, status: 'moving', movingTo, lock: token });
    const owned = { ...entry, lock: token };
    // Whether the freeze committed: a refusal from the database (or from our own checks) means it did not; a lost
    // connection leaves it unknown, so the thaw runs anyway (it is idempotent).
    let froze: 'no' | 'yes' | 'unknown' = 'no';
    let result: T;
    try {
      await this.platform.withMaster(model, tenantId, async (c, options) => {
        try {
          await dataModel(model).freeze(c, tenantId, options);
          froze = 'yes';
        } catch (e) {
          froze = isConnectionFault(e) ? 'unknown' : 'no';
          throw e;
        }
        await waitForOlderTransactions(c, dataModel(model).runtimeRole(options));
      });
      result = await work(owned);
    } catch (e) {
      await this.thaw(owned, movingTo, froze !== 'no', e);
      throw e;
    }
    if (result === SWITCHED) return result;
    await this.thaw(owned, movingTo, true);
    return result;
  }

  /** Thaws the tenant where it is and marks it active; `failure` (if any) is recorded as the reason. */
  private async thaw(
    entry: RegistryEntry,
    movingTo: IsolationModel,
    mayBeFrozen: boolean,
    failure?: unknown,
  ): Promise<void> {
    const { tenantId, model } = entry;
    await this.expectOwned(entry);
    try {
      // A freeze whose reply was lost may have committed: then thaw anyway (unfreeze is idempotent).
      if (mayBeFrozen) {
        await this.platform.withMaster(model, tenantId, (c, options) =>
          dataModel(model).unfreeze(c, tenantId, options),
        );
      }
    } catch (e) {
      this.platform.registry.put({
        ...withoutFields(entry, 'lock'),
        status: 'moving',
        movingTo,
        failureReason: `${failure ? `${(failure as Error).message}; then ` : ''}the thaw failed: ${(e as Error).message}`,
      });
      throw new MobilityError(
        `tenant "${tenantId}" could not be thawed (${(e as Error).message})${failure ? ` after: ${(failure as Error).message}` : ''}; it stays read-only and answers 503: run npm run tenant -- abort-move --tenant ${tenantId} once the database answers`,
      );
    }
    this.platform.registry.put({
      ...withoutFields(entry, 'movingTo', 'lock'),
      status: 'active',
      ...(failure
        ? {
            failureReason: `${movingTo === model ? 'restore' : `move to ${movingTo}`} failed, the tenant stayed ${model}: ${(failure as Error).message}`,
          }
        : {}),
    });
  }

  /** Removes the copy a move kept (its data in the model it left). */
  async purge(tenantId: string): Promise<string> {
    await this.entryOf(tenantId, 'purge');
    return this.locked(tenantId, async () => {
      const entry = await this.entryOf(tenantId, 'purge');
      if (entry.status === 'moving') {
        throw new MobilityError(
          `purge: tenant "${tenantId}" is moving: wait for the move, or abort it first`,
        );
      }
      if (!entry.keptCopy)
        throw new MobilityError(`purge: tenant "${tenantId}" has no kept copy: nothing to purge`);
      if (entry.keptCopy === entry.model) {
        throw new MobilityError(
          `purge: tenant "${tenantId}"'s kept copy is in its current model (${entry.model}): refusing to touch it`,
        );
      }
      await this.platform.removePlace(entry.keptCopy, tenantId);
      this.platform.registry.put(withoutFields(entry, 'keptCopy'));
      return `tenant "${tenantId}": the ${entry.keptCopy} copy its move kept was removed; it is served by ${entry.model}`;
    });
  }

  /** The registry entry still carries this operation's token (nothing else changed the tenant meanwhile). */
  private async expectOwned(owned: RegistryEntry): Promise<void> {
    const now = await this.platform.registry.get(owned.tenantId);
    if (now?.lock !== owned.lock) {
      throw new MobilityError(
        `tenant "${owned.tenantId}" was changed by another operation while this one ran (its registry entry is now ${now ? `${now.model}, ${now.status}` : 'gone'}): this operation stops without touching it`,
      );
    }
  }

  private async entryOf(tenantId: string, command: string): Promise<RegistryEntry> {
    validateTenantId(tenantId, `${command} --tenant`);
    const entry = await this.platform.registry.get(tenantId);
    if (!entry)
      throw new MobilityError(
        `${command}: tenant "${tenantId}" is not in the local registry (${this.platform.registry.path})`,
      );
    return entry;
  }

  /** An export as the tenant's runtime principal in `model` (where its data is now). */
  private async exportFrom(
    model: IsolationModel,
    tenantId: string,
    file: string,
    encrypt?: boolean,
  ): Promise<ArchiveManifest> {
    const schemaVersion = await this.platform.schemaVersionOf(model, tenantId);
    const db = this.platform.databaseFor({ tenantId, model, status: 'active' });
    if (!db) throw new Error(`tenant "${tenantId}" has no ${model} database on this platform`);
    return exportTenant(db.forTenant(tenantId), file, this.platform.archiveKey, { schemaVersion, encrypt });
  }

  /** Counts and checksums of the tenant's rows as its runtime principal in `model` reads them. */
  private async digestAsRuntime(
    model: IsolationModel,
    tenantId: string,
    columns?: Readonly<Record<string, readonly string[]>>,
  ) {
    const db = this.platform.databaseFor({ tenantId, model, status: 'active' });
    if (!db) throw new Error(`tenant "${tenantId}" has no ${model} database on this platform`);
    return db.forTenant(tenantId).snapshot(async (tx) => {
      await canonicalSession(tx.query);
      const read: Record<string, readonly string[]> = { ...columns };
      for (const t of TENANT_TABLES) read[t.name] ??= await tableColumns(tx.query, t.name);
      return digestTables(tx.query, read);
    });
  }
}
