import * as path from 'path';
import { Construct } from 'constructs';
import { Duration, IgnoreMode, Stack } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import { BOOTSTRAP_QUALIFIERS, TENANT_STACK_PREFIX } from '../../../contracts';
import { ack, AWS_SOLUTIONS, childOfType, HIPAA_AND_NIST, l1, logicalIdOf, partitionOf } from '../../nag';
import { SOURCE_EXCLUDES, sourceDigest, verifierCommand } from '../../source-digest';

const REPO_ROOT = path.join(__dirname, '..', '..', '..');

export interface DeployProjectProps {
  /** Encrypts build artifacts and logs. */
  readonly key: kms.IKey;
  /** Where the build logs go. */
  readonly logGroup: logs.ILogGroup;
  /**
   * The CDK bootstrap qualifier of the shared stacks (where this stack's own assets, the job's source, are).
   * @default BOOTSTRAP_QUALIFIERS.platform
   */
  readonly bootstrapQualifier?: string;
}

/**
 * The CodeBuild project that deploys or destroys exactly one tenant stack
 * (`cdk deploy Tenant-<id> -c tenant=<id> --exclusively`), from this app's source uploaded as a CDK asset.
 * Its role can do nothing but assume the deploy and file-publishing roles of the tenants' CDK bootstrap
 * (BOOTSTRAP_QUALIFIERS.tenants), whose execution role can create only what tenant stacks hold.
 */
export class DeployProject extends Construct {
  readonly project: codebuild.Project;
  private readonly sourceQualifier: string;

  constructor(scope: Construct, id: string, props: DeployProjectProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.sourceQualifier = props.bootstrapQualifier ?? BOOTSTRAP_QUALIFIERS.platform;
    // Tenant stacks deploy through the tenants' bootstrap: the only roles this job may assume.
    const qualifier = BOOTSTRAP_QUALIFIERS.tenants;

    // The app's source, as the deploy job runs it.
    // Excluded at the top only (git-style "/name"), exactly as the digest leaves them out.
    const source = new s3assets.Asset(this, 'AppSource', {
      path: REPO_ROOT,
      exclude: SOURCE_EXCLUDES.map((name) => `/${name}`),
      ignoreMode: IgnoreMode.GIT,
    });
    // The job checks the unpacked source against what this synth uploaded before it installs or runs anything
    // (lib/source-digest.ts): whoever can write the bootstrap bucket still cannot change what it deploys.
    const digest = sourceDigest(REPO_ROOT);

    // "Default": the project is this construct's resource, and keeps the logical id it had at the stack's root.
    this.project = new codebuild.Project(this, 'Default', {
      description: 'Deploys or destroys exactly one tenant stack with the CDK bootstrap roles',
      source: codebuild.Source.s3({ bucket: source.bucket, path: source.s3ObjectKey }),
      environment: {
        buildImage: codebuild.LinuxBuildImage.STANDARD_7_0,
        computeType: codebuild.ComputeType.MEDIUM,
        privileged: false,
      },
      encryptionKey: props.key,
      timeout: Duration.minutes(90),
      logging: { cloudWatch: { logGroup: props.logGroup } },
      buildSpec: codebuild.BuildSpec.fromObject({
        version: '0.2',
        env: { shell: 'bash' },
        phases: {
          // The source is the one the synth uploaded; then exactly what the lockfile pins, and no package's
          // install scripts run.
          install: {
            'runtime-versions': { nodejs: '22' },
            commands: [verifierCommand(digest), 'npm ci --ignore-scripts --no-audit --no-fund'],
          },
          build: {
            commands: [
              // TENANT_ID, TENANT_PHASE and TENANT_REQUEST come from the workflow, which validated them; quoted
              // here all the same. The API image is never built here: the Platform stack publishes it once per
              // release, and tenant stacks refer to it by its tag.
              `if [ "$ACTION" = deploy ]; then npx cdk deploy "${TENANT_STACK_PREFIX}$TENANT_ID" -c "tenant=$TENANT_ID" -c "tenantRequest=$TENANT_REQUEST" -c "tenantPhase=$TENANT_PHASE" --exclusively --require-approval never; ` +
                `elif [ "$ACTION" = destroy ]; then npx cdk destroy "${TENANT_STACK_PREFIX}$TENANT_ID" -c "tenant=$TENANT_ID" -c "tenantRequest=$TENANT_REQUEST" -c "tenantPhase=$TENANT_PHASE" --exclusively --force; ` +
                'else echo "unknown ACTION $ACTION"; exit 2; fi',
            ],
          },
        },
      }),
    });
    source.grantRead(this.project);
    // Least privilege: the job itself can do nothing but assume the CDK bootstrap roles of this account and
    // region, which CloudFormation uses to deploy. No "*" action on "*".
    this.project.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'AssumeTenantBootstrapRoles',
        actions: ['sts:AssumeRole', 'sts:TagSession'],
        // No image-publishing (the image is published once per release) and no lookup role (no lookups).
        resources: ['deploy', 'file-publishing'].map(
          (role) =>
            `arn:${stack.partition}:iam::${stack.account}:role/cdk-${qualifier}-${role}-role-${stack.account}-${stack.region}`,
        ),
      }),
    );
    this.acknowledge();
  }

  private acknowledge(): void {
    const stack = Stack.of(this);
    const region = stack.region;
    const partition = partitionOf(stack);
    const arn = (rest: string) => `arn:${partition}:${rest.replace('{region}', region)}`;
    const projectId = logicalIdOf(l1(this.project));
    ack(
      l1(this.project),
      HIPAA_AND_NIST('CodeBuildProjectSourceRepoUrl').slice(0, 1),
      'The source is the app bundle uploaded as a CDK asset to the bootstrap bucket: no repository URL and no credentials in the project.',
    );
    const buildPolicy = l1(childOfType(this.project.role!, iam.Policy));
    const grants: [string, string][] = [
      [
        'Action::kms:GenerateDataKey*',
        'CDK grant for the project key: encrypt build artifacts and logs with this one key.',
      ],
      [
        'Action::kms:ReEncrypt*',
        'CDK grant for the project key: encrypt build artifacts and logs with this one key.',
      ],
      [
        'Action::s3:GetBucket*',
        'CDK asset grant: read the app source bundle from the bootstrap asset bucket.',
      ],
      [
        'Action::s3:GetObject*',
        'CDK asset grant: read the app source bundle from the bootstrap asset bucket.',
      ],
      ['Action::s3:List*', 'CDK asset grant: read the app source bundle from the bootstrap asset bucket.'],
      [
        `Resource::${arn(`s3:::cdk-${this.sourceQualifier}-assets-<AWS::AccountId>-{region}/*`)}`,
        'CDK asset grant: objects of the bootstrap asset bucket, where the app source bundle is; read only.',
      ],
      [
        `Resource::${arn(`codebuild:{region}:<AWS::AccountId>:report-group/<${projectId}>-*`)}`,
        "CodeBuild's default grant: test report groups of this one project.",
      ],
      [
        `Resource::${arn(`logs:{region}:<AWS::AccountId>:log-group:/aws/codebuild/<${projectId}>:*`)}`,
        "CodeBuild's default grant: log streams of this one project's log group.",
      ],
    ];
    for (const [finding, reason] of grants) ack(buildPolicy, AWS_SOLUTIONS(`IAM5[${finding}]`), reason);
  }
}
