/**
 * ECR's own API for one registry, the operations the engine needs beside the registry API: the
 * registry token, tags with digests, the repositories, repository creation, tag removal. Reached
 * through @aws-sdk/client-ecr with the SDK's endpoint resolution (AWS_ENDPOINT_URL_ECR points it
 * elsewhere) and its default credential chain, or a role assumed for another account.
 */
import type {
  BatchDeleteImageCommandOutput,
  BatchGetImageCommandOutput,
  DescribeImagesCommandOutput,
  DescribeRepositoriesCommandOutput,
  ECRClient,
  ListImagesCommandOutput,
} from '@aws-sdk/client-ecr';
import { GeoSyncError } from '../../base/errors.js';
import type { RegistryPace } from '../pace.js';
import { isConnectionError } from '../retry.js';
import type { EcrRepositorySettings, EcrSettings } from './settings.js';
import type { AuthorizationData } from './token.js';

/** Most items ECR returns in one page of ListImages and DescribeRepositories. */
const PAGE_SIZE = 1000;

/** Most image ids ECR takes in one BatchGetImage. */
const BATCH_GET_SIZE = 100;

/** What DescribeImages tells of one image: its digest, manifest type, artifact type and, for a referrer, its subject. */
export interface ImageFacts {
  digest: string;
  mediaType: string;
  artifactMediaType?: string;
  subject?: string;
}

/** One manifest as BatchGetImage gave it: its text and, where ECR names it, its media type. */
export interface BatchedManifest {
  text: string;
  mediaType?: string;
}

/** ECR's answers that a retry may change (the SDK has retried them already). */
const TRANSIENT = new Set(['ThrottlingException', 'ServerException', 'LimitExceededException', 'TooManyRequestsException']);

export class EcrApi {
  private client: Promise<{ client: ECRClient; sdk: typeof import('@aws-sdk/client-ecr') }> | undefined;
  private readonly registryId: { registryId?: string };
  /** ECR API calls sent by this client (each page one), for the run's traffic figures. */
  calls = 0;

  constructor(
    private readonly settings: EcrSettings,
    /** The registry's host, for messages. */
    private readonly host: string,
    /** The registry's pace (pace.ts): each attempt of each call, the SDK's own retries too, takes its turn. */
    private readonly pace?: RegistryPace,
  ) {
    this.registryId = settings.registryId ? { registryId: settings.registryId } : {};
  }

  async authorizationToken(): Promise<AuthorizationData> {
    const out = await this.call(
      'GetAuthorizationToken',
      undefined,
      (sdk) => new sdk.GetAuthorizationTokenCommand(this.settings.registryId ? { registryIds: [this.settings.registryId] } : {}),
    );
    const data = out.authorizationData?.[0];
    if (!data?.authorizationToken || !data.expiresAt) throw new GeoSyncError('AUTH_TOKEN_FAILED', `ECR gave no registry token for ${this.host}`);
    return { authorizationToken: data.authorizationToken, expiresAt: data.expiresAt };
  }

  /** (tag -> digest) of every tag, 1,000 a page; null when the repository does not exist. */
  async listTaggedImages(repository: string): Promise<Map<string, string> | null> {
    const tags = new Map<string, string>();
    let nextToken: string | undefined;
    do {
      const input = { ...this.registryId, repositoryName: repository, filter: { tagStatus: 'TAGGED' as const }, maxResults: PAGE_SIZE, nextToken };
      const out = await this.callOrAbsent<ListImagesCommandOutput>('ListImages', repository, (sdk) => new sdk.ListImagesCommand(input));
      if (out === null) return null;
      for (const id of out.imageIds ?? []) if (id.imageTag && id.imageDigest) tags.set(id.imageTag, id.imageDigest);
      nextToken = out.nextToken;
    } while (nextToken);
    return tags;
  }

  /** Every image of the repository (tagged or not), 1,000 a page; null when the repository does not exist. */
  async describeImages(repository: string): Promise<ImageFacts[] | null> {
    const images: ImageFacts[] = [];
    let nextToken: string | undefined;
    do {
      const input = { ...this.registryId, repositoryName: repository, maxResults: PAGE_SIZE, nextToken };
      const out = await this.callOrAbsent<DescribeImagesCommandOutput>('DescribeImages', repository, (sdk) => new sdk.DescribeImagesCommand(input));
      if (out === null) return null;
      for (const detail of out.imageDetails ?? []) {
        if (!detail.imageDigest) continue;
        images.push({
          digest: detail.imageDigest,
          mediaType: detail.imageManifestMediaType ?? '',
          ...(detail.artifactMediaType && { artifactMediaType: detail.artifactMediaType }),
          ...(detail.subjectManifestDigest && { subject: detail.subjectManifestDigest }),
        });
      }
      nextToken = out.nextToken;
    } while (nextToken);
    return images;
  }

