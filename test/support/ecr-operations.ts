// The ECR API operations the stand-in answers, written from AWS's ECR API reference: inputs and
// outputs as the reference names them, timestamps as epoch seconds (the JSON 1.1 protocol's
// default), the documented page sizes (100 without maxResults, at most 1000) and opaque nextTokens.
import { randomBytes } from 'node:crypto';
import { deleteImage, deleteTag, manifestFacts, manifestText, readImages, type EcrImage } from './ecr-images.js';
import { DIGEST_PATTERN, EcrError, repositoryNotFound, requireRepository, type EcrState, type RepositoryRecord } from './ecr-state.js';

export type Input = Record<string, unknown>;
export type Operation = (state: EcrState, input: Input) => Promise<Record<string, unknown>> | Record<string, unknown>;

interface ImageIdentifier {
  imageDigest?: string;
  imageTag?: string;
}

const MAX_RESULTS = 1000;
/** BatchGetImage's acceptedMediaTypes as the reference lists its valid values. */
const REFERENCE_MEDIA_TYPES = new Set([
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
]);
/** The multi-arch index types (OCI image index, Docker manifest list), which that list leaves out. */
const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);
const REPOSITORY_NAME = /^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*\/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$/;

export const operations: Record<string, Operation> = {
  GetAuthorizationToken(state) {
    const password = randomBytes(48).toString('base64');
    const expiresAt = Date.now() + state.tokenTtlMs;
    state.tokens.set(password, expiresAt);
    const authorizationToken = Buffer.from(`AWS:${password}`).toString('base64');
    return { authorizationData: [{ authorizationToken, expiresAt: expiresAt / 1000, proxyEndpoint: state.registryUrl }] };
  },

  CreateRepository(state, input) {
    const name = input.repositoryName;
    if (typeof name !== 'string' || name.length < 2 || name.length > 256 || !REPOSITORY_NAME.test(name)) {
      throw new EcrError(
        'InvalidParameterException',
        `Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '${REPOSITORY_NAME.source}''`,
      );
    }
    if (state.repositories.has(name)) {
      throw new EcrError('RepositoryAlreadyExistsException', `The repository with name '${name}' already exists in the registry with id '${state.registryId}'`);
    }
    const mutability = (input.imageTagMutability as string | undefined) ?? 'MUTABLE';
    if (input.imageTagMutabilityExclusionFilters !== undefined && !mutability.endsWith('_WITH_EXCLUSION')) {
      throw new EcrError(
        'InvalidParameterException',
        'imageTagMutabilityExclusionFilters can be set only with MUTABLE_WITH_EXCLUSION or IMMUTABLE_WITH_EXCLUSION',
      );
    }
    const { registryId: _registryId, ...settings } = input;
    state.repositories.set(name, { settings, createdAt: new Date() });
    return { repository: repositoryView(state, name) };
  },

  DescribeRepositories(state, input) {
    const names = input.repositoryNames as string[] | undefined;
    if (names !== undefined) {
      if (input.maxResults !== undefined || input.nextToken !== undefined) {
        throw new EcrError('InvalidParameterException', 'maxResults and nextToken cannot be used with repositoryNames');
      }
      for (const name of names) if (!state.repositories.has(name)) throw repositoryNotFound(state, name);
      return { repositories: names.map((name) => repositoryView(state, name)) };
    }
    const { items, nextToken } = page([...state.repositories.keys()], state, input);
    return { repositories: items.map((name) => repositoryView(state, name)), ...(nextToken && { nextToken }) };
  },

  async ListImages(state, input) {
    requireRepository(state, input.repositoryName);
    const images = withTagStatus(await readImages(state, input.repositoryName as string), input);
    const ids = images.flatMap((image) =>
      image.tags.length === 0 ? [{ imageDigest: image.digest }] : image.tags.map((imageTag) => ({ imageDigest: image.digest, imageTag })),
    );
    const { items, nextToken } = page(ids, state, input);
    return { imageIds: items, ...(nextToken && { nextToken }) };
  },

  async DescribeImages(state, input) {
    requireRepository(state, input.repositoryName);
    const repo = input.repositoryName as string;
    const images = await readImages(state, repo);
    const wanted = input.imageIds as ImageIdentifier[] | undefined;
    if (wanted !== undefined && (input.maxResults !== undefined || input.nextToken !== undefined)) {
      throw new EcrError('InvalidParameterException', 'maxResults and nextToken cannot be used with imageIds');
    }
    const chosen = wanted ? wanted.map((id) => findImage(state, repo, images, id)) : page(withTagStatus(images, input), state, input);
    const items = Array.isArray(chosen) ? chosen : chosen.items;
    const imageDetails = await Promise.all(items.map((image) => imageDetail(state, repo, image)));
    const nextToken = Array.isArray(chosen) ? undefined : chosen.nextToken;
    return { imageDetails, ...(nextToken && { nextToken }) };
  },

  async BatchGetImage(state, input) {
    requireRepository(state, input.repositoryName);
    const repo = input.repositoryName as string;
    const ids = (input.imageIds as ImageIdentifier[] | undefined) ?? [];
    if (ids.length < 1 || ids.length > 100) throw new EcrError('InvalidParameterException', 'imageIds must hold 1 to 100 items');
    const accepted = acceptedMediaTypes(state, input);
    const images = await readImages(state, repo);
    const found: Record<string, unknown>[] = [];
    const failures: { imageId: ImageIdentifier; failureCode: string; failureReason: string }[] = [];
    for (const id of ids) {
      const refused = deletionRefusal(id, images);
      const image = imageFor(images, id);
      const text = refused || !image ? undefined : await manifestText(state, repo, image.digest);
      const isIndex = image !== undefined && INDEX_TYPES.has(image.mediaType);
      if (refused || !image || text === undefined) {
        failures.push({ imageId: id, ...(refused ?? { failureCode: 'ImageNotFound', failureReason: 'Requested image not found' }) });
      } else if ((accepted !== undefined && !accepted.includes(image.mediaType)) || (isIndex && state.indexTypes === 'failure')) {
        // The reference names no failureCode for a type not accepted: this one is the stand-in's.
        failures.push({ imageId: id, failureCode: 'UnsupportedImageType', failureReason: `Image type ${image.mediaType} is not accepted` });
      } else {
        const imageId = { imageDigest: image.digest, ...(id.imageTag !== undefined && { imageTag: id.imageTag }) };
        // 'other-bytes': the same JSON with its trailing newline changed, so another digest, as a converting registry might answer.
        const imageManifest = isIndex && state.indexTypes === 'other-bytes' ? (text.endsWith('\n') ? text.trimEnd() : `${text}\n`) : text;
        found.push({ registryId: state.registryId, repositoryName: repo, imageId, imageManifest, imageManifestMediaType: image.mediaType });
      }
    }
    return { images: found, failures };
  },

  async BatchDeleteImage(state, input) {
    requireRepository(state, input.repositoryName);
    const repo = input.repositoryName as string;
    const ids = (input.imageIds as ImageIdentifier[] | undefined) ?? [];
    if (ids.length < 1 || ids.length > 100) throw new EcrError('InvalidParameterException', 'imageIds must hold 1 to 100 items');
    const imageIds: ImageIdentifier[] = [];
    const failures: { imageId: ImageIdentifier; failureCode: string; failureReason: string }[] = [];
    for (const id of ids) {
      // Read afresh for every id: an earlier one may have removed what this one names.
      const images = await readImages(state, repo);
      const refused = deletionRefusal(id, images);
      if (refused) {
        failures.push({ imageId: id, ...refused });
        continue;
      }
      const image = imageFor(images, id)!;
      if (id.imageTag !== undefined) {
        await deleteTag(state, repo, image, id.imageTag);
        imageIds.push({ imageDigest: image.digest, imageTag: id.imageTag });
      } else {
        await deleteImage(state, repo, image);
        imageIds.push(...(image.tags.length ? image.tags.map((imageTag) => ({ imageDigest: image.digest, imageTag })) : [{ imageDigest: image.digest }]));
      }
    }
    return { imageIds, failures };
  },
};

