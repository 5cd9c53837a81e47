// Plain-HTTP helpers to seed registries and read back their real state in tests.
// Each takes an optional `auth` (a full Authorization header value, e.g. from basicAuth()).
import { createCipheriv, createHash } from 'node:crypto';

export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** Registry 2.8.2 answers 404 to manifest requests whose Accept lacks the OCI types, so always send all. */
export const MANIFEST_ACCEPT = [MediaType.ociManifest, MediaType.ociIndex, MediaType.dockerManifest, MediaType.dockerList].join(', ');

export type Format = 'oci' | 'docker';
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}
export interface PushedManifest {
  digest: string;
  bytes: Uint8Array;
  mediaType: string;
}
export interface PushedImage extends PushedManifest {
  configDigest: string;
  layerDigests: string[];
  platform: Platform;
}
export interface PushImageOptions {
  format?: Format;
  /** Default: one small layer unique to repo+tag+seed+platform. */
  layers?: Uint8Array[];
  seed?: string;
  /** Put first, before the other layers, like a common base layer. */
  sharedLayer?: Uint8Array;
  platform?: Platform;
  auth?: string;
}
export interface IndexChild {
  digest: string;
  bytes: Uint8Array;
  mediaType: string;
  platform?: Platform;
}

const UPLOAD_CHUNK = 4 * 1024 * 1024;
const HEAD_CONCURRENCY = 16;
const encoder = new TextEncoder();

export function sha256Digest(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function basicAuth(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

/**
 * Deterministic pseudo-random bytes for `seed`, yielded in chunks so huge blobs never sit in memory.
 * AES-256-CTR keyed by sha256(seed): same stream for any chunk size, and far faster than hashing counters.
 */
export function* pseudoRandomChunks(size: number, seed: string, chunkSize = UPLOAD_CHUNK): Generator<Buffer> {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(Math.min(chunkSize, size));
  for (let left = size; left > 0;) {
    const n = Math.min(left, chunkSize);
    yield cipher.update(zeros.subarray(0, n));
    left -= n;
  }
}

export async function pushBlob(url: string, repo: string, bytes: Uint8Array, auth?: string): Promise<string> {
  const digest = sha256Digest(bytes);
  const location = await startUpload(url, repo, auth);
  await request('PUT', withDigest(location, digest), [201], {
    auth,
    body: bytes,
    headers: { 'Content-Type': 'application/octet-stream' },
  });
  return digest;
}

/** Uploads `size` bytes of pseudoRandomChunks(size, seed) in PATCH chunks; returns the digest computed on the fly. */
export async function pushBlobStream(url: string, repo: string, size: number, seed: string, auth?: string): Promise<string> {
  let location = await startUpload(url, repo, auth);
  const hash = createHash('sha256');
  let offset = 0;
  for (const chunk of pseudoRandomChunks(size, seed)) {
    hash.update(chunk);
    const res = await request('PATCH', location, [202], {
      auth,
      body: chunk,
      headers: {
        'Content-Type': 'application/octet-stream',
        'Content-Range': `${offset}-${offset + chunk.length - 1}`,
      },
    });
    offset += chunk.length;
    location = locationOf(res, location); // the upload state token changes with every chunk
  }
  const digest = `sha256:${hash.digest('hex')}`;
  await request('PUT', withDigest(location, digest), [201], { auth });
  return digest;
}

/**
 * An image whose one layer is `size` deterministic bytes of pseudoRandomChunks(size, seed), streamed
 * to the registry in chunks (never held whole). Returns the layer's and the manifest's digests.
 */
export async function pushBigLayerImage(url: string, repo: string, tag: string, size: number, seed: string): Promise<{ layer: string; manifest: string }> {
  const layer = await pushBlobStream(url, repo, size, seed);
  const config = encoder.encode(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer] } }));
  const configDigest = await pushBlob(url, repo, config);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: configDigest, size: config.length },
    layers: [{ mediaType: MediaType.ociLayer, digest: layer, size }],
  });
  return { layer, manifest: await pushManifest(url, repo, tag, manifest, MediaType.ociManifest) };
}

