// What the ECR stand-in's two faces share: the repositories created, the tokens issued, the images
// pushed through the registry front (go-containerregistry lists no untagged manifests, so the
// stand-in remembers them), and ECR's error shape. See ./ecr-stand-in.ts.

export type TagMutability = 'MUTABLE' | 'IMMUTABLE' | 'MUTABLE_WITH_EXCLUSION' | 'IMMUTABLE_WITH_EXCLUSION';

export interface ExclusionFilter {
  filterType: 'WILDCARD';
  filter: string;
}

export interface RepositoryRecord {
  /** CreateRepository's input as received (registryId left out). */
  settings: Record<string, unknown>;
  createdAt: Date;
}

/**
 * What BatchGetImage does with the multi-arch index types, which the reference's acceptedMediaTypes
 * does not list: 'served' when asked for (as AWS's containerd resolver relies on); 'invalid-parameter'
 * (a call naming them is refused whole); 'failure' (an index is a failures[] entry, whatever was
 * asked); 'other-bytes' (an index given as other bytes than pushed: the same JSON, another digest).
 */
export type IndexTypes = 'served' | 'invalid-parameter' | 'failure' | 'other-bytes';

export interface PushRecord {
  pushedAt: Date;
  mediaType: string;
}

export interface EcrState {
  registryId: string;
  region: string;
  registryUrl: string;
  registryHost: string;
  /** The real registry behind the front, reached without auth. */
  backingUrl: string;
  pageSize: number;
  tokenTtlMs: number;
  indexTypes: IndexTypes;
  repositories: Map<string, RepositoryRecord>;
  /** Registry API password -> when it stops being accepted (ms since the epoch). */
  tokens: Map<string, number>;
  /** Every token expires as the first registry request this matches arrives (expireTokensAt), before it is answered. */
  expireAt?: ((method: string, path: string) => boolean) | undefined;
  /** Repository -> manifest digest -> when and as what it was first pushed through the front. */
  pushed: Map<string, Map<string, PushRecord>>;
}

/** An ECR API error: HTTP `status` with `{"__type": type, "message": message}`. */
export class EcrError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

export function repositoryNotFound(state: EcrState, name: string): EcrError {
  return new EcrError('RepositoryNotFoundException', `The repository with name '${name}' does not exist in the registry with id '${state.registryId}'`);
}

/** The record of `repo`, or RepositoryNotFoundException. */
export function requireRepository(state: EcrState, repo: unknown): RepositoryRecord {
  if (typeof repo !== 'string' || repo === '') throw new EcrError('InvalidParameterException', 'repositoryName is required');
  const record = state.repositories.get(repo);
  if (!record) throw repositoryNotFound(state, repo);
  return record;
}

/**
 * Whether a manifest PUT may move `tag` in a repository with these settings: ECR's IMMUTABLE keeps
 * every tag, MUTABLE_WITH_EXCLUSION keeps the tags its filters match, IMMUTABLE_WITH_EXCLUSION
 * keeps all but those.
 */
export function tagIsImmutable(settings: Record<string, unknown>, tag: string): boolean {
  const mutability = (settings.imageTagMutability as TagMutability | undefined) ?? 'MUTABLE';
  const filters = (settings.imageTagMutabilityExclusionFilters as ExclusionFilter[] | undefined) ?? [];
  const excluded = filters.some((f) => wildcard(f.filter).test(tag));
  if (mutability === 'IMMUTABLE') return true;
  if (mutability === 'MUTABLE_WITH_EXCLUSION') return excluded;
  if (mutability === 'IMMUTABLE_WITH_EXCLUSION') return !excluded;
  return false;
}

/** ECR's WILDCARD filters: `*` is any run of characters, everything else is literal. */
function wildcard(filter: string): RegExp {
  const escaped = filter.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`);
}

export const DIGEST_PATTERN = /^sha256:[0-9a-f]{64}$/;