/**
 * BatchGetImage's acceptedMediaTypes (1 to 100 items). The reference lists three valid values,
 * the image manifest types; with `indexTypes: 'invalid-parameter'` any other is refused as an
 * invalid parameter, as a strict reading of that list would have it.
 */
function acceptedMediaTypes(state: EcrState, input: Input): string[] | undefined {
  const accepted = input.acceptedMediaTypes as string[] | undefined;
  if (accepted === undefined) return undefined;
  if (accepted.length < 1 || accepted.length > 100) throw new EcrError('InvalidParameterException', 'acceptedMediaTypes must hold 1 to 100 items');
  const unlisted = accepted.filter((type) => !REFERENCE_MEDIA_TYPES.has(type));
  if (state.indexTypes === 'invalid-parameter' && unlisted.length > 0) {
    throw new EcrError(
      'InvalidParameterException',
      `Invalid parameter at 'acceptedMediaTypes' failed to satisfy constraint: '${unlisted[0]}' is not one of [${[...REFERENCE_MEDIA_TYPES].join(', ')}]`,
    );
  }
  return accepted;
}

function repositoryView(state: EcrState, name: string): Record<string, unknown> {
  const record = state.repositories.get(name) as RepositoryRecord;
  const settings = record.settings;
  return {
    repositoryArn: `arn:aws:ecr:${state.region}:${state.registryId}:repository/${name}`,
    registryId: state.registryId,
    repositoryName: name,
    repositoryUri: `${state.registryHost}/${name}`,
    createdAt: record.createdAt.getTime() / 1000,
    imageTagMutability: settings.imageTagMutability ?? 'MUTABLE',
    ...(settings.imageTagMutabilityExclusionFilters !== undefined && { imageTagMutabilityExclusionFilters: settings.imageTagMutabilityExclusionFilters }),
    imageScanningConfiguration: { scanOnPush: false, ...(settings.imageScanningConfiguration as object | undefined) },
    encryptionConfiguration: { encryptionType: 'AES256', ...(settings.encryptionConfiguration as object | undefined) },
  };
}

