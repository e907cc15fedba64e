/**
 * The tenant archive: one tenant's rows, portable between models and installations of the same key.
 *
 * A file is gzip (optionally inside AES-256-GCM) of JSON lines:
 *
 *   {"format":"tenantforge-tenant-archive","formatVersion":1,"tenantId",...,"tables":[{"name","columns"}]}
 *   [<table index>,[<column values as PostgreSQL's text, or null>]]          one line per row, tables in order
 *   {"manifest":{"rows":{"<table>":n},"checksums":{"<table>":"<sha256>"}}}
 *   {"signature":"<HMAC-SHA256 of every byte above, with the installation's archive key>"}
 *
 * The header and the manifest line together are the manifest (tenant, model, schema version, time, tool version,
 * per-table row counts and checksums). A table's checksum is SHA-256 over its rows in key order, each row
 * `JSON.stringify(values) + "\n"`, the same whichever model the rows were read from (tableDigests in tables.ts),
 * so a restore or a move can prove the destination holds exactly what was exported. The signature makes an
 * altered archive, or one made by another installation (a foreign key), fail before anything is written.
 *
 * This module holds the format's parts (header, key, digests); archive-writer.ts writes an archive and
 * archive-reader.ts reads and verifies one.
 */
import { createHash, createHmac, Hmac } from 'crypto';
import type { IsolationModel } from '../../contracts';

export const ARCHIVE_FORMAT = 'tenantforge-tenant-archive';
export const ARCHIVE_FORMAT_VERSION = 1;
/** The tool that writes archives (package.json's name and version). */
export const ARCHIVE_TOOL = 'tenantforge 0.1.0';
/** An encrypted archive starts with these bytes, then a 12-byte IV; it ends with the 16-byte GCM tag. */
export const ENCRYPTED_MAGIC = Buffer.from('TFAE1\n');

export interface ArchiveTable {
  readonly name: string;
  /** Column names, in the order each row's values are. */
  readonly columns: readonly string[];
}

export interface ArchiveHeader {
  readonly format: typeof ARCHIVE_FORMAT;
  readonly formatVersion: number;
  readonly tenantId: string;
  readonly model: IsolationModel;
  readonly schemaVersion: number;
  readonly createdAt: string;
  readonly tool: string;
  readonly tables: readonly ArchiveTable[];
}

export interface ArchiveManifest extends ArchiveHeader {
  readonly rows: Readonly<Record<string, number>>;
  readonly checksums: Readonly<Record<string, string>>;
  readonly encrypted: boolean;
}

/** An archive that cannot be used: truncated, altered, foreign, or not an archive. Nothing was written. */
export class ArchiveError extends Error {
  constructor(file: string, problem: string) {
    super(`archive ${file}: ${problem}`);
    this.name = 'ArchiveError';
  }
}

/**
 * The installation's archive key: signs every archive, and (derived) encrypts those asked to be. Or, for an
 * archive another cell made (`vouchedFor`), no key at all but the SHA-256 of the file as that cell verified it with
 * its own: such a key only reads, and trusts exactly those bytes.
 */
export class ArchiveKey {
  private constructor(
    private readonly key: Buffer | undefined,
    /** A vouched-for archive: the SHA-256 (hex) its whole file must have, and who vouched. */
    readonly vouched?: { readonly sha256: string; readonly by: string },
  ) {}

  /**
   * Reads one archive that `by` (another cell's runner, which holds its signing key) verified and whose whole
   * file has SHA-256 `sha256`: the reader checks that digest instead of the signature. It cannot sign or decrypt.
   */
  static vouchedFor(sha256: string, by: string): ArchiveKey {
    if (!/^[0-9a-f]{64}$/.test(sha256)) {
      throw new Error(`${by}: the vouched digest ${JSON.stringify(sha256)} is not a SHA-256 in hex`);
    }
    return new ArchiveKey(undefined, { sha256, by });
  }

  static fromHex(hex: string | undefined, source: string): ArchiveKey {
    if (!hex || !/^([0-9a-f]{2}){32,64}$/i.test(hex)) {
      throw new Error(`${source}: the archive key must be 64 to 128 hex characters (32 to 64 random bytes)`);
    }
    return new ArchiveKey(Buffer.from(hex, 'hex'));
  }

  signer(): Hmac {
    return createHmac('sha256', this.secret());
  }

  encryptionKey(): Buffer {
    return createHmac('sha256', this.secret()).update('tenant archive encryption').digest();
  }

  private secret(): Buffer {
    if (!this.key) {
      throw new Error(
        `an archive vouched for by ${this.vouched?.by} is read by its digest: this key cannot sign or decrypt`,
      );
    }
    return this.key;
  }
}

/** Per-table row counts and SHA-256 of the canonical rows (see the module comment). */
export class TableDigests {
  private readonly hashes = new Map<string, ReturnType<typeof createHash>>();
  readonly rows: Record<string, number> = {};

  constructor(tables: readonly string[]) {
    for (const t of tables) {
      this.hashes.set(t, createHash('sha256'));
      this.rows[t] = 0;
    }
  }

  add(table: string, values: readonly (string | null)[]): void {
    this.addLine(table, `${JSON.stringify(values)}\n`);
  }

  /** `line` is `JSON.stringify(values) + "\n"` (the archive reader has it already). */
  addLine(table: string, line: string): void {
    const h = this.hashes.get(table);
    if (!h) throw new Error(`no table ${table} in this digest`);
    h.update(line);
    this.rows[table]++;
  }

  /** `count` rows' canonical lines at once. */
  addChunk(table: string, lines: string, count: number): void {
    const h = this.hashes.get(table);
    if (!h) throw new Error(`no table ${table} in this digest`);
    h.update(lines);
    this.rows[table] += count;
  }

  checksums(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [t, h] of this.hashes) out[t] = h.copy().digest('hex');
    return out;
  }
}
