// OCI 1.1 referrers (issue 19): the requests a no-op sync and a verify spend per tag, per side,
// when each image carries a signature and an SBOM pushed by digest with `subject`. Three pairs:
// both sides serving the referrers API (go-containerregistry's registry), neither (docker-registry
// 2.8, referrers kept in the tag schema, copied as plain tags), and the mixed pair (an API primary,
// a 2.8 secondary that keeps the tag-schema index tags). Each count runs the CLI once through
// counting proxies, with referrers on (the default) and with --no-referrers (today's requests).
import { performance } from 'node:perf_hooks';
import { mapLimit } from '../shared/engine/base/concurrency.js';
import type { FaultProxy } from '../test/support/fault-proxy.js';
import { startReferrersRegistry, type RegistryEndpoint } from '../test/support/referrers-registry.js';
import { pushReferrersTagIndex, pushSbom, pushSignature, readReferrers, readReferrersTagIndex } from '../test/support/referrers.js';
import { pushImage, readTags } from '../test/support/seed.js';
import { countRequests, expectOk, int, log, registry, runOurs, seconds } from './harness.js';
import type { Row } from './report.js';
import { tagName } from './seed.js';

const REPOSITORY = 'bench/signed';
const SEED_CONCURRENCY = 16;
/** BENCH_REFERRERS_TAGS: images seeded, each with a signature and an SBOM. */
const DEFAULT_IMAGES = 100;
/** How many images' referrers are read back after the initial sync, to check it copied them. */
const SPOT_CHECKS = 5;

type Pair = 'api' | 'plain' | 'mixed';
type Command = 'no-op sync' | 'verify';

/** One side's requests in one run, by kind. */
export interface SideCount {
  total: number;
  headManifest: number;
  getManifest: number;
  referrers: number;
  /** Referrers requests naming a manifest a primary tag reaches, and naming a referrer (its own referrers); the rest is the probe. */
  referrersOnReached: number;
  referrersOnReferrers: number;
  /** GETs of tag-schema tags (`sha256-<hex>`) of a manifest a tag reaches, and of a referrer. */
  tagSchemaOnReached: number;
  tagSchemaOnReferrers: number;
  tagList: number;
  writes: number;
  other: number;
}

interface Counted {
  primary: SideCount;
  secondary: SideCount;
  wallMs: number;
}

interface PairResult {
  pair: Pair;
  /** Tags the primary lists. */
  tags: number;
  /** Manifests the primary's tags reach (here: one image per tag; none is an index). */
  reached: number;
  /** noReferrers: the same run with --no-referrers (today's requests); not on the mixed pair (see benchPair). */
  counts: Record<Command, { referrers: Counted; noReferrers?: Counted }>;
}

const PAIR_LABEL: Record<Pair, string> = {
  api: 'API both sides',
  plain: '2.8 both sides',
  mixed: 'API primary, 2.8 secondary',
};

/** The referrers rows: one pair after the other, each on fresh registries. A pair whose registry cannot start is skipped with a note. */
export async function benchReferrers(): Promise<{ rows: Row[]; details: Record<string, unknown> }> {
  const images = int(process.env.BENCH_REFERRERS_TAGS, DEFAULT_IMAGES);
  if (images === 0) throw new Error('BENCH_REFERRERS_TAGS must be at least 1');
  log(`== referrers: ${images} images, each with a signature and an SBOM (pushed by digest with subject) ==`);
  const results: PairResult[] = [];
  const skipped: Record<string, string> = {};
  for (const pair of ['api', 'plain', 'mixed'] as const) {
    try {
      results.push(await benchPair(pair, images));
    } catch (error) {
      if (!(error instanceof RegistryUnavailable)) throw error;
      skipped[pair] = error.message;
      log(`referrers, ${PAIR_LABEL[pair]}: SKIPPED (${error.message.split('\n')[0]})`);
    }
  }
  return { rows: results.flatMap(rowsOf), details: { images, repository: REPOSITORY, pairs: results, ...(Object.keys(skipped).length > 0 && { skipped }) } };
}

