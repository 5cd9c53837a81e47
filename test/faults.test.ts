import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PassThrough, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RegistryClient, syncRepository, validateRepositoryName, verifyRepository } from '../shared/engine/index.js';
import { seededRandom, startFaultProxy, type Fault, type FaultProxy } from './support/fault-proxy.js';
import { startRegistryPair, type RegistryPair } from './support/registry.js';
import { createHash } from 'node:crypto';
import { blobExists, getManifest, pushBlobStream, pushImage, pushManifest, pushMultiArch, readTags, MediaType, pushBlob } from './support/seed.js';

let registries: RegistryPair;
let primaryProxy: FaultProxy;
let secondaryProxy: FaultProxy;
const fast = { backoff: { baseMs: 5, capMs: 50 } };

beforeAll(async () => {
  registries = await startRegistryPair();
  [primaryProxy, secondaryProxy] = await Promise.all([startFaultProxy(registries.primary.url), startFaultProxy(registries.secondary.url)]);
});
afterAll(async () => {
  await Promise.all([primaryProxy?.stop(), secondaryProxy?.stop()]);
  await registries?.stop();
});

const P = () => registries.primary.url;
const S = () => registries.secondary.url;

function clients(options: { retries?: number; sleep?: (ms: number) => Promise<void> } = {}) {
  const p = new RegistryClient({ url: primaryProxy.url }, { ...fast, ...options });
  const s = new RegistryClient({ url: secondaryProxy.url }, { ...fast, ...options });
  return { p, s, close: () => Promise.all([p.close(), s.close()]) };
}

/** Syncs `repo` (expecting "synced") under `rule` on the primary's proxy; each backoff is recorded, not waited. */
async function syncRecordingWaits(repo: string, rule: Parameters<FaultProxy['setRule']>[0], options: { retries?: number } = {}): Promise<number[]> {
  const waits: number[] = [];
  primaryProxy.setRule(rule);
  const { p, s, close } = clients({ ...options, sleep: async (ms) => void waits.push(ms) });
  try {
    expect((await syncRepository(p, s, validateRepositoryName(repo))).status).toBe('synced');
  } finally {
    primaryProxy.setRule(() => undefined);
    await close();
  }
  return waits;
}

function randomFaults(seed: number, rate: number): (r: { method: string }) => Fault | undefined {
  const random = seededRandom(seed);
  const kinds: Fault[] = [
    { kind: 'status', status: 503 },
    { kind: 'status', status: 429, headers: { 'retry-after': '0' } },
    { kind: 'status', status: 502 },
    { kind: 'reset' },
    { kind: 'truncate' },
    { kind: 'delay', ms: 30 },
  ];
  return () => (random() < rate ? kinds[Math.floor(random() * kinds.length)] : undefined);
}

