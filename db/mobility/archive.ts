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
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, Hmac, randomBytes } from 'crypto';
import * as fs from 'fs';
import { once } from 'events';
import { PassThrough, Readable } from 'stream';
import { pipeline } from 'stream/promises';
import { createGunzip, createGzip } from 'zlib';
import { ISOLATION_MODELS, IsolationModel } from '../../contracts';
import { validateTenantId } from '../naming';

export const ARCHIVE_FORMAT = 'tenantforge-tenant-archive';
export const ARCHIVE_FORMAT_VERSION = 1;
/** The tool that writes archives (package.json's name and version). */
export const ARCHIVE_TOOL = 'tenantforge 0.1.0';
/** An encrypted archive starts with these bytes, then a 12-byte IV; it ends with the 16-byte GCM tag. */
const ENCRYPTED_MAGIC = Buffer.from('TFAE1\n');

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

/** The installation's archive key: signs every archive, and (derived) encrypts those asked to be. */
export class ArchiveKey {
  private constructor(private readonly key: Buffer) {}

  static fromHex(hex: string | undefined, source: string): ArchiveKey {
    if (!hex || !/^([0-9a-f]{2}){32,64}$/i.test(hex)) {
      throw new Error(`${source}: the archive key must be 64 to 128 hex characters (32 to 64 random bytes)`);
    }
    return new ArchiveKey(Buffer.from(hex, 'hex'));
  }

  signer(): Hmac {
    return createHmac('sha256', this.key);
  }

