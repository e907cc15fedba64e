/** Writing a tenant archive (the format: archive.ts), streaming, with backpressure. */
import { createCipheriv, Hmac, randomBytes } from 'crypto';
import * as fs from 'fs';
import { once } from 'events';
import { PassThrough } from 'stream';
import { pipeline } from 'stream/promises';
import { createGzip } from 'zlib';
import {
  ARCHIVE_FORMAT,
  ARCHIVE_FORMAT_VERSION,
  ARCHIVE_TOOL,
  ArchiveError,
  ArchiveHeader,
  ArchiveKey,
  ArchiveManifest,
  ENCRYPTED_MAGIC,
  TableDigests,
} from './archive';

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
