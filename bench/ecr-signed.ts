// The primary of bench/ecr.ts's last pair: go-containerregistry's registry (it serves the OCI 1.1
// referrers API, test/support/referrers-registry.ts) holding the bench repository, some of it
// signed: every 10th tag's image a signature and an SBOM, and the first child of each multi-arch
// index a signature, each pushed by digest with `subject`, as signing tools push them. So a sync
// to an ECR secondary has referrers to compare on the tags' images and on the indexes' children.
import { mapLimit } from '../shared/engine/base/concurrency.js';
import { startReferrersRegistry } from '../test/support/referrers-registry.js';
import { pushSbom, pushSignature, readReferrers } from '../test/support/referrers.js';
import { getManifest, readTags, type PushedManifest } from '../test/support/seed.js';
import { log, seconds } from './harness.js';
import { isMultiArch, pushBaseLayer, seedRepository, tagName } from './seed.js';
import { performance } from 'node:perf_hooks';

export const SIGNED_REPOSITORY = 'bench/ecr-signed';
const BASE_LAYER_BYTES = 64 * 1024;
const SIGN_EVERY = 10;
const SIGN_CONCURRENCY = 8;

/** A signed manifest and its referrers' digests, sorted. */
export interface Signed {
  subject: string;
  referrers: string[];
}

export interface SignedPrimary {
  url: string;
  /** Tag to digest, as the primary lists them. */
  truth: Record<string, string>;
  signed: Signed[];
  stop(): Promise<void>;
}

/** Starts the registry and seeds it: `tags` tags (bench/seed.ts), then the referrers. */
export async function startSignedPrimary(tags: number): Promise<SignedPrimary> {
  const registry = await startReferrersRegistry();
  try {
    const t = performance.now();
    await seedRepository(registry.url, SIGNED_REPOSITORY, tags, await pushBaseLayer(registry.url, SIGNED_REPOSITORY, BASE_LAYER_BYTES));
    const chosen = Array.from({ length: tags }, (_, i) => i).filter((i) => i % SIGN_EVERY === 0 || isMultiArch(i));
    const signed = await mapLimit(chosen, SIGN_CONCURRENCY, (i) => signOne(registry.url, tagName(i), isMultiArch(i)));
    const truth = await readTags(registry.url, SIGNED_REPOSITORY);
    const referrers = signed.reduce((sum, s) => sum + s.referrers.length, 0);
    log(
      `ECR, referrers-API primary: seeded ${Object.keys(truth).length} tags, ${referrers} referrers on ${signed.length} manifests in ${seconds(performance.now() - t)}`,
    );
    return { url: registry.url, truth, signed, stop: () => registry.stop() };
  } catch (error) {
    await registry.stop();
    throw error;
  }
}

/** A tag's image: a signature and an SBOM. A multi-arch tag: a signature on its first child. */
async function signOne(url: string, tag: string, multiArch: boolean): Promise<Signed> {
  const tagged = await readManifest(url, tag);
  if (multiArch) {
    const { manifests } = JSON.parse(Buffer.from(tagged.bytes).toString('utf8')) as { manifests: { digest: string }[] };
    const child = await readManifest(url, manifests[0]!.digest);
    const signature = await pushSignature(url, SIGNED_REPOSITORY, child, { seed: 'ecr bench' });
    return { subject: child.digest, referrers: [signature.digest] };
  }
  const signature = await pushSignature(url, SIGNED_REPOSITORY, tagged, { seed: 'ecr bench' });
  const sbom = await pushSbom(url, SIGNED_REPOSITORY, tagged, { seed: 'ecr bench' });
  return { subject: tagged.digest, referrers: [signature.digest, sbom.digest].sort() };
}

async function readManifest(url: string, reference: string): Promise<PushedManifest> {
  const manifest = await getManifest(url, SIGNED_REPOSITORY, reference);
  if (!manifest) throw new Error(`${SIGNED_REPOSITORY}:${reference} is not on the primary just seeded`);
  return manifest;
}

/** Every signed manifest's referrers, read back from the registry behind the ECR side, are the primary's. */
export async function checkSignedCopy(backingUrl: string, signed: Signed[]): Promise<void> {
  const wrong: string[] = [];
  await mapLimit(signed, SIGN_CONCURRENCY, async ({ subject, referrers }) => {
    const there = (await readReferrers(backingUrl, SIGNED_REPOSITORY, subject)).map((r) => r.digest);
    if (there.join() !== referrers.join()) wrong.push(`${subject}: [${there.join(', ')}], expected [${referrers.join(', ')}]`);
  });
  if (wrong.length > 0) throw new Error(`the ECR side's referrers differ from the primary's for ${wrong.length} manifests, e.g. ${wrong[0]}`);
}