class RegistryUnavailable extends Error {}

async function startApiRegistry(): Promise<RegistryEndpoint> {
  try {
    return await startReferrersRegistry();
  } catch (error) {
    throw new RegistryUnavailable(`the registry serving the referrers API did not start: ${error instanceof Error ? error.message : String(error)}`);
  }
}

async function benchPair(pair: Pair, images: number): Promise<PairResult> {
  const started: RegistryEndpoint[] = [];
  const start = async (api: boolean) => {
    const r = api ? await startApiRegistry() : await registry();
    started.push(r);
    return r;
  };
  try {
    const primary = await start(pair !== 'plain');
    const secondary = await start(pair === 'api');
    const t = performance.now();
    const seeded = await seedSigned(primary.url, images, pair === 'plain');
    const truth = await readTags(primary.url, REPOSITORY);
    const tags = Object.keys(truth).length;
    log(`${PAIR_LABEL[pair]}: seeded ${images} images, ${images * 2} referrers, ${tags} tags on the primary in ${seconds(performance.now() - t)}`);

    const syncArgs = (p: string, s: string) => ['sync', REPOSITORY, '--primary', p, '--secondary', s, '--max-prune', '1', '--json'];
    const initial = expectOk(await runOurs(syncArgs(primary.url, secondary.url)), `geo-sync sync (initial, ${PAIR_LABEL[pair]})`);
    log(`${PAIR_LABEL[pair]}: initial sync ${seconds(initial.wallMs)}`);
    await checkCopied(pair, primary.url, secondary.url, truth, seeded);

    const graph: Graph = { reached: new Set(seeded.map((image) => image.digest)), referrers: new Set(seeded.flatMap((image) => image.referrers)) };
    const counts = {} as PairResult['counts'];
    for (const command of ['no-op sync', 'verify'] as const) {
      const args = (p: string, s: string) => (command === 'verify' ? ['verify', REPOSITORY, '--primary', p, '--secondary', s, '--json'] : syncArgs(p, s));
      const referrers = await counted(primary.url, secondary.url, args, graph, `geo-sync ${command} (${PAIR_LABEL[pair]})`);
      // On the mixed pair --no-referrers takes the tag-schema index tags the sync keeps there for extra tags: a sync
      // removes them, a verify says mismatch (exit 1). So no --no-referrers figure there.
      const noReferrers =
        pair === 'mixed'
          ? undefined
          : await counted(
              primary.url,
              secondary.url,
              (p, s) => [...args(p, s), '--no-referrers'],
              graph,
              `geo-sync ${command} --no-referrers (${PAIR_LABEL[pair]})`,
            );
      counts[command] = { referrers, ...(noReferrers && { noReferrers }) };
      for (const [name, c] of [
        ['referrers on', referrers],
        ['--no-referrers', noReferrers],
      ] as const) {
        if (c === undefined) continue;
        log(`${PAIR_LABEL[pair]}: ${command}, ${name}: ${seconds(c.wallMs)}; primary ${describeSide(c.primary)} | secondary ${describeSide(c.secondary)}`);
      }
      for (const side of ['primary', 'secondary'] as const)
        if (command === 'no-op sync' && referrers[side].writes > 0) log(`WARNING: the no-op sync wrote ${referrers[side].writes} times to the ${side}`);
    }
    return { pair, tags, reached: graph.reached.size, counts };
  } finally {
    await Promise.all(started.map((r) => r.stop()));
  }
}

/** The seeded digests: the manifests the primary's tags reach, and their referrers. */
interface Graph {
  reached: ReadonlySet<string>;
  referrers: ReadonlySet<string>;
}

interface SeededImage {
  tag: string;
  digest: string;
  referrers: string[];
}

