// Peak memory (and time) copying one image with one big layer: ours against skopeo.
import { performance } from 'node:perf_hooks';
import { MediaType, pushBlob, pushBlobStream, pushManifest, readTags } from '../test/support/seed.js';
import { BIG_REPOSITORY, config, describe, expectSame, log, measured, profiled, registry, runOurs, runSkopeoSync } from './harness.js';
import type { ProfileSummary } from './profile.js';
import type { Row } from './report.js';

/** Peak memory (and time) copying one image whose layer is `megabytes` MiB: ours vs skopeo. */
export async function benchBigLayer(megabytes: number, profiles: Record<string, ProfileSummary>): Promise<{ rows: Row[]; details: Record<string, unknown> }> {
  log(`== one ${megabytes} MiB layer ==`);
  const primary = await registry();
  const t = performance.now();
  const size = megabytes * 1024 * 1024;
  const layerDigest = await pushBlobStream(primary.url, BIG_REPOSITORY, size, 'bench big layer');
  const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layerDigest] } }));
  const configDigest = await pushBlob(primary.url, BIG_REPOSITORY, configBytes);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: configDigest, size: configBytes.length },
    layers: [{ mediaType: MediaType.ociLayer, digest: layerDigest, size }],
  });
  await pushManifest(primary.url, BIG_REPOSITORY, 'big', manifest, MediaType.ociManifest);
  log(`seeded ${BIG_REPOSITORY}:big in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const truth = await readTags(primary.url, BIG_REPOSITORY);

  const oursSecondary = await registry();
  let probeRssKb: number | undefined;
  const ours = await measured(
    [primary, oursSecondary],
    async () => {
      const result = await runOurs(['sync', BIG_REPOSITORY, '--primary', primary.url, '--secondary', oursSecondary.url, '--json'], { rss: true });
      probeRssKb = Number(/^peak-rss-kb=(\d+)$/m.exec(result.stderr)?.[1] ?? Number.NaN);
      return result;
    },
    'geo-sync sync (big layer)',
  );
  await expectSame(oursSecondary.url, truth, 'geo-sync big-layer sync', BIG_REPOSITORY);
  await oursSecondary.stop();
  if (config.cpuProfile) {
    const fresh = await registry();
    profiles[`copy ${megabytes} MiB layer`] = await profiled(['sync', BIG_REPOSITORY, '--primary', primary.url, '--secondary', fresh.url, '--json']);
    await fresh.stop();
  }

  const skopeoSecondary = await registry();
  const peer = await measured([primary, skopeoSecondary], () => runSkopeoSync(primary.host, skopeoSecondary.host, BIG_REPOSITORY), 'skopeo sync (big layer)');
  await expectSame(skopeoSecondary.url, truth, 'skopeo big-layer sync', BIG_REPOSITORY);
  await Promise.all([primary.stop(), skopeoSecondary.stop()]);

  const oursMb = (probeRssKb ?? ours.maxRssKb ?? Number.NaN) / 1024;
  const peerMb = (peer.maxRssKb ?? Number.NaN) / 1024;
  log(
    `${megabytes} MiB layer: ours ${describe(ours)}, peak RSS ${oursMb.toFixed(0)} MB (process's own maxRSS; /usr/bin/time says ${((ours.maxRssKb ?? 0) / 1024).toFixed(0)} MB) | skopeo ${describe(peer)}, peak RSS ${peerMb.toFixed(0)} MB`,
  );
  return {
    rows: [
      {
        size: 'all',
        measure: `peak RSS copying ${megabytes} MiB layer`,
        unit: 'MB',
        ours: oursMb,
        peer: peerMb,
        peerName: 'skopeo',
        ratio: oursMb / peerMb,
        target: '< 256 MB',
        meets: oursMb < 256,
      },
      {
        size: 'all',
        measure: `time copying ${megabytes} MiB layer`,
        unit: 's',
        ours: ours.wallMs / 1000,
        peer: peer.wallMs / 1000,
        peerName: 'skopeo',
        ratio: ours.wallMs / peer.wallMs,
        target: '-',
      },
    ],
    details: { megabytes, ours: { ...ours, probeRssKb }, skopeo: peer },
  };
}
