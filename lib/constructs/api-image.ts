import * as path from 'path';
import { Construct } from 'constructs';
import { App, Aws, IgnoreMode, Stack } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { BOOTSTRAP_QUALIFIERS, ssmNames } from '../../contracts';

const REPO_ROOT = path.join(__dirname, '..', '..');

export type ApiArchitecture = 'arm64' | 'x86_64';

/** One release's API image, as every stack that runs it refers to it. */
export interface ApiImageRef {
  /** The image tag: a hash of the image's source and build settings, known at synth. */
  readonly tag: string;
  /**
   * The runner image's tag (lambda/tenant-provisioner/Dockerfile: the cells' runner tasks, built with the API's,
   * in the same repository).
   */
  readonly runnerTag: string;
  /** The CPU architecture the image is built for; tasks must run on the same. */
  readonly architecture: ApiArchitecture;
  /** The CDK bootstrap qualifier whose container-asset repository holds the image. */
  readonly bootstrapQualifier: string;
}

export interface ApiImageProps {
  /** @default 'arm64' - Graviton */
  readonly architecture?: ApiArchitecture;
  /** @default BOOTSTRAP_QUALIFIERS.platform */
  readonly bootstrapQualifier?: string;
}

const DEFAULT_QUALIFIER = BOOTSTRAP_QUALIFIERS.platform;

/**
 * The build of the API image (service/ with the data plane and contracts) or the runner image (the provisioner's
 * code: lambda/tenant-provisioner/Dockerfile), for the target platform.
 */
function assetProps(
  architecture: ApiArchitecture,
  image: 'api' | 'runner' = 'api',
): ecrAssets.DockerImageAssetProps {
  const source = image === 'api' ? 'service' : 'lambda/tenant-provisioner';
  return {
    directory: REPO_ROOT,
    file: `${source}/Dockerfile`,
    ignoreMode: IgnoreMode.DOCKER,
    exclude: [
      '**',
      `!${source}/**`,
      '!db/**',
      '!contracts/**',
      '!package.json',
      '!package-lock.json',
      '!tsconfig.json',
    ],
    // The build stage runs on the builder's own platform; the runtime stage only copies files, so an x86 laptop
    // or CI runner builds an ARM64 image without emulation.
    platform: architecture === 'arm64' ? ecrAssets.Platform.LINUX_ARM64 : ecrAssets.Platform.LINUX_AMD64,
  };
}

/**
 * The API image, built once per release for the platform the tasks run on, by the stack that holds this
 * construct (Platform). Every cell refers to it by its tag (`ApiImage.reference`), so deploying or onboarding a
 * tenant never builds an image, and the onboarding job needs no Docker.
 */
export class ApiImage extends Construct {
  readonly asset: ecrAssets.DockerImageAsset;
  readonly runnerAsset: ecrAssets.DockerImageAsset;
  readonly ref: ApiImageRef;

  /**
   * The image of this source tree, without building it: the same tag the Platform stack's asset gets, computed
   * from the same source and settings.
   */
  static reference(props: ApiImageProps = {}): ApiImageRef {
    const architecture = props.architecture ?? 'arm64';
    const scratch = new Stack(new App(), 'ApiImageReference');
    const asset = new ecrAssets.DockerImageAsset(scratch, 'Image', assetProps(architecture));
    const runner = new ecrAssets.DockerImageAsset(scratch, 'RunnerImage', assetProps(architecture, 'runner'));
    return {
      tag: asset.imageTag,
      runnerTag: runner.imageTag,
      architecture,
      bootstrapQualifier: props.bootstrapQualifier ?? DEFAULT_QUALIFIER,
    };
  }

  constructor(scope: Construct, id: string, props: ApiImageProps = {}) {
    super(scope, id);
    const architecture = props.architecture ?? 'arm64';
    this.asset = new ecrAssets.DockerImageAsset(this, 'Image', assetProps(architecture));
    this.runnerAsset = new ecrAssets.DockerImageAsset(
      this,
      'RunnerImage',
      assetProps(architecture, 'runner'),
    );
    this.ref = {
      tag: this.asset.imageTag,
      runnerTag: this.runnerAsset.imageTag,
      architecture,
      bootstrapQualifier: props.bootstrapQualifier ?? DEFAULT_QUALIFIER,
    };
    new ssm.StringParameter(this, 'Uri', {
      parameterName: ssmNames.apiImageUri,
      stringValue: this.asset.imageUri,
    });
  }
}

/**
 * The container image of a task that runs the API image `ref` (or its runner image), pulled from the bootstrap
 * container repository.
 */
export function apiContainerImage(
  scope: Construct,
  ref: ApiImageRef,
  image: 'api' | 'runner' = 'api',
): ecs.ContainerImage {
  const repository = ecr.Repository.fromRepositoryName(
    scope,
    'ImageRepository',
    `cdk-${ref.bootstrapQualifier}-container-assets-${Aws.ACCOUNT_ID}-${Aws.REGION}`,
  );
  return ecs.ContainerImage.fromEcrRepository(repository, image === 'api' ? ref.tag : ref.runnerTag);
}

export function cpuArchitecture(ref: ApiImageRef): ecs.CpuArchitecture {
  return ref.architecture === 'arm64' ? ecs.CpuArchitecture.ARM64 : ecs.CpuArchitecture.X86_64;
}
