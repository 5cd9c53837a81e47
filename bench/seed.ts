// Seeds the benchmark repository through the test harness's push helpers: one shared base layer
// (pushed once), a small unique layer per tag, and every 20th tag (5%) a multi-arch index.
import { mapLimit } from '../shared/engine/base/concurrency.js';
import { MediaType, pseudoRandomChunks, pushBlob, pushImage, pushManifest, pushMultiArch } from '../test/support/seed.js';

/** Pushes in flight at once while seeding (the registry has two cores to share with us). */
const SEED_CONCURRENCY = 16;
const UNIQUE_LAYER_BYTES = 1024;
const MULTI_ARCH_EVERY = 20;

export function tagName(index: number): string {
  return `v${String(index).padStart(5, '0')}`;
}

export function isMultiArch(index: number): boolean {
  return index % MULTI_ARCH_EVERY === 7;
}

function randomBytes(size: number, seed: string): Buffer {
  return Buffer.concat([...pseudoRandomChunks(size, seed)]);
}

/** The shared base layer, pushed once; returns its descriptor for the image manifests. */
export async function pushBaseLayer(url: string, repository: string, sizeBytes: number): Promise<{ digest: string; size: number }> {
  const bytes = randomBytes(sizeBytes, 'bench base layer');
  return { digest: await pushBlob(url, repository, bytes), size: bytes.length };
}

/**
 * One single-platform OCI image over the base layer plus a unique layer. pushImage would upload
 * the base again for every tag; composing pushBlob + pushManifest uploads it once.
 */
export async function pushBenchImage(url: string, repository: string, tag: string, base: { digest: string; size: number }, seed: string): Promise<string> {
  const layer = randomBytes(UNIQUE_LAYER_BYTES, `${repository}:${tag} ${seed}`);
  const layerDigest = await pushBlob(url, repository, layer);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Labels: { 'bench.tag': tag, 'bench.seed': seed } },
      rootfs: { type: 'layers', diff_ids: [base.digest, layerDigest] },
    }),
  );
  const configDigest = await pushBlob(url, repository, config);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: configDigest, size: config.length },
    layers: [
      { mediaType: MediaType.ociLayer, digest: base.digest, size: base.size },
      { mediaType: MediaType.ociLayer, digest: layerDigest, size: layer.length },
    ],
  });
  return pushManifest(url, repository, tag, manifest, MediaType.ociManifest);
}

/** Tags 0..count-1: images, and every 20th a multi-arch index (OCI and Docker list alternately). */
export async function seedRepository(url: string, repository: string, count: number, base: { digest: string; size: number }): Promise<void> {
  const indexes = Array.from({ length: count }, (_, i) => i);
  await mapLimit(indexes, SEED_CONCURRENCY, async (i) => {
    const tag = tagName(i);
    if (isMultiArch(i)) await pushMultiArch(url, repository, tag, Math.floor(i / MULTI_ARCH_EVERY) % 2 === 0 ? 'oci' : 'docker', 'seed');
    else await pushBenchImage(url, repository, tag, base, 'seed');
  });
}

/** Moves `tags` on the primary to new images (new unique layer and config). */
export async function moveTags(url: string, repository: string, tags: string[], base: { digest: string; size: number }, seed: string): Promise<void> {
  await mapLimit(tags, SEED_CONCURRENCY, (tag) => pushBenchImage(url, repository, tag, base, seed));
}

/** Tags only the secondary has: small images that share nothing with the primary's. */
export async function pushExtraTags(url: string, repository: string, tags: string[]): Promise<void> {
  await mapLimit(tags, SEED_CONCURRENCY, (tag) => pushImage(url, repository, tag, { seed: `extra ${tag}` }));
}
