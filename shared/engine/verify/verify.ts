/** Verify: both sides' checksums compared, every difference named; never writes. */
import { tagChecksum, type ChecksumKind } from './checksum.js';
import { DEFAULT_CONCURRENCY, allInOrder, mapLimit } from '../base/concurrency.js';
import { errorMessage } from '../base/errors.js';
import type { EngineLogger } from '../base/log.js';
import type { Repository } from '../base/oci.js';
import { planRepository, type TagMap } from '../sync/planner.js';
import { readPrimary, readTagMap } from '../sync/read-tags.js';
import type { ManifestHead, Registry } from '../registry/registry.js';
import {
  edgesOf,
  isDerivedTag,
  mediaTypesOf,
  reachedManifests,
  readReferrerGraph,
  referrerMode,
  type ReferrerEdge,
  type ReferrerMode,
  type ReferrerStore,
} from '../referrers/index.js';
import { Replicator, type MissingObject } from '../sync/replicate.js';
import type { VerifyStatus } from '../base/status.js';
import { EVERY_TAG, type TagScope } from '../config/scope.js';

export interface VerifyOptions {
  deep?: boolean;
  checksum?: ChecksumKind;
  concurrency?: number;
  logger?: EngineLogger;
  gitlabApi?: boolean;
  /** Compare the referrers (OCI 1.1) of what the tags reach, where the primary serves the API (default true). */
  referrers?: boolean;
  /** The tags compared (default every tag): the checksums are over these, and the report names the scope. */
  tags?: TagScope;
}

/** A referrer on one side and not the other, or with another artifactType. */
export type ReferrerDifference = ReferrerEdge & { secondaryArtifactType?: string };

export interface VerifyReport {
  repository: string;
  /** The repository's name on the secondary, where a prefix places it elsewhere. */
  secondaryRepository?: string;
  status: VerifyStatus;
  checksum: ChecksumKind;
  /** The tags the checksums are over: the scope in words and the SHA-256 of those words. Checksums under different hashes are not comparable. */
  scope: { tags: string; hash: string };
  primaryChecksum: string;
  secondaryChecksum: string;
  primaryTags: number;
  secondaryTags: number;
  missing: string[];
  extra: string[];
  mismatched: { tag: string; primary: string; secondary: string }[];
  /**
   * The referrers of what each side's tags reach, compared by (subject, digest, artifactType).
   * Absent where the primary does not serve the API (its referrers are tags there) or with referrers off.
   */
  referrers?: {
    /** Where the secondary keeps them: its API, or the tag schema. */
    secondary: ReferrerStore;
    primaryReferrers: number;
    secondaryReferrers: number;
    missing: ReferrerEdge[];
    extra: ReferrerEdge[];
    mismatched: ReferrerDifference[];
  };
  deep?: { missing: MissingObject[]; failed: { digest: string; error: string }[] };
}

/**
 * Compares both sides' checksums (tags, and with `full` their referrers) and names every
 * difference; never writes. Any referrer difference is a mismatch, whichever checksum is shown.
 */
