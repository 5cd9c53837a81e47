// Plain-HTTP helpers for OCI 1.1 referrers in tests: push artifacts that refer to a manifest
// (`subject`) as cosign, notation and oras do, read them back over the referrers API, and write
// the referrers tag schema index that a registry without the API (docker-registry 2.8) holds instead.
import { MediaType, getManifest, pushBlob, pushManifest, sha256Digest, type PushedManifest } from './seed.js';

/** Artifact types as cosign and SPDX tools push them; the layer type is the payload's own. */
export const Artifact = {
  signature: { artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json', layerMediaType: 'application/vnd.dev.cosign.simplesigning.v1+json' },
  sbom: { artifactType: 'application/spdx+json', layerMediaType: 'application/spdx+json' },
} as const;

/** A referrer as the referrers API lists it, and as the tag schema index holds it. */
export interface ReferrerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface PushedReferrer extends PushedManifest {
  artifactType: string;
  /** The digest of the manifest it refers to. */
  subject: string;
  descriptor: ReferrerDescriptor;
}

export interface PushReferrerOptions {
  /** The one layer's bytes; by default unique to the subject, the artifact type and `seed`. */
  payload?: Uint8Array | string;
  layerMediaType?: string;
  seed?: string;
  /** Put on the manifest; the spec asks a registry to copy them into the referrers list. */
  annotations?: Record<string, string>;
  auth?: string;
}

export interface ReadReferrersOptions {
  /** Sent as `?artifactType=`, and applied here when the registry did not (no `OCI-Filters-Applied`). */
  artifactType?: string;
  auth?: string;
}

const encoder = new TextEncoder();
/** The OCI empty JSON: artifacts carry no configuration, only the config's mediaType. */
const EMPTY_CONFIG = encoder.encode('{}');
const MAX_PAGES = 1000;

/**
 * Pushes an artifact referring to `subject`: an OCI image manifest with `subject`, `artifactType`,
 * a config whose mediaType is the artifact type too (go-containerregistry's registry reports a
 * referrer's type from there) and one small layer. By digest, with no tag, as signing tools do.
 */
export async function pushReferrer(
  url: string,
  repo: string,
  subject: PushedManifest,
  artifactType: string,
  options: PushReferrerOptions = {},
): Promise<PushedReferrer> {
  const { seed = '', auth, annotations } = options;
  const payload = options.payload ?? `${artifactType} for ${subject.digest} seed=${seed}`;
  const layer = typeof payload === 'string' ? encoder.encode(payload) : payload;
  const layerDigest = await pushBlob(url, repo, layer, auth);
  const configDigest = await pushBlob(url, repo, EMPTY_CONFIG, auth);

  const bytes = encoder.encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      artifactType,
      config: { mediaType: artifactType, digest: configDigest, size: EMPTY_CONFIG.length },
      layers: [{ mediaType: options.layerMediaType ?? 'application/octet-stream', digest: layerDigest, size: layer.length }],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.bytes.length },
      ...(annotations && { annotations }),
    }),
  );
  const digest = await pushManifest(url, repo, sha256Digest(bytes), bytes, MediaType.ociManifest, auth);
  return {
    digest,
    bytes,
    mediaType: MediaType.ociManifest,
    artifactType,
    subject: subject.digest,
    descriptor: { mediaType: MediaType.ociManifest, digest, size: bytes.length, artifactType, ...(annotations && { annotations }) },
  };
}

/** A cosign-like signature of `subject` (see pushReferrer). */
export function pushSignature(url: string, repo: string, subject: PushedManifest, options: PushReferrerOptions = {}): Promise<PushedReferrer> {
  return pushReferrer(url, repo, subject, Artifact.signature.artifactType, { layerMediaType: Artifact.signature.layerMediaType, ...options });
}

/** An SPDX SBOM of `subject` (see pushReferrer). */
export function pushSbom(url: string, repo: string, subject: PushedManifest, options: PushReferrerOptions = {}): Promise<PushedReferrer> {
  return pushReferrer(url, repo, subject, Artifact.sbom.artifactType, { layerMediaType: Artifact.sbom.layerMediaType, ...options });
}