  encryptionKey(): Buffer {
    return createHmac('sha256', this.key).update('tenant archive encryption').digest();
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

/** Writes one archive, streaming: rows go out as they are added, with backpressure. */
export class ArchiveWriter {
  private readonly out: PassThrough;
  private readonly done: Promise<void>;
  private readonly mac: Hmac;
  private readonly digests: TableDigests;
  private readonly index = new Map<string, number>();
  private bytes = 0;

  private constructor(
    readonly file: string,
    private readonly header: ArchiveHeader,
    key: ArchiveKey,
    private readonly encrypt: boolean,
    handle: fs.promises.FileHandle,
  ) {
    this.mac = key.signer();
    this.digests = new TableDigests(header.tables.map((t) => t.name));
    header.tables.forEach((t, i) => this.index.set(t.name, i));
    this.out = new PassThrough({ highWaterMark: 1 << 20 });
    const sink = handle.createWriteStream();
    const stages: (NodeJS.ReadableStream | NodeJS.WritableStream)[] = [this.out, createGzip({ level: 1 })];
    if (encrypt) {
      const iv = randomBytes(12);
      sink.write(Buffer.concat([ENCRYPTED_MAGIC, iv]));
      const cipher = createCipheriv('aes-256-gcm', key.encryptionKey(), iv);
      stages.push(cipher);
      this.done = pipeline([...stages, sink] as never).then(() =>
        fs.promises.appendFile(file, cipher.getAuthTag()),
      );
    } else {
      this.done = pipeline([...stages, sink] as never);
    }
    this.done.catch(() => undefined);
  }

  /** Opens `file` (which must not exist) and writes the header. */
  static async open(
    file: string,
    header: Omit<ArchiveHeader, 'format' | 'formatVersion' | 'createdAt' | 'tool'>,
    key: ArchiveKey,
    options: { encrypt?: boolean } = {},
  ): Promise<ArchiveWriter> {
    const full: ArchiveHeader = {
      format: ARCHIVE_FORMAT,
      formatVersion: ARCHIVE_FORMAT_VERSION,
      tenantId: header.tenantId,
      model: header.model,
      schemaVersion: header.schemaVersion,
      createdAt: new Date().toISOString(),
      tool: ARCHIVE_TOOL,
      tables: header.tables,
    };
    // Opened here, so a file that cannot be created fails now, naming it. 0600: an archive is one tenant's data;
    // only the operator who made it reads it. `wx`: an existing file is never overwritten.
    let handle: fs.promises.FileHandle;
    try {
      handle = await fs.promises.open(file, 'wx', 0o600);
    } catch (e) {
      throw new ArchiveError(file, `cannot be created (${(e as Error).message}): choose another path`);
    }
    const w = new ArchiveWriter(file, full, key, options.encrypt ?? false, handle);
    await w.line(JSON.stringify(full));
    return w;
  }

  async row(table: string, values: readonly (string | null)[]): Promise<void> {
    await this.rows(table, [values]);
  }

  /** Several rows of one table, written (and hashed) as one chunk. */
  async rows(table: string, rows: readonly (readonly (string | null)[])[]): Promise<void> {
    const i = this.index.get(table);
    if (i === undefined) throw new Error(`table ${table} is not in this archive's header`);
    let canonical = '';
    let lines = '';
    for (const values of rows) {
      const json = JSON.stringify(values);
      canonical += `${json}\n`;
      lines += `[${i},${json}]\n`;
    }
    this.digests.addChunk(table, canonical, rows.length);
    await this.chunk(lines);
  }

  /** Writes the manifest and the signature, and waits until the file is complete. */
  async finish(): Promise<ArchiveManifest> {
    const manifest = { rows: this.digests.rows, checksums: this.digests.checksums() };
    await this.line(JSON.stringify({ manifest }));
    const signature = this.mac.digest('hex');
    this.out.end(`${JSON.stringify({ signature })}\n`);
    await this.done;
    return { ...this.header, ...manifest, encrypted: this.encrypt };
  }

  /** Stops writing and removes the partial file. */
  async abort(): Promise<void> {
    this.out.destroy();
    await this.done.catch(() => undefined);
    await fs.promises.rm(this.file, { force: true });
  }

  get size(): number {
    return this.bytes;
  }

  private line(text: string): Promise<void> {
    return this.chunk(`${text}\n`);
  }

  private async chunk(data: string): Promise<void> {
    this.mac.update(data);
    this.bytes += Buffer.byteLength(data);
    // A failing file (disk full, removed) ends the pipeline: never wait for a drain that will not come.
    if (!this.out.write(data)) await Promise.race([once(this.out, 'drain'), this.done]);
  }
}

/** One row as read back from an archive. */
export interface ArchiveRow {
  readonly table: string;
  readonly values: (string | null)[];
}

/**
 * Reads an archive, checking everything as it goes. `verifyArchive` reads it whole first (nothing is written
 * before an archive has proven complete, unaltered and ours); `readArchive` then streams its rows.
 */
export async function verifyArchive(file: string, key: ArchiveKey): Promise<ArchiveManifest> {
  let manifest: ArchiveManifest | undefined;
  for await (const item of scan(file, key)) if ('manifest' in item) manifest = item.manifest;
  return manifest!;
}

/** The rows of a verified archive, in order, a decompressed chunk at a time (call verifyArchive first). */
export async function* readArchive(
  file: string,
  key: ArchiveKey,
  onHeader?: (header: ArchiveHeader) => void,
): AsyncGenerator<ArchiveRow[]> {
  for await (const item of scan(file, key, onHeader)) if ('rows' in item) yield item.rows;
}

async function* scan(
  file: string,
  key: ArchiveKey,
  onHeader?: (header: ArchiveHeader) => void,
): AsyncGenerator<{ rows: ArchiveRow[] } | { manifest: ArchiveManifest }> {
  const fail = (problem: string) => new ArchiveError(file, problem);
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(file);
  } catch (e) {
    throw fail(`cannot be read (${(e as Error).message})`);
  }
  const encrypted = await startsWithMagic(file);
  let source: Readable;
  const gunzip = createGunzip();
  if (encrypted) {
    if (stat.size < ENCRYPTED_MAGIC.length + 12 + 16)
      throw fail('is truncated (shorter than its encryption header)');
    const head = Buffer.alloc(ENCRYPTED_MAGIC.length + 12);
    const tag = Buffer.alloc(16);
    const fd = await fs.promises.open(file, 'r');
    await fd.read(head, 0, head.length, 0);
    await fd.read(tag, 0, 16, stat.size - 16);
    await fd.close();
    const decipher = createDecipheriv(
      'aes-256-gcm',
      key.encryptionKey(),
      head.subarray(ENCRYPTED_MAGIC.length),
    );
    decipher.setAuthTag(tag);
    const body = fs.createReadStream(file, { start: head.length, end: stat.size - 17 });
    source = body.pipe(decipher).on('error', (e) => gunzip.destroy(e));
    body.on('error', (e) => gunzip.destroy(e));
  } else {
    source = fs.createReadStream(file).on('error', (e) => gunzip.destroy(e));
  }
  const lines = splitLines(source.pipe(gunzip), fail);
  const mac = key.signer();
  let header: ArchiveHeader | undefined;
  let digests: TableDigests | undefined;
  type ManifestLine = { rows: Record<string, number>; checksums: Record<string, string> };
  let manifestLine: ManifestLine | undefined;
  let signed = false;
  let lastTable = -1;
  let n = 0;
  try {
    for await (const chunk of lines) {
      const batch: ArchiveRow[] = [];
      for (const text of chunk) {
        n++;
        if (signed) throw fail(`has data after its signature (line ${n})`);
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          throw fail(`line ${n} is not JSON: the file is damaged or not a tenant archive`);
        }
        if (!header) {
          header = checkHeader(parsed, fail);
          onHeader?.(header);
          digests = new TableDigests(header.tables.map((t) => t.name));
          mac.update(`${text}\n`);
          continue;
        }
        if (Array.isArray(parsed)) {
          if (manifestLine) throw fail(`line ${n}: a row after the manifest`);
          const [i, values] = parsed as [unknown, unknown];
          const table = typeof i === 'number' ? header.tables[i] : undefined;
          if (!table || !Array.isArray(values) || values.length !== table.columns.length) {
            throw fail(`line ${n} is not a row of a table in the header`);
          }
          if ((i as number) < lastTable) throw fail(`line ${n}: tables are out of order`);
          lastTable = i as number;
          if (!values.every((v) => v === null || typeof v === 'string')) {
            throw fail(`line ${n}: a value is neither text nor null`);
          }
          mac.update(`${text}\n`);
          digests!.addLine(table.name, `${JSON.stringify(values)}\n`);
          batch.push({ table: table.name, values: values as (string | null)[] });
          continue;
        }
        const obj = parsed as Record<string, unknown>;
        if (obj.manifest && !manifestLine) {
          manifestLine = obj.manifest as ManifestLine;
          mac.update(`${text}\n`);
          continue;
        }
        if (typeof obj.signature === 'string' && manifestLine) {
          const expected = mac.digest('hex');
          if (obj.signature !== expected) {
            throw fail(
              'its signature does not match: it was altered, or it was made by another installation (another archive key); nothing was written',
            );
          }
          signed = true;
          continue;
        }
        throw fail(`line ${n} is not part of a tenant archive`);
      }
      if (batch.length > 0) yield { rows: batch };
    }
  } catch (e) {
    if (e instanceof ArchiveError) throw e;
    throw fail(
      encrypted
        ? `cannot be decrypted or decompressed (${(e as Error).message}): it is truncated, altered, or encrypted by another installation`
        : `cannot be decompressed (${(e as Error).message}): it is truncated or damaged`,
    );
  }
  if (!header) throw fail('is empty');
  if (!manifestLine) throw fail(`is truncated: it ends after ${n} lines, before its manifest`);
  if (!signed) throw fail('is truncated: it ends before its signature');
  const actual = digests!.checksums();
  for (const t of header.tables) {
    if (manifestLine.rows?.[t.name] !== digests!.rows[t.name]) {
      throw fail(
        `table ${t.name} has ${digests!.rows[t.name]} rows; its manifest says ${manifestLine.rows?.[t.name]}`,
      );
    }
    if (manifestLine.checksums?.[t.name] !== actual[t.name]) {
      throw fail(`table ${t.name}'s rows do not match its manifest's checksum`);
    }
  }
  yield { manifest: { ...header, rows: manifestLine.rows, checksums: manifestLine.checksums, encrypted } };
}

