/**
 * Reading a tenant archive (the format: archive.ts): everything is checked as it is read (structure, order,
 * line length, counts, checksums, the signature), and nothing is trusted before the whole file has proven
 * complete, unaltered and this installation's.
 */
import { createDecipheriv, createHash } from 'crypto';
import * as fs from 'fs';
import { Readable } from 'stream';
import { createGunzip } from 'zlib';
import { ISOLATION_MODELS, IsolationModel } from '../../contracts';
import { validateTenantId } from '../naming';
import {
  ARCHIVE_FORMAT,
  ARCHIVE_FORMAT_VERSION,
  ArchiveError,
  ArchiveHeader,
  ArchiveKey,
  ArchiveManifest,
  ENCRYPTED_MAGIC,
  TableDigests,
} from './archive';

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
  const vouched = key.vouched;
  if (encrypted && vouched) {
    throw fail(
      `is encrypted with the key of the installation that made it, which ${vouched.by} does not hand over: export it again unencrypted; nothing was written`,
    );
  }
  // An archive another cell vouched for: its whole file must have the digest that cell verified, instead of a
  // signature this reader has no key for.
  const whole = vouched ? createHash('sha256') : undefined;
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
  // Beside the pipe (attached first, so it misses no chunk): every byte of the file, for a vouched-for digest.
  if (whole) source.on('data', (chunk: Buffer) => whole.update(chunk));
  const mac = vouched ? undefined : key.signer();
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
          mac?.update(`${text}\n`);
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
          mac?.update(`${text}\n`);
          digests!.addLine(table.name, `${JSON.stringify(values)}\n`);
          batch.push({ table: table.name, values: values as (string | null)[] });
          continue;
        }
        const obj = parsed as Record<string, unknown>;
        if (obj.manifest && !manifestLine) {
          manifestLine = obj.manifest as ManifestLine;
          mac?.update(`${text}\n`);
          continue;
        }
        if (typeof obj.signature === 'string' && manifestLine) {
          if (mac && obj.signature !== mac.digest('hex')) {
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
  if (whole && whole.digest('hex') !== vouched!.sha256) {
    throw fail(
      `is not the archive ${vouched!.by} vouched for (its SHA-256 differs): it was altered or replaced since; nothing was written`,
    );
  }
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
