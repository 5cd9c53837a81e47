// The test infrastructure for OCI 1.1 referrers, proved against the real processes: the registry
// that serves the API (go-containerregistry 0.14, test/support/referrers-registry.ts) and
// docker-registry 2.8, which does not and keeps referrers in the tag schema instead.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REFERRERS_REGISTRY_START_TIMEOUT_MS, startReferrersRegistry, type ReferrersRegistry } from './support/referrers-registry.js';
import {
  Artifact,
  pushReferrersTagIndex,
  pushSbom,
  pushSignature,
  readReferrers,
  readReferrersTagIndex,
  referrersTag,
  type PushedReferrer,
} from './support/referrers.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { MediaType, getManifest, manifestExists, pushImage, readTags, sha256Digest, type PushedImage } from './support/seed.js';

const UNKNOWN_DIGEST = sha256Digest('a manifest no registry holds');

describe('go-containerregistry registry with referrers support', () => {
  let registry: ReferrersRegistry;

  beforeAll(async () => {
    registry = await startReferrersRegistry();
  }, REFERRERS_REGISTRY_START_TIMEOUT_MS);
  afterAll(() => registry?.stop());

  /** An image tagged `v1` carrying a signature and an SBOM, pushed as signing tools push them. */
  async function signedImage(repo: string): Promise<{ image: PushedImage; signature: PushedReferrer; sbom: PushedReferrer }> {
    const image = await pushImage(registry.url, repo, 'v1');
    const signature = await pushSignature(registry.url, repo, image);
    const sbom = await pushSbom(registry.url, repo, image);
    return { image, signature, sbom };
  }

  it('answers 200 with an empty image index for a digest nothing refers to', async () => {
    await pushImage(registry.url, 'empty/app', 'v1');

    const res = await fetch(`${registry.url}/v2/empty/app/referrers/${UNKNOWN_DIGEST}`, { headers: { Accept: MediaType.ociIndex } });

    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] });
    // The spec asks for the index media type here; 0.14 sets none, so Go sniffs the body.
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
  });

  it('answers 404 NAME_UNKNOWN for a repository it does not hold: a probe for the API must ask a repository that exists', async () => {
    const res = await fetch(`${registry.url}/v2/never/pushed/referrers/${UNKNOWN_DIGEST}`);

    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ errors: [{ code: 'NAME_UNKNOWN', message: 'Unknown name' }] });
  });

  it('lists pushed referrers with their artifactType, and they hold no tag', async () => {
    const { image, signature, sbom } = await signedImage('listed/app');

    const referrers = await readReferrers(registry.url, 'listed/app', image.digest);

    expect(referrers).toEqual([signature.descriptor, sbom.descriptor].sort((a, b) => (a.digest < b.digest ? -1 : 1)));
    expect(referrers.map((r) => r.artifactType).sort()).toEqual([Artifact.sbom.artifactType, Artifact.signature.artifactType]);
    expect(await readTags(registry.url, 'listed/app')).toEqual({ v1: image.digest });
    expect(await getManifest(registry.url, 'listed/app', signature.digest)).toEqual({
      digest: signature.digest,
      bytes: signature.bytes,
      mediaType: MediaType.ociManifest,
    });
  });

  it('lists a referrer of a referrer under its own subject only', async () => {
    const { image, sbom } = await signedImage('chained/app');
    const sbomSignature = await pushSignature(registry.url, 'chained/app', sbom);

    expect(await readReferrers(registry.url, 'chained/app', sbom.digest)).toEqual([sbomSignature.descriptor]);
    expect((await readReferrers(registry.url, 'chained/app', image.digest)).map((r) => r.digest)).not.toContain(sbomSignature.digest);
  });

  it('drops the annotations of a referrer from the list (the spec asks to keep them)', async () => {
    const image = await pushImage(registry.url, 'annotated/app', 'v1');
    const annotations = { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' };
    const signature = await pushSignature(registry.url, 'annotated/app', image, { annotations });

    const [listed] = await readReferrers(registry.url, 'annotated/app', image.digest);

    expect(signature.descriptor.annotations).toEqual(annotations);
    expect(listed).toEqual({ ...signature.descriptor, annotations: undefined });
    expect(listed).not.toHaveProperty('annotations');
  });

  it('ignores ?artifactType= (no OCI-Filters-Applied header), so readReferrers filters on the client', async () => {
    const { image, signature } = await signedImage('filtered/app');
    const query = `?artifactType=${encodeURIComponent(Artifact.signature.artifactType)}`;

    const raw = await fetch(`${registry.url}/v2/filtered/app/referrers/${image.digest}${query}`);
    const body = (await raw.json()) as { manifests: unknown[] };

    expect(raw.headers.get('oci-filters-applied')).toBeNull();
    expect(body.manifests).toHaveLength(2);
    expect(await readReferrers(registry.url, 'filtered/app', image.digest, { artifactType: Artifact.signature.artifactType })).toEqual([signature.descriptor]);
  });

  it('DELETE by digest of a referrer removes it from the list', async () => {
    const { image, signature, sbom } = await signedImage('deleted/referrer');

    const res = await fetch(`${registry.url}/v2/deleted/referrer/manifests/${signature.digest}`, { method: 'DELETE' });

    expect(res.status).toBe(202);
    expect(await readReferrers(registry.url, 'deleted/referrer', image.digest)).toEqual([sbom.descriptor]);
    expect(await manifestExists(registry.url, 'deleted/referrer', signature.digest)).toBe(false);
  });

  it('DELETE by digest of a subject keeps its tag and its referrers (unlike docker-registry 2.8, which untags)', async () => {
    const { image, signature, sbom } = await signedImage('deleted/subject');

    const res = await fetch(`${registry.url}/v2/deleted/subject/manifests/${image.digest}`, { method: 'DELETE' });

    expect(res.status).toBe(202);
    expect(await manifestExists(registry.url, 'deleted/subject', image.digest)).toBe(false);
    expect(await readTags(registry.url, 'deleted/subject')).toEqual({ v1: image.digest });
    expect((await readReferrers(registry.url, 'deleted/subject', image.digest)).map((r) => r.digest).sort()).toEqual([signature.digest, sbom.digest].sort());
  });

  it('lists a tag schema index as a plain tag, and never as a referrer', async () => {
    const { image, signature, sbom } = await signedImage('tag-schema/app');

    const index = await pushReferrersTagIndex(registry.url, 'tag-schema/app', image.digest, [signature.descriptor, sbom.descriptor]);

    expect(await readTags(registry.url, 'tag-schema/app')).toEqual({ v1: image.digest, [referrersTag(image.digest)]: index.digest });
    expect(await readReferrers(registry.url, 'tag-schema/app', image.digest)).toHaveLength(2);
  });
});

