/**
 * Lifecycle checks: what would break a deploy or a delete in AWS though every template is valid and every
 * cdk-nag pack passes. They run on every stack at synth, like the compliance packs, and fail the synth naming
 * the rule, the stack, the resource and the fix.
 *
 *   image-platform       a task's CPU architecture differs from the platform its image was built for ("exec
 *                        format error" on every start, and the circuit breaker rolls the stack back)
 *   protection-on-delete a stack meant to go (a disposable tenant, or the `retire` phase) holds a resource with
 *                        deletion protection, or a bucket nothing empties: its delete fails
 *   kept-fixed-name      a resource kept when its stack goes has a fixed physical name: creating the stack again
 *                        (a retried first deploy, a tenant onboarded again) fails with AlreadyExists
 *   readiness            a health check calls a route the API does not serve without a token, or the workflow
 *                        waits for tenant host names that no tenant stack creates
 */
import * as fs from 'fs';
import * as path from 'path';
import type {
  IPolicyValidationContext,
  IPolicyValidationPlugin,
  PolicyValidationPluginReport,
} from 'aws-cdk-lib';
import { HEALTH_PATH, LIFECYCLE_METADATA_KEY, READY_PATH, StackLifecycle } from '../contracts';

type Resource = {
  Type: string;
  Properties?: Record<string, unknown>;
  DeletionPolicy?: string;
  Metadata?: Record<string, unknown>;
};
interface Template {
  Metadata?: Record<string, unknown>;
  Resources?: Record<string, Resource>;
}
interface Violation {
  ruleName: string;
  description: string;
  fix: string;
  violatingResources: { resourceLogicalId: string; templatePath: string; locations: string[] }[];
}

export const LIFECYCLE_RULES = [
  'image-platform',
  'protection-on-delete',
  'kept-fixed-name',
  'readiness',
] as const;

/** Physical-name properties by resource type, for resources that may be kept. */
const NAME_PROPERTIES: Record<string, string> = {
  'AWS::Logs::LogGroup': 'LogGroupName',
  'AWS::Backup::BackupVault': 'BackupVaultName',
  'AWS::S3::Bucket': 'BucketName',
  'AWS::DynamoDB::Table': 'TableName',
  'AWS::KMS::Alias': 'AliasName',
  'AWS::SecretsManager::Secret': 'Name',
  'AWS::Cognito::UserPool': 'UserPoolName',
  'AWS::RDS::DBInstance': 'DBInstanceIdentifier',
  'AWS::RDS::DBCluster': 'DBClusterIdentifier',
  'AWS::RDS::DBSnapshot': 'DBSnapshotIdentifier',
};

const KEPT = new Set(['Retain', 'RetainExceptOnCreate']);

function isProtected(r: Resource): boolean {
  const p = r.Properties ?? {};
  switch (r.Type) {
    case 'AWS::RDS::DBInstance':
    case 'AWS::RDS::DBCluster':
      return p.DeletionProtection === true;
    case 'AWS::ElasticLoadBalancingV2::LoadBalancer':
      return ((p.LoadBalancerAttributes as { Key: string; Value: string }[]) ?? []).some(
        (a) => a.Key === 'deletion_protection.enabled' && a.Value === 'true',
      );
    case 'AWS::DynamoDB::Table':
      return p.DeletionProtectionEnabled === true;
    case 'AWS::Cognito::UserPool':
      return p.DeletionProtection === 'ACTIVE';
    default:
      return false;
  }
}

/**
 * Whether a name is fixed: a plain string, or a join with nothing unique to an incarnation in it: the stack's id,
 * or the id of a KMS key the same template creates (a new one each time it is created: a cell a move adds to a
 * stack that lives on names what it keeps by it).
 */
function fixedName(value: unknown, resources: Record<string, { Type: string }>): boolean {
  if (value === undefined) return false;
  const json = JSON.stringify(value);
  if (json.includes('AWS::StackId')) return false;
  const keys = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::KMS::Key');
  return !keys.some(([id]) => json.includes(JSON.stringify({ Ref: id })));
}

/** The tag of an ECR image reference as CloudFormation renders it (`...:<64 hex digits>`). */
function imageTag(image: unknown): string | undefined {
  return /:([0-9a-f]{64})/.exec(typeof image === 'string' ? image : JSON.stringify(image))?.[1];
}

export class LifecycleChecks implements IPolicyValidationPlugin {
  readonly name = 'tenantforge-lifecycle';
  readonly version = '1.0.0';
  readonly ruleIds = [...LIFECYCLE_RULES];

  validate(context: IPolicyValidationContext): PolicyValidationPluginReport {
    const templates = context.templatePaths.map((p) => ({
      path: p,
      t: JSON.parse(fs.readFileSync(p, 'utf8')) as Template,
    }));
    const violations: Violation[] = [];
    const add = (
      ruleName: string,
      description: string,
      fix: string,
      templatePath: string,
      id: string,
      location: string,
    ) => {
      let v = violations.find((x) => x.ruleName === ruleName && x.description === description);
      if (!v) violations.push((v = { ruleName, description, fix, violatingResources: [] }));
      v.violatingResources.push({ resourceLogicalId: id, templatePath, locations: [location] });
    };

    // The platforms images were built for, from the assembly's asset manifests.
    const platforms = new Map<string, string>();
    for (const dir of new Set(context.templatePaths.map((p) => path.dirname(p)))) {
      for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.assets.json'))) {
        const manifest = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as {
          dockerImages?: Record<
            string,
            { source: { platform?: string }; destinations: Record<string, { imageTag: string }> }
          >;
        };
        for (const image of Object.values(manifest.dockerImages ?? {})) {
          for (const d of Object.values(image.destinations))
            platforms.set(d.imageTag, image.source.platform ?? 'linux/amd64');
        }
      }
    }

