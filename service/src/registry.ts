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

export interface TenantRegistry {
  get(tenantId: string): Promise<RegistryEntry | undefined>;
}

export class DynamoRegistry implements TenantRegistry {
  constructor(
    private readonly tableName: string,
    private readonly client = new DynamoDBClient({}),
  ) {}

  async get(tenantId: string): Promise<RegistryEntry | undefined> {
    const r = await this.client.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: { [REGISTRY_KEY]: { S: tenantId } },
        ConsistentRead: true,
      }),
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
    const tmp = `${this.path}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(all, null, 2));
    fs.renameSync(tmp, this.path);
  }
}

/** Caches lookups (misses too) for `ttlMs`, so a burst of requests costs one registry read per tenant. */
export class CachedRegistry implements TenantRegistry {
  private readonly cache = new Map<string, { at: number; entry: Promise<RegistryEntry | undefined> }>();

  constructor(
    private readonly inner: TenantRegistry,
    private readonly ttlMs = 30000,
  ) {}

  get(tenantId: string): Promise<RegistryEntry | undefined> {
    const now = Date.now();
    const hit = this.cache.get(tenantId);
    if (hit && now - hit.at < this.ttlMs) return hit.entry;
    const entry = this.inner.get(tenantId);
    this.cache.set(tenantId, { at: now, entry });
    // A failed lookup is not cached.
    entry.catch(() => this.cache.delete(tenantId));
    if (this.cache.size > 10000) this.cache.delete(this.cache.keys().next().value as string);
    return entry;
  }
}
