/**
 * Referrers (OCI 1.1): the signatures, SBOMs and attestations that refer to a manifest by its
 * `subject`. Exact includes them: each side's graph is read from the manifests its tags reach,
 * planned (pure), then applied: a missing referrer copied after its subject, an extra one removed,
 * and on a secondary without the API the tag-schema index kept as the spec asks a client to keep it.
 */
import { mapLimit } from './concurrency.js';
import { errorMessage } from './errors.js';
import type { EngineLogger } from './log.js';
import { isIndexMediaType, manifestReferences, type Repository } from './oci.js';
import { byteOrder } from './planner.js';
import type { ManifestHead, Referrer, Registry } from './registry/registry.js';
import { isReferrersTag, referrersIn, referrersTag, referrersTagIndex } from './registry/referrers.js';
import type { Replicator } from './replicate.js';

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
 * The manifests a set of tags reaches: each tagged manifest and, for an index, its children
 * (one GET per index, whose type a HEAD told). A digest whose type is unknown is taken alone.
 */
export async function reachedManifests(
  client: Registry,
  repository: Repository,
  digests: Iterable<string>,
  mediaTypes: ReadonlyMap<string, string>,
  concurrency: number,
): Promise<string[]> {
  const roots = [...new Set(digests)];
  const children: string[] = [];
  await mapLimit(
    roots.filter((digest) => isIndexMediaType(mediaTypes.get(digest) ?? '')),
    concurrency,
    async (digest) => {
      const index = await client.getManifest(repository, digest);
      if (index) children.push(...manifestReferences(index).children.map((child) => child.digest));
    },
  );
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

/** An edge with the referrer's descriptor as its side lists it. */
export type PlannedEdge = ReferrerEdge & { referrer: Referrer };

/** What makes the secondary's referrers the primary's. */
export interface ReferrerPlan {
  /** Referrers the secondary lacks, level by level: a subject's referrers before theirs. */
  copy: PlannedEdge[][];
  /** Referrers only on the secondary, none of which a tag points at. */
  remove: PlannedEdge[];
  /** Extra referrers left because a tag on the secondary points at them (a tag's removal is the tag plan's). */
  tagged: PlannedEdge[];
  /** The same referrer with another artifactType on each side. */
  mismatched: (ReferrerEdge & { secondaryArtifactType: string })[];
  /** On a tag-schema secondary: subjects whose index must be written, with what it must list. */
  indexes: { subject: string; referrers: Referrer[] }[];
  /** Referrers the secondary holds (distinct digests read): what the prune guard measures removals against. */
  onSecondary: number;
}

/** Pure: the difference of two graphs read over the same roots. */
export function planReferrers(primary: ReferrerGraph, secondary: ReferrerGraph, store: ReferrerStore, taggedOnSecondary: ReadonlySet<string>): ReferrerPlan {
  const held = new Set([...secondary.values()].flatMap((referrers) => referrers.map((r) => r.digest)));
  const plan: ReferrerPlan = { copy: [], remove: [], tagged: [], mismatched: [], indexes: [], onSecondary: held.size };
  const depthOf = new Map<string, number>();
  for (const [subject, referrers] of primary) {
    const depth = depthOf.get(subject) ?? 0;
    const onSecondary = new Map((secondary.get(subject) ?? []).map((r) => [r.digest, r]));
    for (const referrer of referrers) {
      depthOf.set(referrer.digest, Math.min(depthOf.get(referrer.digest) ?? Infinity, depth + 1));
      const there = onSecondary.get(referrer.digest);
      const edge = { subject, digest: referrer.digest, artifactType: referrer.artifactType };
      if (!there) (plan.copy[depth] ??= []).push({ ...edge, referrer });
      else if (there.artifactType !== referrer.artifactType) plan.mismatched.push({ ...edge, secondaryArtifactType: there.artifactType });
    }
    if (store === 'tag-schema' && !sameReferrers(referrers, secondary.get(subject) ?? [])) plan.indexes.push({ subject, referrers });
  }
  const wanted = new Set([...primary.values()].flatMap((referrers) => referrers.map((r) => r.digest)));
  for (const [subject, referrers] of secondary) {
    for (const r of referrers) {
      if (wanted.has(r.digest)) continue;
      const edge = { subject, digest: r.digest, artifactType: r.artifactType, referrer: r };
      (taggedOnSecondary.has(r.digest) ? plan.tagged : plan.remove).push(edge);
    }
    if (store === 'tag-schema' && !primary.has(subject) && referrers.length > 0) plan.indexes.push({ subject, referrers: [] });
  }
  plan.copy = plan.copy.filter((level) => level !== undefined);
  plan.remove = dedupe(plan.remove);
  return plan;
}

function sameReferrers(a: readonly Referrer[], b: readonly Referrer[]): boolean {
  const key = (list: readonly Referrer[]) =>
    list
      .map((r) => `${r.digest} ${r.artifactType}`)
      .sort()
      .join('\n');
  return key(a) === key(b);
}

function dedupe(edges: PlannedEdge[]): PlannedEdge[] {
  const seen = new Set<string>();
  return edges.filter((edge) => !seen.has(edge.digest) && (seen.add(edge.digest), true));
}

/** The referrers part of a run, where the primary serves the API. */
export interface ReferrersDone {
  /** Where the secondary keeps them: its own API, or the tag schema (index tags this run keeps). */
  secondary: 'api' | 'tag-schema';
  plan: { copy: ReferrerEdge[]; remove: ReferrerEdge[]; mismatched: ReferrerPlan['mismatched']; indexes: string[] };
  done: ReferrerOutcome;
}

/** What applying a referrer plan did. */
export interface ReferrerOutcome {
  copied: ReferrerEdge[];
  removed: ReferrerEdge[];
  /** Tag-schema indexes written (their subjects). */
  indexes: string[];
  /** Extra referrers kept: the primary still holds them, a tag points at them, or the secondary refuses deletes. */
  kept: (ReferrerEdge & { reason: string })[];
  failed: (ReferrerEdge & { error: string })[];
}

export function emptyReferrerOutcome(): ReferrerOutcome {
  return { copied: [], removed: [], indexes: [], kept: [], failed: [] };
}

/**
 * Applies a plan: copies level by level (a subject is on the secondary before what refers to it),
 * then removals, then the tag-schema indexes. An extra referrer is removed (DELETE by digest)
 * only when the primary's own registry error proves it absent there; each edge fails alone.
 */
export async function applyReferrerPlan(
  plan: ReferrerPlan,
  run: {
    primary: Registry;
    secondary: Registry;
    repository: Repository;
    replicator: Replicator;
    /** Why extra referrers are left this run (the prune guard, refused deletes); undefined: they are removed. */
    removalsHeld: string | undefined;
    concurrency: number;
    logger: EngineLogger;
  },
): Promise<ReferrerOutcome> {
  const { primary, secondary, repository, replicator, concurrency, logger } = run;
  const outcome = emptyReferrerOutcome();
  const kept: PlannedEdge[] = [...plan.tagged];
  outcome.kept.push(...plan.tagged.map((edge) => ({ ...edgeOnly(edge), reason: 'a tag on the secondary points at it' })));
  const failedDigests = new Set<string>();
  for (const level of plan.copy) {
    await mapLimit(level, concurrency, async (edge) => {
      if (failedDigests.has(edge.subject)) return void outcome.failed.push({ ...edgeOnly(edge), error: `its subject ${edge.subject} was not copied` });
      try {
        await replicator.copyManifest(edge.digest, edge.subject);
        outcome.copied.push(edgeOnly(edge));
      } catch (error) {
        failedDigests.add(edge.digest);
        outcome.failed.push({ ...edgeOnly(edge), error: errorMessage(error) });
        logger.error('referrer copy failed', { repository, subject: edge.subject, digest: edge.digest, error: errorMessage(error) });
      }
    });
  }
  const held = run.removalsHeld;
  if (held !== undefined) {
    kept.push(...plan.remove);
    outcome.kept.push(...plan.remove.map((edge) => ({ ...edgeOnly(edge), reason: held })));
  } else {
    await mapLimit(plan.remove, concurrency, async (edge) => {
      try {
        if (!(await primary.provesAbsent(repository, edge.digest))) {
          kept.push(edge);
          return void outcome.kept.push({ ...edgeOnly(edge), reason: 'the primary still holds it' });
        }
        await secondary.deleteManifest(repository, edge.digest);
        outcome.removed.push(edgeOnly(edge));
      } catch (error) {
        kept.push(edge);
        outcome.failed.push({ ...edgeOnly(edge), error: errorMessage(error) });
        logger.error('referrer removal failed', { repository, subject: edge.subject, digest: edge.digest, error: errorMessage(error) });
      }
    });
  }
  await mapLimit(plan.indexes, concurrency, async ({ subject, referrers }) => {
    // An index lists what the secondary holds: a referrer that failed to copy is not listed yet; one kept is still listed.
    const listed = referrers.filter((r) => !failedDigests.has(r.digest));
    const keptThere = kept.filter((edge) => edge.subject === subject).map((edge) => edge.referrer);
    const index = referrersTagIndex([...listed, ...keptThere].filter(unique));
    try {
      await secondary.putManifest(repository, referrersTag(subject), index);
      outcome.indexes.push(subject);
    } catch (error) {
      outcome.failed.push({ subject, digest: index.digest, artifactType: 'referrers tag index', error: errorMessage(error) });
    }
  });
  for (const list of [outcome.copied, outcome.removed, outcome.kept, outcome.failed])
    list.sort((a, b) => byteOrder(a.subject, b.subject) || byteOrder(a.digest, b.digest));
  outcome.indexes.sort(byteOrder);
  return outcome;
}

/** The edge alone, for reports (the descriptor stays in the plan). */
export function edgeOnly(edge: ReferrerEdge): ReferrerEdge {
  return { subject: edge.subject, digest: edge.digest, artifactType: edge.artifactType };
}

function unique(referrer: Referrer, index: number, all: Referrer[]): boolean {
  return all.findIndex((r) => r.digest === referrer.digest) === index;
}