describe('faults between the engine and real registries', () => {
  it('converges through a few percent of failed requests, byte-identical', async () => {
    const repos = ['flaky/a', 'flaky/b', 'flaky/c'];
    for (const repo of repos) {
      for (const tag of ['v1', 'v2', 'v3', 'v4']) await pushImage(P(), repo, tag, { seed: repo });
      await pushMultiArch(P(), repo, 'multi', 'oci', repo);
      await pushImage(S(), repo, 'stray', { seed: repo });
    }
    primaryProxy.setRule(randomFaults(1, 0.08));
    secondaryProxy.setRule(randomFaults(2, 0.08));
    const { p, s, close } = clients();
    try {
      for (const repo of repos) {
        const report = await syncRepository(p, s, validateRepositoryName(repo), { maxPrune: 1 });
        expect(report.failed).toEqual([]);
        expect(report.status).toBe('synced');
      }
    } finally {
      primaryProxy.setRule(() => undefined);
      secondaryProxy.setRule(() => undefined);
      await close();
    }
    expect(primaryProxy.stats.faults + secondaryProxy.stats.faults).toBeGreaterThan(3);
    expect(p.stats.retries + s.stats.retries).toBeGreaterThan(0);
    for (const repo of repos) {
      expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
      const copied = await getManifest(S(), repo, 'multi');
      expect(Buffer.from(copied!.bytes).equals(Buffer.from((await getManifest(P(), repo, 'multi'))!.bytes))).toBe(true);
    }
  });

  it('honours Retry-After (seconds) on 429 before retrying', async () => {
    const repo = 'throttled/app';
    await pushImage(P(), repo, 'v1');
    let throttled = 0;
    const waits = await syncRecordingWaits(repo, ({ path }) =>
      path.includes('/tags/list') && throttled++ < 2 ? { kind: 'status', status: 429, headers: { 'retry-after': '7' } } : undefined,
    );
    expect(waits).toEqual([7000, 7000]);
  });

  it('lowers its requests in flight when a registry throttles (429), and still converges', async () => {
    const repo = 'throttled/many';
    for (const tag of ['a', 'b', 'c', 'd', 'e', 'f']) await pushImage(P(), repo, tag, { seed: repo });
    let throttled = 0;
    primaryProxy.setRule(({ path }) =>
      path.includes('/manifests/') && throttled++ < 24 ? { kind: 'status', status: 429, headers: { 'retry-after': '0' } } : undefined,
    );
    const p = new RegistryClient({ url: primaryProxy.url }, { ...fast, retries: 12, concurrency: 16 });
    const s = new RegistryClient({ url: S() }, { concurrency: 16 });
    try {
      const report = await syncRepository(p, s, validateRepositoryName(repo), { concurrency: 16 });
      expect(report.status).toBe('synced');
      // Sixteen at first; halved once per burst of 429s, and only a few answers since to climb back.
      expect(p.concurrencyLimit).toBeLessThan(8);
      expect(s.concurrencyLimit).toBe(16);
    } finally {
      primaryProxy.setRule(() => undefined);
      await Promise.all([p.close(), s.close()]);
    }
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
  });

  it('spends no HEAD on the primary for a tag the secondary lacks: the copy reads its digest', async () => {
    const repo = 'requests/fresh';
    for (const tag of ['a', 'b', 'c']) await pushImage(P(), repo, tag, { seed: repo });
    await pushImage(S(), repo, 'a', { seed: repo });
    primaryProxy.log.length = 0;
    const { p, s, close } = clients();
    try {
      const report = await syncRepository(p, s, validateRepositoryName(repo));
      expect(report.status).toBe('synced');
      expect(report.plan.copy.map((c) => [c.tag, c.primary])).toEqual([
        ['b', (await readTags(P(), repo)).b],
        ['c', (await readTags(P(), repo)).c],
      ]);
    } finally {
      await close();
    }
    // The run's reads before its writes; after them it re-reads the primary whole (from its second listing on).
    const listings = primaryProxy.log.flatMap((r, i) => (r.path.includes('/tags/list') ? [i] : []));
    expect(listings).toHaveLength(2);
    const beforeWrites = primaryProxy.log.slice(0, listings[1]);
    const manifestHeads = beforeWrites.filter((r) => r.method === 'HEAD' && r.path.includes('/manifests/')).map((r) => r.path.split('/').pop());
    expect(manifestHeads).toEqual(['a']);
    expect(primaryProxy.log.slice(listings[1]).filter((r) => r.method !== 'HEAD' && !r.path.includes('/tags/list'))).toEqual([]);
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
  });

  it('into a repository new to the secondary, uploads small blobs without asking first, and still converges over blobs left by a killed run', async () => {
    const repo = 'requests/new-repo';
    const leftover = Buffer.from('a layer a killed run already uploaded');
    const images = [await pushImage(P(), repo, 'a', { layers: [leftover] }), await pushImage(P(), repo, 'b', { seed: repo })];
    // A killed earlier run may have left blobs, but no tag, in the repository.
    await pushBlob(S(), repo, leftover);
    secondaryProxy.log.length = 0;
    const { p, s, close } = clients();
    try {
      const report = await syncRepository(p, s, validateRepositoryName(repo));
      expect(report.status).toBe('synced');
    } finally {
      await close();
    }
    expect(secondaryProxy.log.filter((r) => r.method === 'HEAD' && r.path.includes('/blobs/'))).toEqual([]);
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
    for (const image of images) for (const digest of [image.configDigest, ...image.layerDigests]) expect(await blobExists(S(), repo, digest)).toBe(true);
  });

  it('honours Retry-After also when a whole blob copy is retried after its request gave up', async () => {
    const repo = 'throttled/layer';
    const layer = Buffer.from('a layer the primary keeps throttling');
    const image = await pushImage(P(), repo, 'v1', { layers: [layer] });
    const layerPath = `/v2/${repo}/blobs/${image.layerDigests[0]}`;
    let throttled = 0;
    // One retry per request: the second 429 gives up the request, so the copy as a whole is retried.
    const waits = await syncRecordingWaits(
      repo,
      ({ method, path }) =>
        method === 'GET' && path === layerPath && throttled++ < 3 ? { kind: 'status', status: 429, headers: { 'retry-after': '2' } } : undefined,
      { retries: 1 },
    );
    expect(throttled).toBe(4);
    expect(waits).toEqual([2000, 2000, 2000]);
    expect(await blobExists(S(), repo, image.layerDigests[0]!)).toBe(true);
  });

  it('says what it wrote, and never "synced", when the primary cannot be read again after the writes', async () => {
    const repo = 'confirm/unreadable';
    await pushImage(P(), repo, 'v1', { seed: repo });
    let listings = 0;
    primaryProxy.setRule(({ path }) => (path.includes('/tags/list') && ++listings > 1 ? { kind: 'status', status: 500 } : undefined));
    const { p, s, close } = clients({ retries: 0 });
    try {
      await expect(syncRepository(p, s, validateRepositoryName(repo))).rejects.toMatchObject({
        code: 'CONFIRMATION_FAILED',
        invalid: false,
        message: expect.stringMatching(/1 tag\(s\) written, but the primary could not be read again/),
      });
    } finally {
      primaryProxy.setRule(() => undefined);
      await close();
    }
    expect(listings).toBe(2);
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
  });

  it('retries a blob copy from a fresh stream when the download is cut short', async () => {
    const repo = 'cut/layer';
    const size = 8 * 1024 * 1024;
    const layer = await pushBlobStream(P(), repo, size, 'cut');
    const config = Buffer.from('{"os":"linux"}');
    const configDigest = await pushBlob(P(), repo, config);
    await pushManifest(
      P(),
      repo,
      'v1',
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer, size }],
      }),
      MediaType.ociManifest,
    );
    let cuts = 0;
    primaryProxy.setRule(({ method, path }) => (method === 'GET' && path.includes(`/blobs/${layer}`) && cuts++ < 2 ? { kind: 'truncate' } : undefined));
    const { p, s, close } = clients();
    try {
      const report = await syncRepository(p, s, validateRepositoryName(repo));
      expect(report.status).toBe('synced');
      expect(report.bytesCopied).toBe(size + config.length);
    } finally {
      primaryProxy.setRule(() => undefined);
      await close();
    }
    expect(cuts).toBe(3);
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
  });

  it('removes nothing when the primary tag listing keeps failing', async () => {
    const repo = 'nolisting/app';
    await pushImage(P(), repo, 'v1');
    await pushImage(S(), repo, 'stray');
    primaryProxy.setRule(({ path }) => (path.includes('/tags/list') ? { kind: 'status', status: 500 } : undefined));
    const { p, s, close } = clients({ retries: 2 });
    try {
      await expect(syncRepository(p, s, validateRepositoryName(repo), { maxPrune: 1 })).rejects.toMatchObject({ invalid: false });
    } finally {
      primaryProxy.setRule(() => undefined);
      await close();
    }
    expect(s.stats.writes).toBe(0);
    expect(Object.keys(await readTags(S(), repo))).toEqual(['stray']);
  });

  it('reports exactly which tags failed, never "synced", when a copy gives up', async () => {
    const repo = 'giveup/app';
    await pushImage(P(), repo, 'good');
    const bad = await pushImage(P(), repo, 'bad', { seed: 'bad' });
    primaryProxy.setRule(({ path }) => (path.includes(bad.layerDigests[0]!) ? { kind: 'status', status: 503 } : undefined));
    const { p, s, close } = clients({ retries: 1 });
    try {
      const report = await syncRepository(p, s, validateRepositoryName(repo));
      expect(report.status).toBe('failed');
      expect(report.failed.map((f) => f.tag)).toEqual(['bad']);
      expect(report.failed[0]!.error).toMatch(/503/);
      expect(report.done.copied).toEqual(['good']);
    } finally {
      primaryProxy.setRule(() => undefined);
      await close();
    }
    const { p: p2, s: s2, close: close2 } = clients();
    expect((await verifyRepository(p2, s2, validateRepositoryName(repo))).missing).toEqual(['bad']);
    await close2();
  });
});

