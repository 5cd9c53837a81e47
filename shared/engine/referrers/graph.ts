/**
 * Referrers (OCI 1.1): the signatures, SBOMs and attestations that refer to a manifest by its
 * `subject`. Exact includes them: each side's graph is read from the manifests its tags reach,
 * planned (pure), then applied: a missing referrer copied after its subject, an extra one removed,
 * and on a secondary without the API the tag-schema index kept as the spec asks a client to keep it.
 */
import { mapLimit } from '../base/concurrency.js';
import { isIndexMediaType, manifestReferences, type Repository } from '../base/oci.js';
import { byteOrder } from '../sync/planner.js';
import type { ManifestHead, Referrer, Registry } from '../registry/registry.js';
import { isReferrersTag, referrersIn, referrersTag } from '../registry/referrers.js';

/** How far referrers of referrers are followed (a signature of an SBOM of an image is depth 2). */
export const MAX_REFERRER_DEPTH = 4;

/** Where a side's referrers are read and written: its referrers API, or the tag schema (`sha256-<hex>` index tags). */
export type ReferrerStore = 'api' | 'tag-schema';

/** One edge of the graph: `digest` refers to `subject`. */
export interface ReferrerEdge {
  subject: string;
  digest: string;
  artifactType: string;
}

/** Subject digest → its referrers, in the order read (a subject before its referrers' own referrers). */
export type ReferrerGraph = Map<string, Referrer[]>;

/** How referrers are handled for one pair in one run: off (no API on the primary, or `--no-referrers`), or each side's store. */
export type ReferrerMode =
  /** `turnedOff`: by the operator (`--no-referrers`), not for want of the API. */
  { on: false; turnedOff: boolean } | { on: true; primary: 'api'; secondary: ReferrerStore };

/**
 * Whether this pair's referrers are synced, and how: only a primary that serves the API has
 * referrers apart from its tags (without it they live in tag-schema tags, copied as tags). One
 * probe per registry per run; a secondary is asked only when the primary serves the API.
 */
export async function referrerMode(primary: Registry, secondary: Registry, repository: Repository, enabled: boolean): Promise<ReferrerMode> {
  if (!enabled) return { on: false, turnedOff: true };
  if ((await primary.servesReferrers(repository)) !== true) return { on: false, turnedOff: false };
  // A repository the secondary does not have yet decides nothing: read as the API, nothing is there.
  const served = await secondary.servesReferrers(repository);
  return { on: true, primary: 'api', secondary: served === false ? 'tag-schema' : 'api' };
}

/**
 * Tag-schema tags on the secondary that are not the primary's tags: those a sync keeps on a
 * tag-schema secondary for the API primary's referrers (neither copied nor extra), and, with
 * referrers turned off, any such tag the primary lacks: referrers are then out of the run's scope,
 * and an earlier run's index tags must not read as extra. Those the primary has itself are its tags.
 */
export function isDerivedTag(mode: ReferrerMode, tag: string, primaryHas: (tag: string) => boolean): boolean {
  const kept = mode.on ? mode.secondary === 'tag-schema' : mode.turnedOff;
  return kept && isReferrersTag(tag) && !primaryHas(tag);
}

/**
 * The manifests a set of tags reaches: each tagged manifest and, for an index, its children (the
 * indexes, whose type a HEAD or the registry's own listing told, read together: a registry with a
 * batch read asks once for many). A digest whose type is unknown is taken alone.
 */
export async function reachedManifests(
  client: Registry,
  repository: Repository,
  digests: Iterable<string>,
  mediaTypes: ReadonlyMap<string, string>,
  concurrency: number,
): Promise<string[]> {
  const roots = [...new Set(digests)];
  // A side whose listing gives digests (ECR's) was not HEADed: its registry may still tell the types.
  const unknown = roots.filter((digest) => !mediaTypes.has(digest));
  const told = unknown.length === 0 ? new Map<string, string>() : await client.knownMediaTypes(repository, unknown);
  const indexes = roots.filter((digest) => isIndexMediaType(mediaTypes.get(digest) ?? told.get(digest) ?? ''));
  const read = indexes.length === 0 ? new Map<string, never>() : await client.getManifests(repository, indexes, concurrency);
  const children = indexes.flatMap((digest) => {
    const index = read.get(digest);
    return index ? manifestReferences(index).children.map((child) => child.digest) : [];
  });
  return [...new Set([...roots, ...children])];
}

/** Digest → media type from the HEADs a read made. */
export function mediaTypesOf(heads: Iterable<ManifestHead>): Map<string, string> {
  return new Map([...heads].map((head) => [head.digest, head.mediaType]));
}

/**
 * One side's graph: the referrers of each root, then of each referrer, MAX_REFERRER_DEPTH deep,
 * one request per manifest (the API's listing, or the tag-schema index's GET).
 */
export async function readReferrerGraph(
  client: Registry,
  repository: Repository,
  roots: readonly string[],
  store: ReferrerStore,
  concurrency: number,
  /** On a tag-schema side whose tags were listed: those tags, so an index tag the listing lacks is not asked for. */
  listedTags?: ReadonlySet<string>,
): Promise<ReferrerGraph> {
  const graph: ReferrerGraph = new Map();
  let level = [...new Set(roots)];
  for (let depth = 0; depth < MAX_REFERRER_DEPTH && level.length > 0; depth++) {
    const read = new Map<string, Referrer[]>();
    await mapLimit(level, concurrency, async (subject) => {
      const unlisted = store === 'tag-schema' && listedTags !== undefined && !listedTags.has(referrersTag(subject));
      read.set(subject, unlisted ? [] : await referrersOf(client, repository, subject, store));
    });
    const next: string[] = [];
    for (const subject of level) {
      const referrers = read.get(subject)!;
      graph.set(subject, referrers);
      for (const referrer of referrers) if (!graph.has(referrer.digest) && !next.includes(referrer.digest)) next.push(referrer.digest);
    }
    level = next;
  }
  return graph;
}

async function referrersOf(client: Registry, repository: Repository, subject: string, store: ReferrerStore): Promise<Referrer[]> {
  if (store === 'api') {
    const listed = await client.listReferrers(repository, subject);
    return Array.isArray(listed) ? listed : [];
  }
  const index = await client.getManifest(repository, referrersTag(subject));
  return index ? referrersIn(index.bytes, `the referrers tag ${referrersTag(subject)} of ${repository} on ${client.host}`) : [];
}

/** Every edge of a graph, in byte order of subject then digest. */
export function edgesOf(graph: ReferrerGraph): ReferrerEdge[] {
  const edges: ReferrerEdge[] = [];
  for (const [subject, referrers] of graph) for (const r of referrers) edges.push({ subject, digest: r.digest, artifactType: r.artifactType });
  return edges.sort((a, b) => byteOrder(a.subject, b.subject) || byteOrder(a.digest, b.digest));
}