  /**
   * The manifests' text, and their type as ECR names it, by digest, 100 a call; a digest ECR did
   * not give (a failures[] entry) is left out. Unchecked: the caller hashes the text against the digest.
   */
  async manifestsByDigest(repository: string, digests: readonly string[], mediaTypes: readonly string[]): Promise<Map<string, BatchedManifest>> {
    const manifests = new Map<string, BatchedManifest>();
    for (let i = 0; i < digests.length; i += BATCH_GET_SIZE) {
      const imageIds = digests.slice(i, i + BATCH_GET_SIZE).map((imageDigest) => ({ imageDigest }));
      const input = { ...this.registryId, repositoryName: repository, imageIds, acceptedMediaTypes: [...mediaTypes] };
      const out = await this.callOrAbsent<BatchGetImageCommandOutput>('BatchGetImage', repository, (sdk) => new sdk.BatchGetImageCommand(input));
      for (const image of out?.images ?? []) {
        const digest = image.imageId?.imageDigest;
        if (digest && image.imageManifest !== undefined) {
          manifests.set(digest, { text: image.imageManifest, ...(image.imageManifestMediaType && { mediaType: image.imageManifestMediaType }) });
        }
      }
    }
    return manifests;
  }

  /** Whether the repository exists. */
  async repositoryExists(repository: string): Promise<boolean> {
    const input = { ...this.registryId, repositoryNames: [repository] };
    return (
      (await this.callOrAbsent<DescribeRepositoriesCommandOutput>('DescribeRepositories', repository, (sdk) => new sdk.DescribeRepositoriesCommand(input))) !==
      null
    );
  }

  /** Every repository's name, 1,000 a page. */
  async listRepositories(): Promise<string[]> {
    const names: string[] = [];
    let nextToken: string | undefined;
    do {
      const input = { ...this.registryId, maxResults: PAGE_SIZE, nextToken };
      const out = await this.call('DescribeRepositories', undefined, (sdk) => new sdk.DescribeRepositoriesCommand(input));
      for (const repository of out.repositories ?? []) if (repository.repositoryName) names.push(repository.repositoryName);
      nextToken = out.nextToken;
    } while (nextToken);
    return names;
  }

  /** Creates the repository with the entry's settings; false when it existed already. */
  async createRepository(repository: string): Promise<boolean> {
    const input = { ...this.registryId, repositoryName: repository, ...creationSettings(this.settings.repositorySettings ?? {}) };
    try {
      await this.call('CreateRepository', repository, (sdk) => new sdk.CreateRepositoryCommand(input));
      return true;
    } catch (error) {
      if (error instanceof GeoSyncError && (error.cause as Error | undefined)?.name === 'RepositoryAlreadyExistsException') return false;
      throw error;
    }
  }

  /** Removes images by tag (that tag alone) or by digest (the image and its tags); the ids ECR did not find. */
  async batchDeleteImage(repository: string, imageIds: ({ imageTag: string } | { imageDigest: string })[]): Promise<{ notFound: number; failures: string[] }> {
    const input = { ...this.registryId, repositoryName: repository, imageIds };
    const out = await this.callOrAbsent<BatchDeleteImageCommandOutput>('BatchDeleteImage', repository, (sdk) => new sdk.BatchDeleteImageCommand(input));
    const failures = out?.failures ?? [];
    const notFound = out === null ? imageIds.length : failures.filter((f) => f.failureCode === 'ImageNotFound').length;
    return {
      notFound,
      failures: failures
        .filter((f) => f.failureCode !== 'ImageNotFound')
        .map((f) => `${f.imageId?.imageTag ?? f.imageId?.imageDigest}: ${f.failureCode} ${f.failureReason ?? ''}`.trim()),
    };
  }

  async close(): Promise<void> {
    if (this.client) (await this.client.catch(() => undefined))?.client.destroy();
  }

