/**
 * The tenant registry as the API reads it (contracts/registry.ts defines the item): DynamoDB in AWS (the table
 * the provisioner and the onboarding workflow write), a JSON file on the local platform; both behind a short
 * cache.
 */
import * as fs from 'fs';
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { REGISTRY_KEY, RegistryItem, registryItemFromAttributes } from '../../contracts';

export type { RegistryItem, TenantStatus } from '../../contracts';
/** What the API reads of a tenant: the registry item. */
export type RegistryEntry = RegistryItem;

/** A copy of an entry without some of its fields (an operation that is over takes its own fields away). */
export function withoutFields(entry: RegistryEntry, ...fields: (keyof RegistryEntry)[]): RegistryEntry {
  const copy: Record<string, unknown> = { ...entry };
  for (const f of fields) delete copy[f];
  return copy as unknown as RegistryEntry;
}

export interface TenantRegistry {
  get(tenantId: string): Promise<RegistryEntry | undefined>;
}

export class DynamoRegistry implements TenantRegistry {
  constructor(
    private readonly tableName: string,
    // Two attempts at most: the cache above serves a known tenant from memory while DynamoDB is unwell.
    private readonly client = new DynamoDBClient({ maxAttempts: 2 }),
    private readonly timeoutMs = 1000,
  ) {}

  async get(tenantId: string): Promise<RegistryEntry | undefined> {
    const r = await this.client.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: { [REGISTRY_KEY]: { S: tenantId } },
        ConsistentRead: true,
      }),
      // Never wait on a hung request: every lookup ends within the timeout.
      { abortSignal: AbortSignal.timeout(this.timeoutMs) },
    );
    return registryItemFromAttributes(r.Item);
  }
}

/** The local platform's registry: one JSON object keyed by tenant id, written by the local provisioning. */
export class FileRegistry implements TenantRegistry {
  constructor(readonly path: string) {}

  async get(tenantId: string): Promise<RegistryEntry | undefined> {
    return this.readAll()[tenantId];
  }

  readAll(): Record<string, RegistryEntry> {
    if (!fs.existsSync(this.path)) return {};
    return JSON.parse(fs.readFileSync(this.path, 'utf8')) as Record<string, RegistryEntry>;
  }

  put(entry: RegistryEntry): void {
    const all = this.readAll();
    all[entry.tenantId] = { ...entry, updatedAt: new Date().toISOString() };
    this.write(all);
  }

  /** Forgets a tenant that never became active (a restore into a new id that failed). */
  remove(tenantId: string): void {
    const all = this.readAll();
    delete all[tenantId];
    this.write(all);
  }

  private write(all: Record<string, RegistryEntry>): void {
    const tmp = `${this.path}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(all, null, 2));
    fs.renameSync(tmp, this.path);
  }
}

/** The registry could not be read and nothing usable is cached: the request gets 503, never a guess. */
export class RegistryUnavailable extends Error {
  constructor(tenantId: string, cause: unknown) {
    super(
      `the tenant registry could not be read for tenant "${tenantId}": ${(cause as Error)?.message ?? cause}`,
    );
    this.name = 'RegistryUnavailable';
  }
}

export interface RegistryCacheOptions {
  /**
   * How long an active tenant's entry is served from memory. Offboarding does not wait for it: the database
   * refuses an offboarded tenant at once (pool: its registration, bridge: its role), whatever the cache says.
   * @default 10000
   */
  readonly activeTtlMs?: number;
  /** How long a miss or a non-active entry is served from memory: a new tenant is served within this. @default 1000 */
  readonly inactiveTtlMs?: number;
  /** While the registry fails, a known active tenant is served from its last entry for this long. @default 300000 */
  readonly staleForMs?: number;
  /** Every lookup gives up after this long (then: stale, or unavailable). @default 1500 */
  readonly timeoutMs?: number;
  readonly now?: () => number;
  /** Told when a stale entry is served, once per tenant and outage. */
  readonly onStale?: (tenantId: string, error: unknown) => void;
}

interface Cached {
  /** When the entry was read. */
  at: number;
  entry: RegistryEntry | undefined;
}

/**
 * The registry as the API reads it: short caching with explicit semantics.
 * - an active tenant: from memory for `activeTtlMs`; a miss or a non-active tenant: `inactiveTtlMs`;
 * - concurrent lookups of the same tenant share one read;
 * - every read ends within `timeoutMs`;
 * - when a read fails or times out, a tenant last seen active is served from that entry for up to `staleForMs`
 *   (stale-while-error); anything else is RegistryUnavailable (503).
 */
export class CachedRegistry implements TenantRegistry {
  private readonly cache = new Map<string, Cached>();
  private readonly pending = new Map<string, Promise<RegistryEntry | undefined>>();
  private readonly staleSince = new Map<string, number>();
  private readonly o: Required<Omit<RegistryCacheOptions, 'onStale'>> & Pick<RegistryCacheOptions, 'onStale'>;

  constructor(
    private readonly inner: TenantRegistry,
    options: RegistryCacheOptions = {},
  ) {
    this.o = {
      activeTtlMs: options.activeTtlMs ?? 10000,
      inactiveTtlMs: options.inactiveTtlMs ?? 1000,
      staleForMs: options.staleForMs ?? 300000,
      timeoutMs: options.timeoutMs ?? 1500,
      now: options.now ?? Date.now,
      onStale: options.onStale,
    };
  }

  get(tenantId: string): Promise<RegistryEntry | undefined> {
    const now = this.o.now();
    const hit = this.cache.get(tenantId);
    if (hit) {
      const ttl = hit.entry?.status === 'active' ? this.o.activeTtlMs : this.o.inactiveTtlMs;
      if (now - hit.at < ttl) return Promise.resolve(hit.entry);
    }
    let read = this.pending.get(tenantId);
    if (!read) {
      read = this.read(tenantId, hit).finally(() => this.pending.delete(tenantId));
      this.pending.set(tenantId, read);
    }
    return read;
  }

  /** Forgets a tenant (the database refused it: the next request reads the registry again). */
  forget(tenantId: string): void {
    this.cache.delete(tenantId);
  }

  private async read(tenantId: string, last: Cached | undefined): Promise<RegistryEntry | undefined> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const entry = await Promise.race([
        this.inner.get(tenantId),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${this.o.timeoutMs} ms`)),
            this.o.timeoutMs,
          );
        }),
      ]);
      this.cache.set(tenantId, { at: this.o.now(), entry });
      this.staleSince.delete(tenantId);
      if (this.cache.size > 10000) this.cache.delete(this.cache.keys().next().value as string);
      return entry;
    } catch (e) {
      const now = this.o.now();
      if (last?.entry?.status === 'active' && now - last.at < this.o.staleForMs) {
        if (!this.staleSince.has(tenantId)) {
          this.staleSince.set(tenantId, now);
          this.o.onStale?.(tenantId, e);
        }
        return last.entry;
      }
      throw new RegistryUnavailable(tenantId, e);
    } finally {
      clearTimeout(timer);
    }
  }
}
