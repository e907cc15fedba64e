import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ArchiveKey, verifyArchive } from '../../db/mobility';
import { ArchiveWriter } from '../../db/mobility/archive-writer';

// An archive another cell vouched for (ArchiveKey.vouchedFor, lambda/tenant-provisioner/mobility-handover.ts): the
// reader checks the whole file's SHA-256 where it would check the signature, with no key to sign or decrypt.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vouched-'));
const source = ArchiveKey.fromHex('d4'.repeat(32), 'test');
const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

async function archive(name: string, key: ArchiveKey, options: { encrypt?: boolean } = {}): Promise<string> {
  const file = path.join(dir, name);
  const w = await ArchiveWriter.open(
    file,
    {
      tenantId: 'wonka',
      model: 'pool',
      schemaVersion: 1,
      tables: [{ name: 'invoices', columns: ['id', 'customer'] }],
    },
    key,
    options,
  );
  await w.rows('invoices', [
    ['1', 'Augustus'],
    ['2', 'Veruca'],
  ]);
  await w.finish();
  return file;
}

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test('exactly the vouched-for bytes are read, without the key that signed them', async () => {
  const file = await archive('a.tfa', source);
  const vouched = ArchiveKey.vouchedFor(sha256(file), 'the pool cell');
  expect(await verifyArchive(file, vouched)).toMatchObject({ tenantId: 'wonka', rows: { invoices: 2 } });
  // The same content signed by another key is other bytes: refused, though it is a well-formed archive.
  const other = await archive('b.tfa', ArchiveKey.fromHex('e5'.repeat(32), 'test'));
  await expect(verifyArchive(other, vouched)).rejects.toThrow(
    'is not the archive the pool cell vouched for (its SHA-256 differs): it was altered or replaced since; nothing was written',
  );
  // ... and a signed archive read with a vouched key whose digest is someone else's.
  await expect(verifyArchive(file, ArchiveKey.vouchedFor('0'.repeat(64), 'x'))).rejects.toThrow(
    'is not the archive x vouched for',
  );
});

test('a vouched-for key cannot sign or decrypt: an encrypted archive is refused, naming why', async () => {
  const file = await archive('c.tfa', source, { encrypt: true });
  const vouched = ArchiveKey.vouchedFor(sha256(file), 'the bridge cell');
  await expect(verifyArchive(file, vouched)).rejects.toThrow(
    'is encrypted with the key of the installation that made it, which the bridge cell does not hand over',
  );
  expect(() => vouched.signer()).toThrow('cannot sign or decrypt');
  expect(() => ArchiveKey.vouchedFor('not hex', 'y')).toThrow('is not a SHA-256 in hex');
});
