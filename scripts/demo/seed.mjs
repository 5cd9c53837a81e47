// Pushes small OCI images, indexes and signatures to a registry over the plain distribution API,
// for the demo. The layers are a few bytes of text (the registry never looks inside them).
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

/** The artifact type cosign gives a signature, and the media type of its payload. */
export const SIGNATURE = {
  artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
  payload: 'application/vnd.dev.cosign.simplesigning.v1+json',
};

/** The referrers tag schema's tag for a subject digest: `sha256-<hex>`. */
export const referrersTag = (digest) => digest.replace(':', '-');

/**
 * A cosign-like signature of `subject` ({ digest, bytes, mediaType }), pushed as signing tools push
 * one: an OCI image manifest with `subject` and `artifactType` (its config's mediaType the same, as
 * go-containerregistry reports the type from there) and one small layer, by digest with no tag.
 * With `tagSchema` (a registry without the referrers API) also the image index that lists it,
 * tagged `sha256-<hex of the subject>`. Returns { digest, bytes, mediaType, descriptor, tag }.
 */
export async function pushSignature(url, repository, subject, { tagSchema = false } = {}) {
  const payload = Buffer.from(JSON.stringify({ critical: { image: { 'docker-manifest-digest': subject.digest }, type: 'cosign container image signature' } }));
  const layerDigest = await pushBlob(url, repository, payload);
  const config = Buffer.from('{}');
  const configDigest = await pushBlob(url, repository, config);
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI.manifest,
    artifactType: SIGNATURE.artifactType,
    config: { mediaType: SIGNATURE.artifactType, digest: configDigest, size: config.length },
    layers: [{ mediaType: SIGNATURE.payload, digest: layerDigest, size: payload.length }],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.bytes.length },
  };
  const signature = await pushManifest(url, repository, null, Buffer.from(JSON.stringify(manifest)), OCI.manifest);
  const descriptor = { mediaType: OCI.manifest, digest: signature.digest, size: signature.bytes.length, artifactType: SIGNATURE.artifactType };
  const tag = tagSchema ? referrersTag(subject.digest) : undefined;
  if (tag)
    await pushManifest(url, repository, tag, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI.index, manifests: [descriptor] })), OCI.index);
  return { ...signature, descriptor, tag };
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
