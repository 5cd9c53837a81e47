// Chunked blob uploads in the engine, against two real registries: when they are used, a run that
// stops mid-blob at its deadline, and what becomes of the upload sessions a run is given.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, syncRepository, validateRepositoryName, type UploadSession } from '../shared/engine/index.js';
import { startRegistryPair, type RegistryPair } from './support/registry.js';
import { openUploadSession, pseudoRandomChunks, pushBigLayerImage, readTags } from './support/seed.js';
import { startThrottleProxy, type ThrottleProxy } from './support/throttle-proxy.js';

const MB = 1024 * 1024;
/** Just over CHUNKED_UPLOAD_MIN_BYTES. */
const SIZE = 33 * MB;

let registries: RegistryPair;
let link: ThrottleProxy;

beforeAll(async () => {
  registries = await startRegistryPair();
  link = await startThrottleProxy(registries.secondary.url, { bytesPerSecond: 25 * MB });
});

afterAll(async () => {
  await link?.stop();
  await registries?.stop();
});

const P = () => registries.primary.url;
const S = () => registries.secondary.url;
const seedOf = (repository: string) => `${repository} layer`;

/** One run of the engine, the secondary reached through the proxy; returns the report and the requests it sent there. */
async function run(repository: string, options: Parameters<typeof syncRepository>[3] = {}) {
  const primary = new RegistryClient({ url: P() });
  const secondary = new RegistryClient({ url: link.url });
  const from = link.log.length;
  try {
    const report = await syncRepository(primary, secondary, validateRepositoryName(repository), options);
    return { report, requests: link.log.slice(from) };
  } finally {
    await Promise.all([primary.close(), secondary.close()]);
  }
}

const chunkStarts = (requests: ThrottleProxy['log']) =>
  requests.filter((r) => r.method === 'PATCH').map((r) => Number(/^(\d+)-/.exec(r.contentRange ?? '')?.[1]));
const sessionStatus = async (location: string) => (await fetch(location.replace(/^http:\/\/[^/]+/, S()))).status;
const far = () => Date.now() + 600_000;

describe('chunked uploads', () => {
  it('are not used without a deadline (the CLI): a big blob goes in one PUT, as before', async () => {
    const image = await pushBigLayerImage(P(), 'plain/app', 'v1', SIZE, seedOf('plain/app'));

    const { report, requests } = await run('plain/app');

    expect(report.status).toBe('synced');
    expect(chunkStarts(requests)).toEqual([]);
    expect(await readTags(S(), 'plain/app')).toEqual({ v1: image.manifest });
  });

  it('stop at the deadline mid-blob: the run is incomplete, not failed, and its session resumes in the next run', async () => {
    const repository = 'paused/app';
    const image = await pushBigLayerImage(P(), repository, 'v1', 40 * MB, seedOf(repository));
    const saved: UploadSession[][] = [];

    const first = await run(repository, { deadline: Date.now() + 1_000, onUploadProgress: async (sessions) => void saved.push(sessions) });

    expect(first.report).toMatchObject({ status: 'incomplete', failed: [], uploads: [{ digest: image.layer, size: 40 * MB }] });
    const session = first.report.uploads![0]!;
    expect(session.offset).toBeGreaterThan(0);
    expect(saved.at(-1)).toEqual([session]);

    const second = await run(repository, { deadline: far(), uploads: first.report.uploads! });

    expect(second.report.status).toBe('synced');
    expect(second.report).not.toHaveProperty('uploads');
    expect(chunkStarts(second.requests)[0]).toBe(session.offset);
    expect(await readTags(S(), repository)).toEqual({ v1: image.manifest });
  });

  it('finish a kept session that holds every byte with the final PUT alone', async () => {
    const repository = 'whole/app';
    const image = await pushBigLayerImage(P(), repository, 'v1', SIZE, seedOf(repository));
    const location = await openUploadSession(link.url, repository, Buffer.concat([...pseudoRandomChunks(SIZE, seedOf(repository))]));
    // The record lags behind the registry (the invocation died before saving): the registry's count wins.
    const kept: UploadSession = { digest: image.layer, location, offset: 30 * MB, size: SIZE, startedAt: Date.now() };

    const { report, requests } = await run(repository, { deadline: far(), uploads: [kept] });

    expect(report.status).toBe('synced');
    expect(chunkStarts(requests)).toEqual([]);
    // One PUT finishes the kept session; the other is the config's (small) monolithic upload.
    expect(requests.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/'))).toHaveLength(2);
    expect(requests.filter((r) => r.method === 'POST')).toHaveLength(1);
    expect(await readTags(S(), repository)).toEqual({ v1: image.manifest });
  });

  it('drop a kept session whose bytes are not the blob (DIGEST_INVALID at the final PUT); the next run copies afresh', async () => {
    const repository = 'wrong/app';
    const image = await pushBigLayerImage(P(), repository, 'v1', SIZE, seedOf(repository));
    const location = await openUploadSession(link.url, repository, Buffer.alloc(SIZE, 1));
    const kept: UploadSession = { digest: image.layer, location, offset: SIZE, size: SIZE, startedAt: Date.now() };

    const first = await run(repository, { deadline: far(), uploads: [kept] });

    expect(first.report.status).toBe('failed');
    expect(first.report.failed[0]!.error).toMatch(/DIGEST_INVALID/);
    expect(first.report).not.toHaveProperty('uploads');
    expect(await sessionStatus(location)).toBe(404);
    const second = await run(repository, { deadline: far() });
    expect(second.report.status).toBe('synced');
    expect(chunkStarts(second.requests)[0]).toBe(0);
  });

  it('cancel a kept session nothing needs any more (the blob is on the secondary already)', async () => {
    const repository = 'present/app';
    const image = await pushBigLayerImage(P(), repository, 'v1', SIZE, seedOf(repository));
    await run(repository);
    const location = await openUploadSession(link.url, repository, Buffer.alloc(MB, 1));
    const kept: UploadSession = { digest: image.layer, location, offset: MB, size: SIZE, startedAt: Date.now() };

    const { report } = await run(repository, { deadline: far(), uploads: [kept] });

    expect(report.status).toBe('synced');
    expect(report).not.toHaveProperty('uploads');
    expect(await sessionStatus(location)).toBe(404);
  });
});