/** Starts an upload session holding `bytes` (chunk PATCH, no final PUT); returns its newest Location, absolute. */
export async function openUploadSession(url: string, repo: string, bytes: Uint8Array): Promise<string> {
  const location = await startUpload(url, repo);
  const res = await request('PATCH', location, [202], {
    body: bytes,
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${bytes.length - 1}` },
  });
  return locationOf(res, location);
}

export async function pushManifest(
  url: string,
  repo: string,
  reference: string,
  bytes: Uint8Array | string,
  mediaType: string,
  auth?: string,
): Promise<string> {
  const target = `${url}/v2/${repo}/manifests/${reference}`;
  const res = await request('PUT', target, [201], {
    auth,
    body: typeof bytes === 'string' ? encoder.encode(bytes) : bytes,
    headers: { 'Content-Type': mediaType },
  });
  const digest = res.headers.get('docker-content-digest');
  if (!digest) throw new Error(`PUT ${target} -> ${res.status}: no Docker-Content-Digest header`);
  return digest;
}

/** Pushes config + layers + an image manifest; by tag, or by digest only when `tag` is null. */
export async function pushImage(url: string, repo: string, tag: string | null, options: PushImageOptions = {}): Promise<PushedImage> {
  const { format = 'oci', seed = '', auth } = options;
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const types =
    format === 'oci'
      ? { manifest: MediaType.ociManifest, config: MediaType.ociConfig, layer: MediaType.ociLayer }
      : { manifest: MediaType.dockerManifest, config: MediaType.dockerConfig, layer: MediaType.dockerLayer };

  const own = options.layers ?? [encoder.encode(`layer ${repo}:${tag ?? '<untagged>'} seed=${seed} ${platformString(platform)}`)];
  const layers = options.sharedLayer ? [options.sharedLayer, ...own] : own;
  const layerDigests: string[] = [];
  for (const layer of layers) layerDigests.push(await pushBlob(url, repo, layer, auth));

  // Layers are not really gzipped tarballs; the registry never looks inside them.
  const config = encoder.encode(
    JSON.stringify({
      ...platform,
      config: { Labels: { 'test.seed': seed } },
      rootfs: { type: 'layers', diff_ids: layerDigests },
    }),
  );
  const configDigest = await pushBlob(url, repo, config, auth);

  const bytes = encoder.encode(
    JSON.stringify(
      {
        schemaVersion: 2,
        mediaType: types.manifest,
        config: { mediaType: types.config, digest: configDigest, size: config.length },
        layers: layers.map((layer, i) => ({ mediaType: types.layer, digest: layerDigests[i], size: layer.length })),
      },
      null,
      2,
    ),
  );
  const digest = await pushManifest(url, repo, tag ?? sha256Digest(bytes), bytes, types.manifest, auth);
  return { digest, bytes, mediaType: types.manifest, configDigest, layerDigests, platform };
}

/** Pushes an OCI index or Docker manifest list over already-pushed children. */
export async function pushIndex(url: string, repo: string, tag: string | null, children: IndexChild[], format: Format, auth?: string): Promise<PushedManifest> {
  const mediaType = format === 'oci' ? MediaType.ociIndex : MediaType.dockerList;
  const manifests = children.map((child) => {
    // Docker manifest lists require a platform for every entry.
    const platform = child.platform ?? (format === 'docker' ? { os: 'linux', architecture: 'amd64' } : undefined);
    return { mediaType: child.mediaType, digest: child.digest, size: child.bytes.length, ...(platform && { platform }) };
  });
  const bytes = encoder.encode(JSON.stringify({ schemaVersion: 2, mediaType, manifests }, null, 2));
  const digest = await pushManifest(url, repo, tag ?? sha256Digest(bytes), bytes, mediaType, auth);
  return { digest, bytes, mediaType };
}

/** Two untagged platform images (linux/amd64, linux/arm64) plus a tagged index over them. */
export async function pushMultiArch(
  url: string,
  repo: string,
  tag: string | null,
  format: Format,
  seed = '',
  auth?: string,
): Promise<{ index: PushedManifest; children: PushedImage[] }> {
  const children: PushedImage[] = [];
  for (const architecture of ['amd64', 'arm64']) {
    // The tag goes into the seed so each multi-arch tag gets its own children.
    const childSeed = `${seed} multiarch=${tag ?? '<untagged>'}`;
    children.push(await pushImage(url, repo, null, { format, seed: childSeed, platform: { os: 'linux', architecture }, auth }));
  }
  const index = await pushIndex(url, repo, tag, children, format, auth);
  return { index, children };
}

/** The real tag -> digest state: tags/list (all pages), then HEAD per tag. Missing repo = {}. */
export async function readTags(url: string, repo: string, auth?: string): Promise<Record<string, string>> {
  const tags: string[] = [];
  let next: string | undefined = `${url}/v2/${repo}/tags/list`;
  while (next) {
    const res: HttpResult = await request('GET', next, [200, 404], { auth });
    if (res.status === 404) {
      if (tags.length === 0 && res.text.includes('NAME_UNKNOWN')) return {};
      throw httpError('GET', next, res);
    }
    const body = JSON.parse(res.text) as { tags?: string[] | null };
    tags.push(...(body.tags ?? []));
    next = nextLink(res.headers.get('link'), next);
  }

  const result: Record<string, string> = {};
  for (let i = 0; i < tags.length; i += HEAD_CONCURRENCY) {
    await Promise.all(
      tags.slice(i, i + HEAD_CONCURRENCY).map(async (tag) => {
        const target = `${url}/v2/${repo}/manifests/${tag}`;
        const res = await request('HEAD', target, [200, 404], { auth, headers: { Accept: MANIFEST_ACCEPT } });
        if (res.status === 404) return; // deleted since the listing
        const digest = res.headers.get('docker-content-digest');
        if (!digest) throw new Error(`HEAD ${target} -> ${res.status}: no Docker-Content-Digest header`);
        result[tag] = digest;
      }),
    );
  }
  // Sorted keys make toEqual failures easier to read.
  return Object.fromEntries(Object.entries(result).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export async function getManifest(url: string, repo: string, reference: string, auth?: string): Promise<PushedManifest | null> {
  const target = `${url}/v2/${repo}/manifests/${reference}`;
  const res = await request('GET', target, [200, 404], { auth, headers: { Accept: MANIFEST_ACCEPT } });
  if (res.status === 404) return null;
  return {
    bytes: res.body,
    mediaType: res.headers.get('content-type') ?? '',
    digest: res.headers.get('docker-content-digest') ?? sha256Digest(res.body),
  };
}

export async function manifestExists(url: string, repo: string, digest: string, auth?: string): Promise<boolean> {
  const target = `${url}/v2/${repo}/manifests/${digest}`;
  const res = await request('HEAD', target, [200, 404], { auth, headers: { Accept: MANIFEST_ACCEPT } });
  return res.status === 200;
}

export async function blobExists(url: string, repo: string, digest: string, auth?: string): Promise<boolean> {
  const res = await request('HEAD', `${url}/v2/${repo}/blobs/${digest}`, [200, 404], { auth });
  return res.status === 200;
}

export async function deleteBlob(url: string, repo: string, digest: string, auth?: string): Promise<void> {
  await request('DELETE', `${url}/v2/${repo}/blobs/${digest}`, [202], { auth });
}

/** Note: on registry 2.8.2 this also removes every tag pointing at the manifest. */
export async function deleteManifest(url: string, repo: string, digest: string, auth?: string): Promise<void> {
  await request('DELETE', `${url}/v2/${repo}/manifests/${digest}`, [202], { auth });
}

// ---------------------------------------------------------------------------------------------

interface HttpResult {
  status: number;
  headers: Headers;
  body: Uint8Array;
  text: string;
  url: string;
}

interface HttpInit {
  auth?: string | undefined;
  body?: Uint8Array;
  headers?: Record<string, string>;
}

/** One HTTP exchange with the body fully read (so keep-alive connections are released). */
async function request(method: string, target: string, expected: number[], init: HttpInit = {}): Promise<HttpResult> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.auth) headers.Authorization = init.auth;
  // Cast: the DOM typings reject views that might sit on a SharedArrayBuffer; ours never do.
  const body = init.body as Uint8Array<ArrayBuffer> | undefined;
  const res = await fetch(target, { method, headers, body, redirect: 'manual' });
  const bytes = new Uint8Array(await res.arrayBuffer());
  const result = { status: res.status, headers: res.headers, body: bytes, text: new TextDecoder().decode(bytes), url: target };
  if (!expected.includes(res.status)) throw httpError(method, target, result);
  return result;
}

function httpError(method: string, target: string, res: HttpResult): Error {
  return new Error(`${method} ${target} -> ${res.status}: ${res.text.slice(0, 2000)}`);
}

async function startUpload(url: string, repo: string, auth?: string): Promise<string> {
  const res = await request('POST', `${url}/v2/${repo}/blobs/uploads/`, [202], { auth });
  return locationOf(res, res.url);
}

/** Location may be relative to the request URL. */
function locationOf(res: HttpResult, base: string): string {
  const location = res.headers.get('location');
  if (!location) throw new Error(`${res.url} -> ${res.status}: no Location header`);
  return new URL(location, base).toString();
}

/** Location may already carry a query string (2.8.2 puts upload state in `_state`). */
function withDigest(location: string, digest: string): string {
  // Appended rather than rebuilt via URLSearchParams, which would re-encode the opaque state.
  return `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
}

/** Parses `Link: </v2/...?last=x&n=y>; rel="next"` (possibly relative). */
function nextLink(link: string | null, base: string): string | undefined {
  const match = link?.match(/<([^>]+)>\s*;\s*rel="?next"?/);
  return match?.[1] ? new URL(match[1], base).toString() : undefined;
}

function platformString(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}