export async function verifyRepository(primary: Registry, secondary: Registry, repository: Repository, options: VerifyOptions = {}): Promise<VerifyReport> {
  const kind = options.checksum ?? 'full';
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const scope = options.tags ?? EVERY_TAG;
  const read = { concurrency, logger: options.logger, gitlabApi: options.gitlabApi, ...(scope.all ? {} : { keep: scope.has }) };
  const heads = { primary: [] as ManifestHead[], secondary: [] as ManifestHead[] };
  // The referrers probe goes out with the reads: at a far registry each round trip in turn is felt.
  const [mode, primaryTags, listed] = await allInOrder<[ReferrerMode, Map<string, string>, Map<string, string>]>([
    referrerMode(primary, secondary, repository, options.referrers ?? true),
    readPrimary(primary, repository, { ...read, onHead: (head) => void heads.primary.push(head) }),
    readTagMap(secondary, repository, { ...read, onHead: (head) => void heads.secondary.push(head) }).then((map) => map ?? new Map<string, string>()),
  ]);
  const secondaryTags = new Map([...listed].filter(([tag]) => !isDerivedTag(mode, tag, (t) => primaryTags.has(t))));
  const plan = planRepository(primaryTags, secondaryTags);
  const edges = mode.on
    ? await bothGraphs(primary, secondary, repository, mode.secondary, { primaryTags, secondaryTags, listed: new Set(listed.keys()), heads, concurrency })
    : undefined;
  const report: VerifyReport = {
    repository,
    ...(secondary.prefix ? { secondaryRepository: secondary.at(repository) } : {}),
    status: 'synced',
    checksum: kind,
    scope: { tags: scope.text, hash: scope.hash },
    primaryChecksum: tagChecksum(primaryTags, kind, edges?.primary, scope.all ? undefined : scope.hash),
    secondaryChecksum: tagChecksum(secondaryTags, kind, edges?.secondary, scope.all ? undefined : scope.hash),
    primaryTags: primaryTags.size,
    secondaryTags: secondaryTags.size,
    missing: plan.copy.map((c) => c.tag),
    extra: plan.remove.map((c) => c.tag),
    mismatched: plan.repair.map((c) => ({ tag: c.tag, primary: c.primary!, secondary: c.secondary! })),
    ...(edges && mode.on ? { referrers: { secondary: mode.secondary, ...compareEdges(edges.primary, edges.secondary) } } : {}),
  };
  if (options.deep) {
    const replicator = new Replicator(primary, secondary, repository, { deep: true, write: false, logger: options.logger });
    const failed: { digest: string; error: string }[] = [];
    const matching = [...new Set([...secondaryTags].filter(([tag, digest]) => primaryTags.get(tag) === digest).map(([, digest]) => digest))];
    await mapLimit(matching, read.concurrency, async (digest) => {
      await replicator.checkTree(digest).catch((error: unknown) => failed.push({ digest, error: errorMessage(error) }));
    });
    report.deep = { missing: replicator.missing, failed };
  }
  const deepClean = !report.deep || (report.deep.missing.length === 0 && report.deep.failed.length === 0);
  const r = report.referrers;
  const referrersClean = !r || r.missing.length + r.extra.length + r.mismatched.length === 0;
  report.status = report.primaryChecksum === report.secondaryChecksum && deepClean && referrersClean ? 'synced' : 'mismatch';
  return report;
}

/** Each side's referrer edges, each read from the manifests its own tags reach. */
async function bothGraphs(
  primary: Registry,
  secondary: Registry,
  repository: Repository,
  store: ReferrerStore,
  sides: {
    primaryTags: TagMap;
    secondaryTags: TagMap;
    /** Every tag the secondary listed, its tag-schema index tags among them. */
    listed: ReadonlySet<string>;
    heads: { primary: ManifestHead[]; secondary: ManifestHead[] };
    concurrency: number;
  },
): Promise<{ primary: ReferrerEdge[]; secondary: ReferrerEdge[] }> {
  const { concurrency } = sides;
  // A digest's type is the same on both sides: a side whose listing gives digests (ECR's) was not HEADed, the other may have been.
  const types = mediaTypesOf([...sides.heads.primary, ...sides.heads.secondary]);
  const side = async (client: Registry, tags: TagMap, via: ReferrerStore, listed?: ReadonlySet<string>) => {
    const roots = await reachedManifests(client, repository, tags.values(), types, concurrency);
    return edgesOf(await readReferrerGraph(client, repository, roots, via, concurrency, listed));
  };
  const [onPrimary, onSecondary] = await Promise.all([side(primary, sides.primaryTags, 'api'), side(secondary, sides.secondaryTags, store, sides.listed)]);
  return { primary: onPrimary, secondary: onSecondary };
}

/** The differences of two sides' referrer edges, by (subject, digest), then artifactType. */
function compareEdges(primary: ReferrerEdge[], secondary: ReferrerEdge[]) {
  const key = (edge: ReferrerEdge) => `${edge.subject} ${edge.digest}`;
  const there = new Map(secondary.map((edge) => [key(edge), edge]));
  const here = new Set(primary.map(key));
  const missing: ReferrerEdge[] = [];
  const mismatched: ReferrerDifference[] = [];
  for (const edge of primary) {
    const other = there.get(key(edge));
    if (!other) missing.push(edge);
    else if (other.artifactType !== edge.artifactType) mismatched.push({ ...edge, secondaryArtifactType: other.artifactType });
  }
  return {
    primaryReferrers: new Set(primary.map((e) => e.digest)).size,
    secondaryReferrers: new Set(secondary.map((e) => e.digest)).size,
    missing,
    extra: secondary.filter((edge) => !here.has(key(edge))),
    mismatched,
  };
}