/**
 * `GET /v2/<repo>/referrers/<digest>`, every page (`Link: <…>; rel="next"`): the referrers'
 * descriptors, sorted by digest (registries list them in no set order). Throws unless each page
 * answers 200; docker-registry 2.8 answers 404 (no API: read the tag schema instead).
 */
export async function readReferrers(url: string, repo: string, digest: string, options: ReadReferrersOptions = {}): Promise<ReferrerDescriptor[]> {
  const { artifactType, auth } = options;
  const query = artifactType === undefined ? '' : `?artifactType=${encodeURIComponent(artifactType)}`;
  const referrers: ReferrerDescriptor[] = [];
  let next: string | undefined = `${url}/v2/${repo}/referrers/${digest}${query}`;
  for (let page = 1; next; page++) {
    if (page > MAX_PAGES) throw new Error(`GET ${url}/v2/${repo}/referrers/${digest}: more than ${MAX_PAGES} pages (a Link loop?)`);
    const res: Response = await fetch(next, { headers: { Accept: MediaType.ociIndex, ...(auth && { Authorization: auth }) } });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`GET ${next} -> ${res.status}: ${text.slice(0, 2000)}`);
    const index = JSON.parse(text) as { manifests?: ReferrerDescriptor[] };
    const filtered = artifactType !== undefined && !filtersApplied(res.headers).includes('artifactType');
    referrers.push(...(index.manifests ?? []).filter((m) => !filtered || m.artifactType === artifactType));
    next = nextLink(res.headers.get('link'), next);
  }
  return referrers.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
}

/** The referrers tag schema's tag for a subject: `<alg>-<encoded digest, at most 64 characters>`. */
export function referrersTag(subjectDigest: string): string {
  const [algorithm, encoded] = subjectDigest.split(':');
  if (!algorithm || !encoded) throw new Error(`not a digest: ${subjectDigest}`);
  return `${algorithm}-${encoded.slice(0, 64)}`;
}

/**
 * Writes what a client keeps on a registry without the referrers API: an OCI image index listing
 * `referrers`, tagged `referrersTag(subjectDigest)`. Registry 2.8 refuses an index whose manifests
 * it lacks, so push the referrers first.
 */
export async function pushReferrersTagIndex(
  url: string,
  repo: string,
  subjectDigest: string,
  referrers: ReferrerDescriptor[],
  auth?: string,
): Promise<PushedManifest> {
  const bytes = encoder.encode(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: referrers }));
  const digest = await pushManifest(url, repo, referrersTag(subjectDigest), bytes, MediaType.ociIndex, auth);
  return { digest, bytes, mediaType: MediaType.ociIndex };
}

/** The descriptors in a subject's referrers tag schema index, or null when there is no such tag. */
export async function readReferrersTagIndex(url: string, repo: string, subjectDigest: string, auth?: string): Promise<ReferrerDescriptor[] | null> {
  const tag = referrersTag(subjectDigest);
  const manifest = await getManifest(url, repo, tag, auth);
  if (!manifest) return null;
  if (manifest.mediaType !== MediaType.ociIndex) throw new Error(`${repo}:${tag} is ${manifest.mediaType}, not an OCI image index`);
  const index = JSON.parse(new TextDecoder().decode(manifest.bytes)) as { manifests?: ReferrerDescriptor[] };
  return index.manifests ?? [];
}

function filtersApplied(headers: Headers): string[] {
  return (headers.get('oci-filters-applied') ?? '').split(',').map((name) => name.trim());
}

/** `Link: </v2/…>; rel="next"`, possibly relative to the page that sent it. */
function nextLink(link: string | null, base: string): string | undefined {
  const match = link?.match(/<([^>]+)>\s*;\s*rel="?next"?/);
  return match?.[1] ? new URL(match[1], base).toString() : undefined;
}