/** Reads a stream to its end (or its error) and waits until it has closed. */
async function drain(stream: Readable): Promise<void> {
  try {
    await pipeline(stream, new Writable({ write: (_chunk, _encoding, done) => done() }));
  } finally {
    if (!stream.closed) await new Promise((resolve) => stream.once('close', resolve));
  }
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('requests in flight (the adaptive limit)', () => {
  it('counts a streamed blob download until its body is read, destroyed or cut short, once each, so a 429 slows it', async () => {
    const repo = 'inflight/download';
    const size = 512 * 1024;
    const image = await pushImage(P(), repo, 'v1', { layers: [Buffer.alloc(size, 7)] });
    const layer = { digest: image.layerDigests[0]!, size, mediaType: MediaType.ociLayer };
    primaryProxy.log.length = 0;
    const p = new RegistryClient({ url: primaryProxy.url }, { ...fast, concurrency: 2 });
    const opened: Readable[] = [];
    const open = async () => {
      const { stream } = await p.openBlob(repo, layer);
      opened.push(stream.on('error', () => undefined));
      return stream;
    };
    try {
      // The download is throttled once (429): one request in flight from now on, and the download is it.
      let throttled = 0;
      primaryProxy.setRule(({ path }) =>
        path.includes('/blobs/') && throttled++ < 1 ? { kind: 'status', status: 429, headers: { 'retry-after': '0' } } : undefined,
      );
      const download = await open();
      primaryProxy.setRule(() => undefined);
      expect(p.concurrencyLimit).toBe(1);
      expect(p.requestsInFlight).toBe(1);
      // The next request waits for the blob's body, however long it sits unread.
      const head = p.headManifest(repo, 'v1');
      await pause(200);
      const headsSentWhileUnread = primaryProxy.log.filter((r) => r.method === 'HEAD').length;
      await drain(download);
      expect(headsSentWhileUnread).toBe(0);
      expect((await head)?.digest).toBe(image.digest);
      expect(p.requestsInFlight).toBe(0);

      const dropped = await open();
      expect(p.requestsInFlight).toBe(1);
      const closed = new Promise((resolve) => dropped.once('close', resolve));
      dropped.destroy();
      await closed;
      expect(p.requestsInFlight).toBe(0);

      primaryProxy.setRule(({ method, path }) => (method === 'GET' && path.includes('/blobs/') ? { kind: 'truncate' } : undefined));
      const cut = await open();
      expect(p.requestsInFlight).toBe(1);
      await expect(drain(cut)).rejects.toThrow();
      expect(p.requestsInFlight).toBe(0);
    } finally {
      primaryProxy.setRule(() => undefined);
      // An unread body would keep close() waiting.
      for (const stream of opened) stream.destroy();
      await p.close();
    }
  });

  it('counts a streamed blob upload until the registry has answered the whole PUT', async () => {
    const repo = 'inflight/upload';
    const bytes = Buffer.alloc(256 * 1024, 9);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    secondaryProxy.log.length = 0;
    const s = new RegistryClient({ url: secondaryProxy.url }, { ...fast, concurrency: 1 });
    try {
      const body = new PassThrough();
      const upload = s.uploadBlob(repo, { digest, size: bytes.length, mediaType: MediaType.ociLayer }, async () => ({ stream: body, length: bytes.length }));
      body.write(bytes.subarray(0, bytes.length / 2));
      while (!secondaryProxy.log.some((r) => r.method === 'PUT')) await pause(10);
      const ping = s.ping();
      await pause(200);
      const pingsSentMidUpload = secondaryProxy.log.filter((r) => r.path === '/v2/').length;
      body.end(bytes.subarray(bytes.length / 2));
      expect(await upload).toBe(bytes.length);
      await ping;
      expect(pingsSentMidUpload).toBe(0);
      expect(secondaryProxy.log.map((r) => r.method)).toEqual(['POST', 'PUT', 'GET']);
      expect(s.requestsInFlight).toBe(0);
    } finally {
      await s.close();
    }
    expect(await blobExists(S(), repo, digest)).toBe(true);
  });
});