/** Each image by tag, then its signature and SBOM by digest; on a registry without the API, also the tag-schema index a client keeps there. */
async function seedSigned(url: string, images: number, tagSchema: boolean): Promise<SeededImage[]> {
  const indexes = Array.from({ length: images }, (_, i) => i);
  return mapLimit(indexes, SEED_CONCURRENCY, async (i) => {
    const tag = tagName(i);
    const image = await pushImage(url, REPOSITORY, tag, { format: 'oci', seed: 'referrers bench' });
    const signature = await pushSignature(url, REPOSITORY, image);
    const sbom = await pushSbom(url, REPOSITORY, image);
    const descriptors = [signature.descriptor, sbom.descriptor].sort((a, b) => (a.digest < b.digest ? -1 : 1));
    if (tagSchema) await pushReferrersTagIndex(url, REPOSITORY, image.digest, descriptors);
    return { tag, digest: image.digest, referrers: descriptors.map((d) => d.digest) };
  });
}

/** After the initial sync: the primary's tags on the secondary, and a few images' referrers read back (over the API, or from the tag-schema index). */
async function checkCopied(pair: Pair, primaryUrl: string, secondaryUrl: string, truth: Record<string, string>, seeded: SeededImage[]): Promise<void> {
  const there = await readTags(secondaryUrl, REPOSITORY);
  const wrong = Object.keys(truth).filter((tag) => there[tag] !== truth[tag]);
  if (wrong.length > 0) throw new Error(`${PAIR_LABEL[pair]}: after the initial sync ${wrong.length} tags differ (e.g. ${wrong.slice(0, 3).join(', ')})`);
  const expectedTags = pair === 'mixed' ? 2 * seeded.length : Object.keys(truth).length;
  if (Object.keys(there).length !== expectedTags)
    throw new Error(`${PAIR_LABEL[pair]}: the secondary lists ${Object.keys(there).length} tags after the initial sync, expected ${expectedTags}`);
  const step = Math.max(1, Math.floor(seeded.length / SPOT_CHECKS));
  for (let i = 0; i < seeded.length; i += step) {
    const image = seeded[i]!;
    const read =
      pair === 'api'
        ? (await readReferrers(secondaryUrl, REPOSITORY, image.digest)).map((r) => r.digest)
        : ((await readReferrersTagIndex(secondaryUrl, REPOSITORY, image.digest)) ?? []).map((r) => r.digest).sort();
    if (read.join() !== image.referrers.join())
      throw new Error(`${PAIR_LABEL[pair]}: ${image.tag}'s referrers on the secondary are [${read.join(', ')}], expected [${image.referrers.join(', ')}]`);
  }
  if (pair !== 'plain') {
    const onPrimary = (await readReferrers(primaryUrl, REPOSITORY, seeded[0]!.digest)).map((r) => r.digest);
    if (onPrimary.join() !== seeded[0]!.referrers.join()) throw new Error(`${PAIR_LABEL[pair]}: the primary lists [${onPrimary.join(', ')}] as referrers`);
  }
}

/** One CLI run through counting proxies in front of both registries, each side's requests classified. */
async function counted(
  primaryUrl: string,
  secondaryUrl: string,
  args: (primary: string, secondary: string) => string[],
  graph: Graph,
  what: string,
): Promise<Counted> {
  let result: Counted | undefined;
  await countRequests(primaryUrl, secondaryUrl, async (p: FaultProxy, s: FaultProxy) => {
    const run = expectOk(await runOurs(args(p.url, s.url)), what);
    result = { primary: classify(p.log, graph), secondary: classify(s.log, graph), wallMs: run.wallMs };
  });
  return result!;
}

export function classify(requests: readonly { method: string; path: string }[], graph: Graph): SideCount {
  const count: SideCount = {
    total: 0,
    headManifest: 0,
    getManifest: 0,
    referrers: 0,
    referrersOnReached: 0,
    referrersOnReferrers: 0,
    tagSchemaOnReached: 0,
    tagSchemaOnReferrers: 0,
    tagList: 0,
    writes: 0,
    other: 0,
  };
  for (const { method, path } of requests) {
    count.total++;
    const route = path.split('?')[0]!;
    const last = route.slice(route.lastIndexOf('/') + 1);
    if (!['GET', 'HEAD'].includes(method)) count.writes++;
    else if (/\/referrers\/[^/]+$/.test(route)) {
      count.referrers++;
      if (graph.reached.has(last)) count.referrersOnReached++;
      if (graph.referrers.has(last)) count.referrersOnReferrers++;
    } else if (/\/manifests\/[^/]+$/.test(route)) {
      count[method === 'HEAD' ? 'headManifest' : 'getManifest']++;
      const subject = /^sha256-[0-9a-f]{64}$/.test(last) ? last.replace('-', ':') : undefined;
      if (method === 'GET' && subject !== undefined && graph.reached.has(subject)) count.tagSchemaOnReached++;
      if (method === 'GET' && subject !== undefined && graph.referrers.has(subject)) count.tagSchemaOnReferrers++;
    } else if (route.endsWith('/tags/list')) count.tagList++;
    else count.other++;
  }
  return count;
}

