/**
 * The cell's archive bucket (mobility-runner construct): archives in and out for the mobility runner
 * (mobility.ts), and, for the provisioner, every version under `tenants/<id>/` of a tenant offboarded with its
 * data destroyed, so no copy outlives the destroy and none can be restored into a later tenant that takes the
 * same id.
 */
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import { Readable } from 'stream';
import { pipeline } from 'stream/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  type ObjectIdentifier,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { ProvisioningInputError } from './request';

/** The most one PutObject takes; a larger archive (a runner task's) goes up in parts. */
export const SINGLE_PUT_BYTES = 5 * 1024 ** 3;
/** Parts of at least this size (S3 takes at most 10,000 parts: an archive of 640 GiB). */
const MIN_PART_BYTES = 64 * 1024 ** 2;

/**
 * Uploads `file` as a new archive of the tenant, `tenants/<id>/<time>-<random>.tfa` (or `tenants/<id>/<name>.tfa`),
 * never over an existing object; returns its key and version. Above `singlePutBytes`, in parts.
 */
export async function uploadArchive(
  client: S3Client,
  bucket: string,
  tenantId: string,
  file: string,
  bytes: number,
  metadata: Record<string, string>,
  name?: string,
  singlePutBytes = SINGLE_PUT_BYTES,
): Promise<{ key: string; versionId?: string }> {
  const key = `tenants/${tenantId}/${name ?? `${stamp(new Date())}-${randomBytes(4).toString('hex')}`}.tfa`;
  if (bytes > singlePutBytes) {
    return uploadInParts(
      client,
      bucket,
      key,
      file,
      bytes,
      { 'tenant-id': tenantId, ...metadata },
      singlePutBytes,
    );
  }
  const written = await client.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: fs.createReadStream(file),
      ContentLength: bytes,
      ContentType: 'application/octet-stream',
      // Never over an existing archive (the key is new; this makes it certain).
      IfNoneMatch: '*',
      Metadata: { 'tenant-id': tenantId, ...metadata },
    }),
  );
  return { key, versionId: written.VersionId };
}

/**
 * A multipart upload of `file`, one part after another from the file itself (the archive is already on disk, so
 * memory stays flat), completed only if no object has the key (as a single put's If-None-Match). A failure aborts
 * the upload, so no parts are left to bill.
 */
async function uploadInParts(
  client: S3Client,
  bucket: string,
  key: string,
  file: string,
  bytes: number,
  metadata: Record<string, string>,
  partCeiling: number,
): Promise<{ key: string; versionId?: string }> {
  const partBytes = Math.min(partCeiling, Math.max(MIN_PART_BYTES, Math.ceil(bytes / 10_000)));
  const { UploadId } = await client.send(
    new CreateMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      ContentType: 'application/octet-stream',
      Metadata: metadata,
    }),
  );
  try {
    const parts: { ETag: string; PartNumber: number }[] = [];
    for (let start = 0, n = 1; start < bytes; start += partBytes, n++) {
      const end = Math.min(bytes, start + partBytes);
      const r = await client.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId,
          PartNumber: n,
          Body: fs.createReadStream(file, { start, end: end - 1 }),
          ContentLength: end - start,
        }),
      );
      parts.push({ ETag: r.ETag!, PartNumber: n });
    }
    const done = await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: parts },
        IfNoneMatch: '*',
      }),
    );
    return { key, versionId: done.VersionId };
  } catch (e) {
    await client
      .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId }))
      .catch(() => undefined);
    throw e;
  }
}

/** Deletes the one version an upload wrote (an export that must not leave its archive). */
export async function withdrawArchive(
  client: S3Client,
  bucket: string,
  key: string,
  versionId: string | undefined,
): Promise<void> {
  await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
}

/** The archive from the bucket to `file`, refusing one larger than `maxBytes` (the function's storage). */
export async function downloadArchive(
  client: S3Client,
  bucket: string,
  key: string,
  file: string,
  maxBytes: number,
): Promise<number> {
  let object;
  try {
    object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  } catch (e) {
    if ((e as Error).name === 'NoSuchKey') {
      throw new ProvisioningInputError(`no archive ${key} in bucket ${bucket}: name one an export returned`);
    }
    throw e;
  }
  const length = object.ContentLength ?? 0;
  if (length > maxBytes) {
    throw new Error(
      `${key} is ${length} bytes, more than this runner's ${maxBytes}: raise its ephemeral storage; nothing was written`,
    );
  }
  await pipeline(object.Body as Readable, fs.createWriteStream(file, { flags: 'wx', mode: 0o600 }));
  return fs.statSync(file).size;
}

/** 2026-11-28T03:04:05.678Z -> 20261128T030405Z */
function stamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

let s3: S3Client | undefined;

/** Whether `key` is still in the bucket (not deleted since it was read: a destroyed tenant's archives go). */
export async function archiveStillThere(client: S3Client, bucket: string, key: string): Promise<boolean> {
  try {
    // Asked inside a restore's transaction: an answer that does not come fails in seconds.
    await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), {
      abortSignal: AbortSignal.timeout(10_000),
    });
    return true;
  } catch (e) {
    if ((e as Error).name === 'NotFound' || (e as Error).name === 'NoSuchKey') return false;
    throw e;
  }
}

/** Deletes every version and delete marker under the tenant's prefix; returns how many. A gone bucket is no error. */
export async function deleteTenantArchives(
  bucket: string,
  tenantId: string,
  client: S3Client = (s3 ??= new S3Client({ useDualstackEndpoint: process.env.S3_DUALSTACK === 'true' })),
  /** Versions per listed page (S3's default, 1,000, when unset; tests page through a few). */
  pageSize?: number,
): Promise<number> {
  const prefix = `tenants/${tenantId}/`;
  let deleted = 0;
  // Each page is deleted before the next is listed, so every listing starts from the beginning of the prefix:
  // no paging markers that could point at versions just deleted.
  for (;;) {
    let page;
    try {
      page = await client.send(
        new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix, MaxKeys: pageSize }),
      );
    } catch (e) {
      if ((e as Error).name === 'NoSuchBucket') return deleted;
      throw e;
    }
    const objects: ObjectIdentifier[] = [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])]
      .filter((v) => v.Key?.startsWith(prefix))
      .map((v) => ({ Key: v.Key!, VersionId: v.VersionId }));
    if (objects.length === 0) return deleted;
    const r = await client.send(
      new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }),
    );
    if (r.Errors?.length) {
      const e = r.Errors[0];
      throw new Error(
        `could not delete archive ${e.Key} (version ${e.VersionId}) of tenant "${tenantId}" in bucket ${bucket}: ${e.Code} ${e.Message} (${r.Errors.length} failed)`,
      );
    }
    deleted += objects.length;
  }
}
