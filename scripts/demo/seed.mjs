// Pushes small OCI images and indexes to a registry over the plain distribution API, for the demo.
// The layers are a few bytes of text (the registry never looks inside them).
import { createHash } from 'node:crypto';

const OCI = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
};

const digestOf = (bytes) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/**
 * One image: a layer from `content`, a config, a manifest. Tagged `tag`, or pushed by digest when
 * `tag` is null. The same content gives the same digest on any registry.
 * Returns { digest, bytes, mediaType }.
 */
export async function pushImage(url, repository, tag, content, platform = { os: 'linux', architecture: 'amd64' }) {
  const layer = Buffer.from(content);
  const layerDigest = await pushBlob(url, repository, layer);
  const config = Buffer.from(JSON.stringify({ ...platform, rootfs: { type: 'layers', diff_ids: [layerDigest] } }));
  const configDigest = await pushBlob(url, repository, config);
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI.manifest,
    config: { mediaType: OCI.config, digest: configDigest, size: config.length },
    layers: [{ mediaType: OCI.layer, digest: layerDigest, size: layer.length }],
  };
  return pushManifest(url, repository, tag, Buffer.from(JSON.stringify(manifest)), OCI.manifest);
}

/** A multi-arch image: one untagged image per platform, and an index over them tagged `tag`. */
export async function pushMultiArch(url, repository, tag, content, architectures = ['amd64', 'arm64']) {
  const manifests = [];
  for (const architecture of architectures) {
    const platform = { os: 'linux', architecture };
    const child = await pushImage(url, repository, null, `${content} ${architecture}`, platform);
    manifests.push({ mediaType: child.mediaType, digest: child.digest, size: child.bytes.length, platform });
  }
  const index = { schemaVersion: 2, mediaType: OCI.index, manifests };
  return pushManifest(url, repository, tag, Buffer.from(JSON.stringify(index)), OCI.index);
}

async function pushBlob(url, repository, bytes) {
  const digest = digestOf(bytes);
  const started = await request('POST', `${url}/v2/${repository}/blobs/uploads/`, 202);
  const location = new URL(started.headers.get('location'), url).toString();
  // The registry keeps its upload state in the query string: append the digest, never rebuild it.
  const target = `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
  await request('PUT', target, 201, { body: bytes, headers: { 'Content-Type': 'application/octet-stream' } });
  return digest;
}

async function pushManifest(url, repository, tag, bytes, mediaType) {
  const digest = digestOf(bytes);
  await request('PUT', `${url}/v2/${repository}/manifests/${tag ?? digest}`, 201, { body: bytes, headers: { 'Content-Type': mediaType } });
  return { digest, bytes, mediaType };
}

async function request(method, target, expected, init = {}) {
  const res = await fetch(target, { method, ...init });
  const text = await res.text();
  if (res.status !== expected) throw new Error(`${method} ${target} -> ${res.status}: ${text.slice(0, 500)}`);
  return res;
}
