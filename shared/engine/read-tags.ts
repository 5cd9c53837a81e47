/** Reading one repository's (tag -> digest) on a registry: GitLab's tag API where offered, else a listing and a HEAD per tag. */
import { DEFAULT_CONCURRENCY, mapLimit } from './concurrency.js';
import { GeoSyncError } from './errors.js';
import { silentLogger, type EngineLogger } from './log.js';
import type { Repository } from './oci.js';
import type { ManifestHead, RegistryClient } from './registry/client.js';

export interface ReadOptions {
  concurrency?: number;
  logger?: EngineLogger;
  /** Use GitLab's tag list with digests when the registry offers it (default true). */
  gitlabApi?: boolean;
  /** Told each HEAD made (digest, type, size): which manifests are indexes, for the referrers of their children. */
  onHead?: (head: ManifestHead) => void;
  /** The tags a scope keeps: the others are dropped as listed, before any HEAD (default: every tag). */
  keep?: (tag: string) => boolean;
}

/**
 * (tag -> digest) of one repository: from GitLab's tag API where offered, else one listing plus
 * one HEAD per tag. Null when the repository does not exist.
 */
export async function readTagMap(client: RegistryClient, repository: Repository, options: ReadOptions = {}): Promise<Map<string, string> | null> {
  const tags = await listTagNames(client, repository, options);
  if (tags === null) return null;
  await readDigests(client, repository, tags, () => true, options);
  return tags as Map<string, string>;
}

/** Tag names, with digests already filled in where GitLab's tag API gave them. Null when the repository does not exist. */
async function listTagNames(client: RegistryClient, repository: Repository, options: ReadOptions): Promise<Map<string, string | undefined> | null> {
  const listed = await listAllTagNames(client, repository, options);
  const keep = options.keep;
  return listed && keep ? new Map([...listed].filter(([tag]) => keep(tag))) : listed;
}

async function listAllTagNames(client: RegistryClient, repository: Repository, options: ReadOptions): Promise<Map<string, string | undefined> | null> {
  const known = options.gitlabApi === false ? false : client.gitlabTagApiKnown;
  // While the probe is out, the plain listing's first page goes out beside it: far away, waiting
  // for the probe first costs a round trip on every run. On GitLab that page is spent unread
  // (one request per side and run); where GitLab's API does not know the repository, it is the
  // page the fallback needs.
  const plain = known === true ? undefined : client.beginListTags(repository);
  const gitlab = known ?? (await client.hasGitlabTagApi());
  const withDigests = gitlab ? await client.listTagDigestsGitlab(repository) : null;
  if (withDigests !== null) return withDigests;
  // GitLab's API answering 404 is no proof of absence (it knows only the repositories in its
  // metadata database): the plain API decides.
  const tags = await (plain ?? client.beginListTags(repository)).read();
  if (tags === null) return null;
  if (gitlab) {
    (options.logger ?? silentLogger).warn('GitLab tag API does not know a repository the plain API lists; using the plain list', {
      registry: client.host,
      repository,
      tags: tags.length,
    });
  }
  return new Map(tags.map((tag) => [tag, undefined]));
}

/** HEADs the selected tags whose digest is not known yet; a tag deleted since listing is dropped. */
async function readDigests(
  client: RegistryClient,
  repository: Repository,
  tags: Map<string, string | undefined>,
  selected: (tag: string) => boolean,
  options: ReadOptions,
): Promise<void> {
  const unread = [...tags].filter(([tag, digest]) => digest === undefined && selected(tag)).map(([tag]) => tag);
  await mapLimit(unread, options.concurrency ?? DEFAULT_CONCURRENCY, async (tag) => {
    const head = await client.headManifest(repository, tag);
    if (head) {
      tags.set(tag, head.digest);
      options.onHead?.(head);
    } else tags.delete(tag);
  });
}

function primaryNotFound(primary: RegistryClient, repository: Repository): GeoSyncError {
  return new GeoSyncError('REPOSITORY_NOT_FOUND', `repository ${repository} does not exist on the primary ${primary.host}; nothing was changed`);
}

/** The primary's (tag -> digest); a primary without the repository is an error, never an empty side. */
export async function readPrimary(primary: RegistryClient, repository: Repository, options: ReadOptions): Promise<Map<string, string>> {
  const tags = await readTagMap(primary, repository, options);
  if (tags === null) throw primaryNotFound(primary, repository);
  return tags;
}

/** Both sides as a sync reads them. */
export interface SyncSides {
  /** The primary's tags; a digest is left unread (undefined) for a tag the secondary lacks. */
  primaryTags: Map<string, string | undefined>;
  secondaryTags: Map<string, string>;
  /** The secondary did not have the repository at all. */
  secondaryIsNew: boolean;
  /** What the secondary's HEADs told of each manifest (type, size): tag removal uses it. */
  secondaryHeads: ManifestHead[];
}

/**
 * Both sides for a sync. The secondary's digests are all read; the primary's only where the
 * secondary has the tag too: a tag to copy is fetched whole, which gives its digest, so a HEAD
 * first would be a request spent for nothing. A dry run reads every digest, to show them.
 */
export async function readForSync(
  primary: RegistryClient,
  secondary: RegistryClient,
  repository: Repository,
  options: ReadOptions & { dryRun?: boolean },
): Promise<SyncSides> {
  // The secondary is read whole, its out-of-scope tags too: what they point at is never removed with an in-scope one.
  const [primaryTags, listed] = await Promise.all([
    listTagNames(primary, repository, options),
    listTagNames(secondary, repository, { ...options, keep: undefined }),
  ]);
  if (primaryTags === null) throw primaryNotFound(primary, repository);
  const secondaryTags = listed ?? new Map<string, string | undefined>();
  const secondaryHeads: ManifestHead[] = [];
  const onHead = (head: ManifestHead) => void secondaryHeads.push(head);
  await Promise.all([
    readDigests(primary, repository, primaryTags, (tag) => options.dryRun === true || secondaryTags.has(tag), options),
    readDigests(secondary, repository, secondaryTags, () => true, { ...options, onHead }),
  ]);
  // A tag the secondary lost during its HEADs is planned as a copy; its digest comes with the copy.
  return { primaryTags, secondaryTags: secondaryTags as Map<string, string>, secondaryIsNew: listed === null, secondaryHeads };
}
