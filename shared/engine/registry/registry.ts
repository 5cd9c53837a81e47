/**
 * What the engine asks of a registry, one method per operation (regclient's `scheme.API`).
 * `RegistryClient` (client.ts) is its implementation over the OCI distribution API; a registry
 * with an API of its own (GitLab's tag list, ECR's) plugs in behind it; tests use an in-memory one.
 * Repository names are the primary's: an implementation puts its `prefix` before each.
 */
import type { Readable } from 'node:stream';
import type { Descriptor, RawManifest } from '../base/oci.js';
import type { UploadSession } from '../sync/upload-session.js';

export interface Registry {
  /** `host[:port]`, for messages and logs. */
  readonly host: string;
  /** Put before every repository name here (a secondary's copies under `dr/`); empty for none. */
  readonly prefix: string;
  /** What this client's run cost here: requests, writes, retries, bytes sent, the in-flight limit reached and ended at. */
  readonly stats: Readonly<TrafficStats>;
  /** The name a repository of the primary has here. */
  at(repository: string): string;
  /** Whether the registry is there (`GET /v2/` answered 200, or 401 asking for credentials); throws when it is not. */
  ping(options?: { timeoutMs?: number }): Promise<void>;
  /** Ends this client's connections. */
  close(): Promise<void>;

  /** Every tag, with its digest where the listing gives it (undefined: HEAD it); null when the repository does not exist. */
  listTagDigests(repository: string, options?: { gitlabApi?: boolean }): Promise<TagListing | null>;
  /** Whether the registry lists the repository at all: only its own "no such repository" is a no. */
  repositoryListed(repository: string): Promise<boolean>;
  /** One page of the repositories here (the catalog), from after `last`. */
  listCatalogPage(options?: { last?: string; pageSize?: number }): Promise<CatalogPage>;

  /** A manifest's descriptor (digest, media type, size) without its body; null when absent. */
  headManifest(repository: string, reference: string): Promise<ManifestHead | null>;
  /** A manifest's exact bytes, checked against its digest; null when absent. */
  getManifest(repository: string, reference: string): Promise<RawManifest | null>;
  /** The manifest types this registry tells of those digests without a request per manifest (ECR's image listing); empty where it tells none. */
  knownMediaTypes(repository: string, digests: readonly string[]): Promise<Map<string, string>>;
  /** Several manifests by digest (the indexes whose children a read follows), each checked against its digest; a digest absent is left out. */
  getManifests(repository: string, digests: readonly string[], concurrency: number): Promise<Map<string, RawManifest>>;
  /** Stores a manifest's bytes as they are, under a tag or its digest. */
  putManifest(repository: string, reference: string, manifest: RawManifest): Promise<void>;
  /** Whether the registry itself says the manifest is not there (absence.ts); an answer that proves nothing throws. */
  provesAbsent(repository: string, reference: string): Promise<boolean>;

  /** Removes a tag alone (OCI tag delete); 'unsupported' when the registry deletes only by digest. */
  deleteTag(repository: string, tag: string): Promise<'deleted' | 'absent' | 'unsupported'>;
  /** Deletes a manifest by digest, with every tag on it; false when it was not there. */
  deleteManifest(repository: string, digest: string): Promise<boolean>;
  /** Deletes a blob; absent or refused is no error. */
  deleteBlob(repository: string, digest: string): Promise<void>;
  /** Whether the registry deletes manifests in the repository, found out without changing anything. */
  probeDeletes(repository: string): Promise<DeleteSupport>;

  /** Whether the registry serves the referrers API (undefined while the repository does not exist there). */
  servesReferrers(repository: string): Promise<boolean | undefined>;
  /** The referrers of a manifest; null without the API, 'unknown' for a repository the registry does not have. */
  listReferrers(repository: string, digest: string): Promise<Referrer[] | null | 'unknown'>;

  /** Whether the blob is in the repository. */
  blobExists(repository: string, digest: string): Promise<boolean>;
  /** Mounts the blob from another repository here known to hold it; false when none is known or the registry declined. */
  mountBlob(repository: string, digest: string): Promise<boolean>;
  /** Opens a blob for streaming, from byte `offset` (default 0). */
  openBlob(repository: string, descriptor: Descriptor, offset?: number): Promise<BlobSource>;
  /** Uploads a blob in one go, opening the source afresh for each attempt; returns the bytes sent. */
  uploadBlob(repository: string, descriptor: Descriptor, open: () => Promise<BlobSource>): Promise<number>;
  /** Uploads a blob in chunks, pausing at the deadline with a session a later run resumes. */
  uploadBlobChunked(
    repository: string,
    descriptor: Descriptor,
    open: (offset: number) => Promise<BlobSource>,
    options: ChunkedUploadOptions,
  ): Promise<ChunkedUpload>;
  /** Uploads small bytes held in memory (a throwaway config); returns their digest. */
  uploadBytes(repository: string, bytes: Buffer): Promise<string>;
  /** Cancels a kept upload session, ignoring errors. */
  cancelUpload(repository: string, location: string): Promise<void>;
}

/** (tag -> digest); undefined where the listing gave no digest. */
export type TagListing = Map<string, string | undefined>;

/** Per-registry request counts of one client, and the in-flight limit it reached (`limitMax`) and ended at (`limitFinal`). */
export interface TrafficStats {
  requests: number;
  writes: number;
  retries: number;
  /** Answers 429 (too many requests) from the registry, retried or not. */
  throttled: number;
  bytesUp: number;
  limitMax: number;
  limitFinal: number;
  /** Calls to the registry's own API beside the registry API (ECR's), where it has one. */
  apiCalls?: number;
}

/** A manifest's descriptor as a HEAD gives it. */
export interface ManifestHead {
  digest: string;
  mediaType: string;
  size: number;
}

/** One manifest that refers to a subject (a signature, an SBOM, an attestation), as a referrers index lists it. */
export interface Referrer {
  digest: string;
  mediaType: string;
  size: number;
  /** The artifact's type: its `artifactType`, else its config's media type (OCI 1.1). Empty when neither is given. */
  artifactType: string;
}

/**
 * What a registry does with our deletes: allowed; refused (delete disabled in its storage config,
 * e.g. docker-registry's packaged default); read-only (every write refused, e.g. in maintenance);
 * unknown when the probe could not tell (removals are then tried, as without a probe).
 */
export type DeleteSupport = 'allowed' | 'refused' | 'read-only' | 'unknown';

export interface CatalogPage {
  repositories: string[];
  /** The `last` to ask for the next page; absent on the last page. */
  next?: string;
}

/** A blob opened for reading: its bytes and how many. */
export interface BlobSource {
  stream: Readable;
  length: number;
}

/** A chunked upload's end in this run: the blob stored, or stopped at the deadline with its session to resume. */
export type ChunkedUpload = { kind: 'done'; bytes: number } | { kind: 'paused'; session: UploadSession; bytes: number };

export interface ChunkedUploadOptions {
  /** A session kept from an earlier invocation; the registry's own offset for it is trusted over the kept one. */
  session?: UploadSession;
  /** Looked at before each chunk: once true, the upload stops and returns its session. */
  pastDeadline: () => boolean;
  /** Ms until the deadline, to size chunks that end near it. */
  msLeft: () => number;
  /** After each chunk the registry acknowledged; awaited, so progress is saved before more is sent. */
  onChunk?: (session: UploadSession) => Promise<void>;
}