function checkHeader(parsed: unknown, fail: (p: string) => ArchiveError): ArchiveHeader {
  const h = parsed as Partial<ArchiveHeader>;
  if (!h || h.format !== ARCHIVE_FORMAT) throw fail('is not a tenant archive (no archive header)');
  if (h.formatVersion !== ARCHIVE_FORMAT_VERSION) {
    throw fail(
      `is format version ${h.formatVersion}; this tool reads version ${ARCHIVE_FORMAT_VERSION}: use the release that made it`,
    );
  }
  try {
    validateTenantId(h.tenantId, 'archive header');
  } catch (e) {
    throw fail((e as Error).message);
  }
  if (!ISOLATION_MODELS.includes(h.model as IsolationModel))
    throw fail(`names an unknown model ${JSON.stringify(h.model)}`);
  if (!Number.isInteger(h.schemaVersion) || (h.schemaVersion as number) < 1) {
    throw fail(`has no valid schema version (${JSON.stringify(h.schemaVersion)})`);
  }
  const tables = h.tables;
  if (
    !Array.isArray(tables) ||
    tables.length === 0 ||
    !tables.every(
      (t) =>
        typeof t?.name === 'string' &&
        Array.isArray(t.columns) &&
        t.columns.length > 0 &&
        t.columns.every((c: unknown) => typeof c === 'string'),
    )
  ) {
    throw fail('has no valid table list in its header');
  }
  return h as ArchiveHeader;
}