    let readinessHost: string | undefined;
    const hostRecords: string[] = [];
    for (const { path: templatePath, t } of templates) {
      const lifecycle = t.Metadata?.[LIFECYCLE_METADATA_KEY] as StackLifecycle | undefined;
      const goes = lifecycle && (lifecycle.deletionPolicy === 'destroy' || lifecycle.phase === 'retire');
      const resources = Object.entries(t.Resources ?? {});
      const emptied = new Set(
        resources
          .filter(([, r]) => r.Type === 'Custom::S3AutoDeleteObjects')
          .map(([, r]) => JSON.stringify((r.Properties ?? {}).BucketName)),
      );
      for (const [id, r] of resources) {
        const p = r.Properties ?? {};
        if (r.Type === 'AWS::ECS::TaskDefinition') {
          const arch =
            ((p.RuntimePlatform as { CpuArchitecture?: string }) ?? {}).CpuArchitecture ?? 'X86_64';
          for (const c of (p.ContainerDefinitions as { Image: unknown; Name?: string }[]) ?? []) {
            const tag = imageTag(c.Image);
            if (!tag) continue;
            const platform = platforms.get(tag);
            const wanted = arch === 'ARM64' ? 'linux/arm64' : 'linux/amd64';
            if (!platform) {
              add(
                'image-platform',
                'A task runs an image this app does not build',
                'Refer to the release image (ApiImage) or build the image in this app',
                templatePath,
                id,
                `ContainerDefinitions/${c.Name ?? 0}/Image`,
              );
            } else if (platform !== wanted) {
              add(
                'image-platform',
                `A task runs on ${arch} an image built for ${platform}: every start fails with "exec format error"`,
                "Build the image for the tasks' platform, or run the tasks on the image's (one architecture setting drives both: apiArchitecture)",
                templatePath,
                id,
                'RuntimePlatform/CpuArchitecture',
              );
            }
          }
        }
        if (
          goes &&
          (r.DeletionPolicy ?? 'Delete') !== 'Retain' &&
          r.DeletionPolicy !== 'RetainExceptOnCreate' &&
          isProtected(r)
        ) {
          add(
            'protection-on-delete',
            `A stack meant to be deleted (${lifecycle!.deletionPolicy === 'destroy' ? 'a disposable tenant' : "the 'retire' phase"}) holds a deletion-protected resource: the stack's delete fails`,
            'Turn deletion protection off for disposable tenants and in the retire phase',
            templatePath,
            id,
            'Properties',
          );
        }
        if (
          goes &&
          r.Type === 'AWS::S3::Bucket' &&
          (r.DeletionPolicy ?? 'Delete') === 'Delete' &&
          !emptied.has(JSON.stringify({ Ref: id }))
        ) {
          add(
            'protection-on-delete',
            'A bucket deleted with its stack has nothing to empty it first: the delete fails with BucketNotEmpty',
            'Set autoDeleteObjects on the bucket, and make writers into it (load balancers) depend on its auto-delete resource',
            templatePath,
            id,
            'DeletionPolicy',
          );
        }
        const nameProp = NAME_PROPERTIES[r.Type];
        if (nameProp && KEPT.has(r.DeletionPolicy ?? '') && fixedName(p[nameProp], t.Resources ?? {})) {
          add(
            'kept-fixed-name',
            'A resource kept when its stack goes has a fixed physical name: creating the stack again fails with AlreadyExists',
            'Leave the name to CloudFormation, or put the stack incarnation in it (incarnationSuffix)',
            templatePath,
            id,
            `Properties/${nameProp}`,
          );
        }
        if (
          r.Type === 'AWS::ElasticLoadBalancingV2::TargetGroup' &&
          p.HealthCheckPath !== undefined &&
          ![HEALTH_PATH, READY_PATH].includes(p.HealthCheckPath as string)
        ) {
          add(
            'readiness',
            `A load balancer health check calls ${String(p.HealthCheckPath)}, which the API serves only with a token: targets never become healthy`,
            `Check ${HEALTH_PATH}`,
            templatePath,
            id,
            'Properties/HealthCheckPath',
          );
        }
        if (r.Type === 'AWS::StepFunctions::StateMachine') {
          const m = /"host\.\$":"States\.Format\('\{\}\.([^']+)'/.exec(
            JSON.stringify(p.DefinitionString).replace(/\\"/g, '"'),
          );
          if (m) readinessHost = m[1];
        }
        if (r.Type === 'AWS::Route53::RecordSet') hostRecords.push(templatePath);
      }
    }
    if (readinessHost) {
      const tenantTemplates = templates.filter(
        ({ t }) =>
          (t.Metadata?.[LIFECYCLE_METADATA_KEY] as StackLifecycle | undefined) &&
          Object.values(t.Resources ?? {}).some(
            (r) => r.Type.startsWith('Custom::') && r.Type.endsWith('Tenant'),
          ),
      );
      for (const { path: templatePath } of tenantTemplates) {
        if (!hostRecords.includes(templatePath)) {
          add(
            'readiness',
            `The onboarding workflow waits for https://<tenant>.${readinessHost}/ready but this tenant stack creates no DNS record: readiness never passes`,
            "Give every tenant stack the fleet's domain (TenantProvisioning domain)",
            templatePath,
            'Stack',
            'Resources',
          );
        }
      }
    }
    return { success: violations.length === 0, violations };
  }
}
