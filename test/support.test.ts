// Smoke test of the integration harness itself, against real docker-registry 2.8.2 processes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, startRegistryPair, type RegistryPair } from './support/registry.js';
import {
  MediaType,
  basicAuth,
  blobExists,
  deleteBlob,
  deleteManifest,
  getManifest,
  manifestExists,
  pushBlobStream,
  pushImage,
  pushManifest,
  pushMultiArch,
  readTags,
  sha256Digest,
} from './support/seed.js';

const REPO = 'group/sub/app';

describe('registry pair + seeding helpers', () => {
  let pair: RegistryPair;
  beforeAll(async () => {
    pair = await startRegistryPair();
  });
  afterAll(async () => {
    await pair?.stop();
  });

  it('seeds OCI, Docker v2, OCI index and Docker list and reads them back', async () => {
    const url = pair.primary.url;
    const oci = await pushImage(url, REPO, 'oci', { seed: 's1' });
    const docker = await pushImage(url, REPO, 'docker', { format: 'docker', seed: 's1' });
    const multiOci = await pushMultiArch(url, REPO, 'multi-oci', 'oci', 's1');
    const multiDocker = await pushMultiArch(url, REPO, 'multi-docker', 'docker', 's1');

    expect(oci.digest).toBe(sha256Digest(oci.bytes));
    expect(oci.mediaType).toBe(MediaType.ociManifest);
    expect(docker.mediaType).toBe(MediaType.dockerManifest);
    expect(multiOci.index.mediaType).toBe(MediaType.ociIndex);
    expect(multiDocker.index.mediaType).toBe(MediaType.dockerList);

    // Index children are pushed by digest only, so they are not tags.
    expect(await readTags(url, REPO)).toEqual({
      docker: docker.digest,
      'multi-docker': multiDocker.index.digest,
      'multi-oci': multiOci.index.digest,
      oci: oci.digest,
    });

    for (const [tag, pushed] of [
      ['oci', oci],
      ['docker', docker],
      ['multi-oci', multiOci.index],
      ['multi-docker', multiDocker.index],
    ] as const) {
      const got = await getManifest(url, REPO, tag);
      expect(got?.mediaType).toBe(pushed.mediaType);
      expect(got?.digest).toBe(pushed.digest);
      expect(Buffer.from(got!.bytes).equals(Buffer.from(pushed.bytes))).toBe(true);
    }
    for (const child of multiDocker.children) {
      expect(await manifestExists(url, REPO, child.digest)).toBe(true);
      expect(child.mediaType).toBe(MediaType.dockerManifest);
    }

    expect(await blobExists(url, REPO, oci.configDigest)).toBe(true);
    expect(await blobExists(url, REPO, oci.layerDigests[0]!)).toBe(true);
    expect(await blobExists(url, REPO, sha256Digest('never pushed'))).toBe(false);
    await deleteBlob(url, REPO, oci.layerDigests[0]!);
    expect(await blobExists(url, REPO, oci.layerDigests[0]!)).toBe(false);

    // The secondary is untouched: an unknown repository reads as no tags.
    expect(await readTags(pair.secondary.url, REPO)).toEqual({});
    expect(await getManifest(pair.secondary.url, REPO, 'oci')).toBeNull();
  });

  it('on registry 2.8.2, deleting a manifest by digest removes every tag pointing at it', async () => {
    const url = pair.primary.url;
    const repo = 'quirk/delete';
    const image = await pushImage(url, repo, 'one', { seed: 'quirk' });
    await pushManifest(url, repo, 'two', image.bytes, image.mediaType);
    const other = await pushImage(url, repo, 'other', { seed: 'quirk' });
    expect(await readTags(url, repo)).toEqual({ one: image.digest, two: image.digest, other: other.digest });

    // Quirk: there is no "untag" in 2.8.2; DELETE by digest drops the manifest AND both tags.
    await deleteManifest(url, repo, image.digest);
    expect(await readTags(url, repo)).toEqual({ other: other.digest });
    expect(await manifestExists(url, repo, image.digest)).toBe(false);
    // Blobs stay until garbage collection.
    expect(await blobExists(url, repo, image.configDigest)).toBe(true);

    // With the last tag gone, tags/list answers {"tags": null} (not 404), which reads as empty.
    await deleteManifest(url, repo, other.digest);
    expect(await readTags(url, repo)).toEqual({});
  });

  it('streams a large blob in chunks', async () => {
    const size = 9 * 1024 * 1024 + 7; // three PATCH chunks, the last one partial
    const digest = await pushBlobStream(pair.primary.url, 'big/blob', size, 'stream-seed');
    const res = await fetch(`${pair.primary.url}/v2/big/blob/blobs/${digest}`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(size));
    // Deterministic: the same seed gives the same digest.
    expect(await pushBlobStream(pair.secondary.url, 'big/blob', size, 'stream-seed')).toBe(digest);
  });
});

describe('htpasswd registry', () => {
  it('requires Basic credentials', async () => {
    const registry = await startRegistry({ htpasswd: { username: 'alice', password: 's3cret' } });
    try {
      const anonymous = await fetch(`${registry.url}/v2/`);
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic /);

      const wrong = await fetch(`${registry.url}/v2/`, { headers: { Authorization: basicAuth('alice', 'nope') } });
      expect(wrong.status).toBe(401);

      const auth = basicAuth('alice', 's3cret');
      const ok = await fetch(`${registry.url}/v2/`, { headers: { Authorization: auth } });
      expect(ok.status).toBe(200);

      const image = await pushImage(registry.url, 'private/app', 'v1', { auth });
      expect(await readTags(registry.url, 'private/app', auth)).toEqual({ v1: image.digest });
      await expect(readTags(registry.url, 'private/app')).rejects.toThrow(/GET .* -> 401/);
    } finally {
      await registry.stop();
    }
  });
});