/** The longest line an archive may have: far more than any row of the application's tables. */
export const MAX_ARCHIVE_LINE = 16 * 1024 * 1024;

/**
 * The lines of a text stream, a chunk's worth at a time (errors of the stream end the iteration with them). A
 * partial line is kept as pieces and joined once its end arrives, so reading stays linear in the file's size;
 * a line longer than MAX_ARCHIVE_LINE ends the read.
 */
async function* splitLines(stream: Readable, fail: (problem: string) => Error): AsyncGenerator<string[]> {
  let pending: string[] = [];
  let pendingLength = 0;
  stream.setEncoding('utf8');
  for await (const chunk of stream as AsyncIterable<string>) {
    const last = chunk.lastIndexOf('\n');
    if (last < 0) {
      pending.push(chunk);
      pendingLength += chunk.length;
      if (pendingLength > MAX_ARCHIVE_LINE) {
        stream.destroy();
        throw fail(
          `has a line longer than ${MAX_ARCHIVE_LINE} characters: it is damaged or not a tenant archive`,
        );
      }
      continue;
    }
    const lines = (pending.join('') + chunk.slice(0, last)).split('\n');
    pending = [chunk.slice(last + 1)];
    pendingLength = pending[0].length;
    if (lines.some((l) => l.length > MAX_ARCHIVE_LINE)) {
      stream.destroy();
      throw fail(
        `has a line longer than ${MAX_ARCHIVE_LINE} characters: it is damaged or not a tenant archive`,
      );
    }
    yield lines;
  }
  const rest = pending.join('');
  if (rest !== '') yield [rest];
}

async function startsWithMagic(file: string): Promise<boolean> {
  const fd = await fs.promises.open(file, 'r');
  try {
    const b = Buffer.alloc(ENCRYPTED_MAGIC.length);
    const { bytesRead } = await fd.read(b, 0, b.length, 0);
    return bytesRead === b.length && b.equals(ENCRYPTED_MAGIC);
  } finally {
    await fd.close();
  }
}
