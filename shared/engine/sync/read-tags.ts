/** Reading one repository's (tag -> digest) on a registry: its listing (with digests where the registry gives them), and a HEAD per tag it did not. */
import { DEFAULT_CONCURRENCY, mapLimit } from '../base/concurrency.js';
import { GeoSyncError } from '../base/errors.js';
import type { EngineLogger } from '../base/log.js';
import type { Repository } from '../base/oci.js';
import type { ManifestHead, Registry } from '../registry/registry.js';

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
 * (tag -> digest) of one repository: one listing (with digests where the registry gives them,
 * as GitLab's tag API does) plus one HEAD per tag without one. Null when the repository does not exist.
 */
export async function readTagMap(client: Registry, repository: Repository, options: ReadOptions = {}): Promise<Map<string, string> | null> {
  const tags = await listTagNames(client, repository, options);
  if (tags === null) return null;
  await readDigests(client, repository, tags, () => true, options);
  return tags as Map<string, string>;
}

/** Tag names, with digests already filled in where the listing gave them. Null when the repository does not exist. */
async function listTagNames(client: Registry, repository: Repository, options: ReadOptions): Promise<Map<string, string | undefined> | null> {
  const listed = await client.listTagDigests(repository, { gitlabApi: options.gitlabApi });
  const keep = options.keep;
  return listed && keep ? new Map([...listed].filter(([tag]) => keep(tag))) : listed;
}

/** HEADs the selected tags whose digest is not known yet; a tag deleted since listing is dropped. */
async function readDigests(
  client: Registry,
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

function primaryNotFound(primary: Registry, repository: Repository): GeoSyncError {
  return new GeoSyncError('REPOSITORY_NOT_FOUND', `repository ${repository} does not exist on the primary ${primary.host}; nothing was changed`);
}

/** The primary's (tag -> digest); a primary without the repository is an error, never an empty side. */
export async function readPrimary(primary: Registry, repository: Repository, options: ReadOptions): Promise<Map<string, string>> {
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
  /** What the primary's HEADs told (which manifests are indexes). */
  primaryHeads: ManifestHead[];
}

/**
 * Both sides for a sync. The secondary's digests are all read; the primary's only where the
 * secondary has the tag too: a tag to copy is fetched whole, which gives its digest, so a HEAD
 * first would be a request spent for nothing. A dry run reads every digest, to show them.
 */
export async function readForSync(
  primary: Registry,
  secondary: Registry,
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
  const primaryHeads: ManifestHead[] = [];
  const secondaryHeads: ManifestHead[] = [];
  await Promise.all([
    readDigests(primary, repository, primaryTags, (tag) => options.dryRun === true || secondaryTags.has(tag), {
      ...options,
      onHead: (head) => void primaryHeads.push(head),
    }),
    readDigests(secondary, repository, secondaryTags, () => true, { ...options, onHead: (head) => void secondaryHeads.push(head) }),
  ]);
  // A tag the secondary lost during its HEADs is planned as a copy; its digest comes with the copy.
  return { primaryTags, secondaryTags: secondaryTags as Map<string, string>, secondaryIsNew: listed === null, secondaryHeads, primaryHeads };
}