function describeSide(c: SideCount): string {
  const parts = [
    `${c.headManifest} HEAD manifest`,
    `${c.referrers} GET referrers (${c.referrersOnReached} of tag-reached manifests, ${c.referrersOnReferrers} of referrers)`,
    ...(c.getManifest > 0
      ? [`${c.getManifest} GET manifest (tag-schema tags: ${c.tagSchemaOnReached} of tag-reached manifests, ${c.tagSchemaOnReferrers} of referrers)`]
      : []),
    `${c.tagList} tag list`,
    ...(c.writes > 0 ? [`${c.writes} writes`] : []),
    ...(c.other > 0 ? [`${c.other} other`] : []),
  ];
  return `${c.total} (${parts.join(', ')})`;
}

function rowsOf(result: PairResult): Row[] {
  const { pair, tags, reached } = result;
  const label = PAIR_LABEL[pair];
  const rows: Row[] = [];
  for (const command of ['no-op sync', 'verify'] as const) {
    const { referrers: on, noReferrers: off } = result.counts[command];
    if (pair === 'api' && off) {
      for (const side of ['primary', 'secondary'] as const) {
        // Beyond today's requests (those of --no-referrers), at most one referrers request per manifest a tag reaches.
        const beyond = on[side].total - off[side].total;
        rows.push({
          size: tags,
          measure: `referrers, ${label}: ${command} requests per tag, ${side}`,
          unit: 'req/tag',
          ours: on[side].total / tags,
          peer: off[side].total / tags,
          peerName: '--no-referrers',
          ratio: on[side].total / off[side].total,
          target: `<= --no-referrers + ${(reached / tags).toFixed(2)}/tag`,
          meets: beyond <= reached,
        });
        rows.push({
          size: tags,
          measure: `referrers, ${label}: ${command} referrers requests per reached manifest, ${side} (${on[side].referrersOnReached} of them, ${on[side].referrersOnReferrers} of referrers, ${on[side].referrers - on[side].referrersOnReached - on[side].referrersOnReferrers} probe)`,
          unit: 'req/manifest',
          ours: on[side].referrers / reached,
          peerName: '-',
          target: '<= 1',
          meets: on[side].referrers <= reached,
        });
      }
    } else {
      // Both sides together, as the existing requests-per-tag rows; without the API on the primary only its probe is added,
      // and a 2.8 secondary of an API primary keeps one tag-schema index tag per subject.
      const total = on.primary.total + on.secondary.total;
      const offTotal = off && off.primary.total + off.secondary.total;
      const probes = `probes ${on.primary.referrers}/${on.secondary.referrers}`;
      rows.push({
        size: tags,
        measure: `referrers, ${label}: ${command} requests per tag (${pair === 'plain' ? probes : `${on.secondary.getManifest} tag-schema GETs`})`,
        unit: 'req/tag',
        ours: total / tags,
        ...(offTotal === undefined ? {} : { peer: offTotal / tags, ratio: total / offTotal }),
        peerName: '--no-referrers',
        ...(pair === 'plain' && offTotal !== undefined
          ? {
              target: '<= --no-referrers + 1 probe per side',
              meets: on.primary.referrers <= 1 && on.secondary.referrers <= 1 && total - offTotal <= on.primary.referrers + on.secondary.referrers,
            }
          : { target: '-' }),
      });
    }
  }
  return rows;
}