describe("docker-registry 2.8 (Debian's, no referrers API)", () => {
  let registry: TestRegistry;

  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(() => registry?.stop());

  it('answers 404 to GET /v2/<name>/referrers/<digest>, whether the repository exists or not', async () => {
    const image = await pushImage(registry.url, 'plain/app', 'v1');

    for (const path of [`plain/app/referrers/${image.digest}`, `never/pushed/referrers/${UNKNOWN_DIGEST}`]) {
      const res = await fetch(`${registry.url}/v2/${path}`, { headers: { Accept: MediaType.ociIndex } });
      // 2.8 has no such route: Go's plain-text 404 from its router, as for any unknown path (no
      // registry error JSON, no NAME_UNKNOWN), still with the API version header of a v2 registry.
      expect({
        status: res.status,
        type: res.headers.get('content-type'),
        version: res.headers.get('docker-distribution-api-version'),
        body: await res.text(),
      }).toEqual({ status: 404, type: 'text/plain; charset=utf-8', version: 'registry/2.0', body: '404 page not found\n' });
    }
  });

  it('stores referrers pushed by digest and their tag schema index, which readReferrersTagIndex reads back', async () => {
    const image = await pushImage(registry.url, 'schema/app', 'v1');
    const signature = await pushSignature(registry.url, 'schema/app', image);
    const sbom = await pushSbom(registry.url, 'schema/app', image);

    const index = await pushReferrersTagIndex(registry.url, 'schema/app', image.digest, [signature.descriptor, sbom.descriptor]);

    expect(await readReferrersTagIndex(registry.url, 'schema/app', image.digest)).toEqual([signature.descriptor, sbom.descriptor]);
    expect(await readTags(registry.url, 'schema/app')).toEqual({ v1: image.digest, [referrersTag(image.digest)]: index.digest });
    expect(await getManifest(registry.url, 'schema/app', signature.digest)).toEqual({
      digest: signature.digest,
      bytes: signature.bytes,
      mediaType: MediaType.ociManifest,
    });
    expect(await readReferrersTagIndex(registry.url, 'schema/app', UNKNOWN_DIGEST)).toBeNull();
  });
});

describe('readReferrers', () => {
  let server: Server;
  let url: string;
  const first = { mediaType: MediaType.ociManifest, digest: sha256Digest('first'), size: 1, artifactType: Artifact.sbom.artifactType };
  const second = { mediaType: MediaType.ociManifest, digest: sha256Digest('second'), size: 2, artifactType: Artifact.signature.artifactType };

  // go-containerregistry never pages its list, so a stand-in that does: two pages, a relative Link.
  beforeAll(async () => {
    server = createServer((req, res) => {
      const secondPage = req.url?.includes('page=2');
      if (!secondPage) res.setHeader('Link', `</v2/paged/app/referrers/${UNKNOWN_DIGEST}?page=2>; rel="next"`);
      res.setHeader('Content-Type', MediaType.ociIndex);
      res.end(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [secondPage ? first : second] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('follows Link pagination and returns every page, sorted by digest', async () => {
    const expected = [first, second].sort((a, b) => (a.digest < b.digest ? -1 : 1));

    expect(await readReferrers(url, 'paged/app', UNKNOWN_DIGEST)).toEqual(expected);
  });
});