function withTagStatus(images: EcrImage[], input: Input): EcrImage[] {
  const status = (input.filter as { tagStatus?: string } | undefined)?.tagStatus ?? 'ANY';
  if (status === 'TAGGED') return images.filter((image) => image.tags.length > 0);
  if (status === 'UNTAGGED') return images.filter((image) => image.tags.length === 0);
  return images;
}

function imageFor(images: EcrImage[], id: ImageIdentifier): EcrImage | undefined {
  if (id.imageTag !== undefined) return images.find((image) => image.tags.includes(id.imageTag!));
  return images.find((image) => image.digest === id.imageDigest);
}

function findImage(state: EcrState, repo: string, images: EcrImage[], id: ImageIdentifier): EcrImage {
  const image = imageFor(images, id);
  if (image && (id.imageDigest === undefined || image.digest === id.imageDigest)) return image;
  const shown = `{imageDigest:'${id.imageDigest ?? 'null'}', imageTag:'${id.imageTag ?? 'null'}'}`;
  throw new EcrError(
    'ImageNotFoundException',
    `The image with imageId ${shown} does not exist within the repository with name '${repo}' in the registry with id '${state.registryId}'`,
  );
}

/** BatchDeleteImage's and BatchGetImage's per-id failure, or undefined where the id can go. */
function deletionRefusal(id: ImageIdentifier, images: EcrImage[]): { failureCode: string; failureReason: string } | undefined {
  if (id.imageTag === undefined && id.imageDigest === undefined) return { failureCode: 'MissingDigestAndTag', failureReason: 'Missing image digest and tag' };
  if (id.imageDigest !== undefined && !DIGEST_PATTERN.test(id.imageDigest)) return { failureCode: 'InvalidImageDigest', failureReason: 'Invalid image digest' };
  const image = imageFor(images, id);
  if (!image) return { failureCode: 'ImageNotFound', failureReason: 'Requested image not found' };
  if (id.imageDigest !== undefined && image.digest !== id.imageDigest) {
    return { failureCode: 'ImageTagDoesNotMatchDigest', failureReason: 'Invalid image tag and digest combination' };
  }
  return undefined;
}

async function imageDetail(state: EcrState, repo: string, image: EcrImage): Promise<Record<string, unknown>> {
  const facts = await manifestFacts(state, repo, image.digest);
  return {
    registryId: state.registryId,
    repositoryName: repo,
    imageDigest: image.digest,
    ...(image.tags.length > 0 && { imageTags: image.tags }),
    imageManifestMediaType: image.mediaType,
    ...(facts.artifactMediaType !== undefined && { artifactMediaType: facts.artifactMediaType }),
    ...(facts.sizeInBytes !== undefined && { imageSizeInBytes: facts.sizeInBytes }),
    ...(facts.subjectManifestDigest !== undefined && { subjectManifestDigest: facts.subjectManifestDigest }),
    imagePushedAt: image.pushedAt.getTime() / 1000,
  };
}

/** One page of `all`: maxResults (1..1000) or the default page size, from an opaque nextToken. */
function page<T>(all: T[], state: EcrState, input: Input): { items: T[]; nextToken?: string } {
  const maxResults = input.maxResults;
  if (maxResults !== undefined && (typeof maxResults !== 'number' || !Number.isInteger(maxResults) || maxResults < 1 || maxResults > MAX_RESULTS)) {
    throw new EcrError(
      'ValidationException',
      `1 validation error detected: Value '${String(maxResults)}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to ${MAX_RESULTS}`,
    );
  }
  const start = input.nextToken === undefined ? 0 : offsetOf(input.nextToken);
  const end = start + (maxResults ?? state.pageSize);
  const items = all.slice(start, end);
  return end < all.length ? { items, nextToken: Buffer.from(JSON.stringify({ offset: end })).toString('base64') } : { items };
}

function offsetOf(token: unknown): number {
  try {
    const offset = (JSON.parse(Buffer.from(String(token), 'base64').toString('utf8')) as { offset?: unknown }).offset;
    if (typeof offset === 'number' && Number.isInteger(offset) && offset >= 0) return offset;
  } catch {
    // Falls through to the refusal.
  }
  throw new EcrError('InvalidParameterException', "Invalid parameter at 'nextToken' failed to satisfy constraint: 'Invalid NextToken'");
}
