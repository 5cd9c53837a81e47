import { createHash } from 'node:crypto';
import { invalidInput } from './errors.js';

/** Media types of the OCI image spec and Docker's schema 2. */
export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

/** Sent on every manifest request: registry 2.8 answers 404 when the OCI types are absent. */
export const MANIFEST_ACCEPT = [MediaType.ociManifest, MediaType.ociIndex, MediaType.dockerManifest, MediaType.dockerManifestList].join(', ');

export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

/** A manifest as the registry holds it: the bytes are the truth (a digest is of the bytes). */
export interface RawManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

/** What a manifest points at: child manifests (index) or blobs (image). */
export interface ManifestReferences {
  kind: 'index' | 'image';
  children: Descriptor[];
  blobs: Descriptor[];
}

const REPOSITORY_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList;
}

export function isSchema1MediaType(mediaType: string): boolean {
  return mediaType === MediaType.dockerSchema1 || mediaType === MediaType.dockerSchema1Signed || mediaType === 'application/json';
}

/**
 * A repository name that passed validateRepositoryName, the only function that makes one, so the
 * compiler checks that a name was validated before the engine acts on it.
 */
export type Repository = string & { readonly __valid: 'Repository' };

/** Validates a repository path against the distribution grammar; the error names what is wrong. */
export function validateRepositoryName(name: string): Repository {
  if (typeof name !== 'string' || name.length === 0) throw invalidInput('INVALID_REPOSITORY', 'repository name is empty');
  if (name.length > 255) throw invalidInput('INVALID_REPOSITORY', `repository name is longer than 255 characters: ${quote(name.slice(0, 40))}...`);
  for (const component of name.split('/')) {
    if (!REPOSITORY_COMPONENT.test(component)) {
      throw invalidInput(
        'INVALID_REPOSITORY',
        `invalid repository name ${quote(name)}: path component ${quote(component)} must be lowercase letters and digits, separated by '.', '_', '__' or '-'`,
      );
    }
  }
  return name as Repository;
}

export function isValidTag(tag: string): boolean {
  return typeof tag === 'string' && TAG.test(tag);
}

export function validateTag(tag: string): string {
  if (!isValidTag(tag)) {
    throw invalidInput(
      'INVALID_TAG',
      `invalid tag ${quote(tag)}: a tag is 1-128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'`,
    );
  }
  return tag;
}

export function isValidDigest(digest: string): boolean {
  return typeof digest === 'string' && DIGEST.test(digest);
}

export function validateDigest(digest: string): string {
  if (!isValidDigest(digest)) throw invalidInput('INVALID_DIGEST', `invalid digest ${quote(digest)}: expected sha256:<64 hex> or sha512:<128 hex>`);
  return digest;
}

export function digestAlgorithm(digest: string): 'sha256' | 'sha512' {
  return digest.startsWith('sha512:') ? 'sha512' : 'sha256';
}

export function digestOf(bytes: Uint8Array, algorithm: 'sha256' | 'sha512' = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

/** Parses the references of a manifest; throws a clear error for bytes that are not a manifest we support. */
export function manifestReferences(manifest: RawManifest): ManifestReferences {
  if (isSchema1MediaType(manifest.mediaType)) {
    throw invalidInput(
      'UNSUPPORTED_MANIFEST',
      `manifest ${manifest.digest} is Docker schema 1 (${manifest.mediaType}), which is unsupported: re-push it as schema 2 or OCI`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(manifest.bytes.toString('utf8'));
  } catch {
    throw invalidInput('INVALID_MANIFEST', `manifest ${manifest.digest} is not valid JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null) throw invalidInput('INVALID_MANIFEST', `manifest ${manifest.digest} is not a JSON object`);
  const body = parsed as { schemaVersion?: unknown; manifests?: unknown; config?: unknown; layers?: unknown };
  if (body.schemaVersion === 1) throw invalidInput('UNSUPPORTED_MANIFEST', `manifest ${manifest.digest} is Docker schema 1, which is unsupported`);
  if (isIndexMediaType(manifest.mediaType)) {
    return { kind: 'index', children: descriptors(body.manifests, manifest.digest), blobs: [] };
  }
  if (manifest.mediaType === MediaType.ociManifest || manifest.mediaType === MediaType.dockerManifest) {
    const config = body.config === undefined ? [] : descriptors([body.config], manifest.digest);
    return { kind: 'image', children: [], blobs: [...config, ...descriptors(body.layers ?? [], manifest.digest)] };
  }
  throw invalidInput('UNSUPPORTED_MANIFEST', `manifest ${manifest.digest} has unsupported media type ${quote(manifest.mediaType)}`);
}

function descriptors(value: unknown, owner: string): Descriptor[] {
  if (!Array.isArray(value)) throw invalidInput('INVALID_MANIFEST', `manifest ${owner} has a malformed descriptor list`);
  return value.map((item: unknown) => {
    const d = item as Partial<Descriptor> | null;
    if (!d || typeof d.digest !== 'string' || !isValidDigest(d.digest) || typeof d.size !== 'number' || d.size < 0 || typeof d.mediaType !== 'string') {
      throw invalidInput('INVALID_MANIFEST', `manifest ${owner} has a malformed descriptor`);
    }
    return d as Descriptor;
  });
}

/** The digest a manifest names as its `subject` (OCI 1.1: what it refers to, a referrer's image), if any. */
export function subjectOf(manifest: RawManifest): string | undefined {
  try {
    const subject = (JSON.parse(manifest.bytes.toString('utf8')) as { subject?: { digest?: unknown } } | null)?.subject?.digest;
    return typeof subject === 'string' && isValidDigest(subject) ? subject : undefined;
  } catch {
    return undefined;
  }
}

/** JSON-quotes a value for messages, so control characters in hostile input stay visible and harmless. */
export function quote(value: string): string {
  return JSON.stringify(String(value).slice(0, 300));
}