  /** The call's answer, or null when ECR says the repository does not exist. */
  private async callOrAbsent<T>(operation: string, repository: string, command: (sdk: typeof import('@aws-sdk/client-ecr')) => object): Promise<T | null> {
    try {
      return (await this.call(operation, repository, command)) as T;
    } catch (error) {
      if (error instanceof GeoSyncError && (error.cause as Error | undefined)?.name === 'RepositoryNotFoundException') return null;
      throw error;
    }
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each command's own output type, as the SDK's send gives it
  private async call(operation: string, repository: string | undefined, command: (sdk: typeof import('@aws-sdk/client-ecr')) => object): Promise<any> {
    const { client, sdk } = await this.open();
    this.calls++;
    try {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the command built above
      return await client.send(command(sdk) as any);
    } catch (error) {
      throw ecrFailure(error, operation, this.host, repository);
    }
  }

  private open(): Promise<{ client: ECRClient; sdk: typeof import('@aws-sdk/client-ecr') }> {
    // Loaded on first use: a run without ECR never loads the SDK.
    this.client ??= (async () => {
      const sdk = await import('@aws-sdk/client-ecr');
      const credentials = this.settings.roleArn ? await assumedRole(this.settings.roleArn, this.settings.region, this.host) : undefined;
      const client = new sdk.ECRClient({ region: this.settings.region, ...(credentials ? { credentials } : {}) });
      // In the deserialize step, inside the SDK's retries: every attempt is paced, not only the first.
      const pace = this.pace;
      if (pace) client.middlewareStack.add((next) => async (args) => (await pace.take(), next(args)), { step: 'deserialize', name: 'registryPace' });
      return { client, sdk };
    })();
    return this.client;
  }
}

/** The role's temporary credentials, renewed by the SDK before they expire. */
async function assumedRole(roleArn: string, region: string, host: string) {
  const { fromTemporaryCredentials } = await import('@aws-sdk/credential-providers');
  const provider = fromTemporaryCredentials({ params: { RoleArn: roleArn, RoleSessionName: 'geo-registry-sync' }, clientConfig: { region } });
  // STS's refusal would otherwise read as a failure of the ECR call that needed the credentials.
  return async (properties?: Parameters<typeof provider>[0]) => {
    try {
      return await provider(properties);
    } catch (error) {
      throw assumeRoleFailure(error, roleArn, host);
    }
  };
}

/** A failed AssumeRole as the engine's error: names the role and the registry it was for; carries STS's error as its cause. */
function assumeRoleFailure(error: unknown, roleArn: string, host: string): GeoSyncError {
  const name = (error as Error | undefined)?.name ?? 'Error';
  const message = ((error as Error | undefined)?.message ?? String(error)).slice(0, 300);
  // ECR_API_FAILED, never ECR_ACCESS_DENIED: that one means the role lacks an ECR action.
  const { code, retryable } = ecrFailure(error, 'AssumeRole', host, undefined);
  const what = name === 'AccessDenied' ? `STS refused to assume role ${roleArn} for ${host}` : `Assuming role ${roleArn} for ${host} failed`;
  return new GeoSyncError(code, `${what}: ${name}: ${message}`, { cause: error, retryable });
}

/** CreateRepository's settings from the entry's, with the defaults stated in settings.ts. */
function creationSettings(settings: EcrRepositorySettings) {
  const encryptionType = settings.encryptionType ?? 'AES256';
  return {
    imageTagMutability: settings.tagMutability ?? 'MUTABLE',
    ...(settings.tagMutabilityExclusions?.length
      ? { imageTagMutabilityExclusionFilters: settings.tagMutabilityExclusions.map((filter) => ({ filterType: 'WILDCARD' as const, filter })) }
      : {}),
    encryptionConfiguration: { encryptionType, ...(settings.kmsKey && encryptionType !== 'AES256' ? { kmsKey: settings.kmsKey } : {}) },
    imageScanningConfiguration: { scanOnPush: settings.scanOnPush ?? false },
    ...(settings.resourceTags ? { tags: Object.entries(settings.resourceTags).map(([Key, Value]) => ({ Key, Value })) } : {}),
  };
}

/** An ECR API failure as the engine's error: names the operation, the registry and the repository; carries ECR's error as its cause. */
export function ecrFailure(error: unknown, operation: string, host: string, repository: string | undefined): GeoSyncError {
  if (error instanceof GeoSyncError) return error;
  const name = (error as Error | undefined)?.name ?? 'Error';
  const message = ((error as Error | undefined)?.message ?? String(error)).slice(0, 300);
  const where = `${host}${repository !== undefined ? ` (repository ${repository})` : ''}`;
  if (name === 'AccessDeniedException') {
    return new GeoSyncError('ECR_ACCESS_DENIED', `ECR refused ${operation} on ${where}: the role lacks ecr:${operation} (${message})`, { cause: error });
  }
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const retryable =
    TRANSIENT.has(name) || (status !== undefined && status >= 500) || (error as { $retryable?: unknown }).$retryable !== undefined || isConnectionError(error);
  return new GeoSyncError('ECR_API_FAILED', `ECR ${operation} on ${where} failed: ${name}: ${message}`, { cause: error, retryable });
}
