/**
 * A tenant offboarded with its data destroyed loses its archives too (the cell's archive bucket, mobility-runner
 * construct): every version under `tenants/<id>/`, so no copy outlives the destroy, and no archive of it can be
 * restored into a later tenant that takes the same id.
 */
import {
  DeleteObjectsCommand,
  ListObjectVersionsCommand,
  type ObjectIdentifier,
  S3Client,
} from '@aws-sdk/client-s3';

let s3: S3Client | undefined;

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
