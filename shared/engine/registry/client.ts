import type { Readable } from 'node:stream';
import type { Descriptor, RawManifest } from '../oci.js';
import type { UploadSession } from '../upload-session.js';
import { Blobs, KnownBlobs } from './blobs.js';
import { Catalog, type CatalogPage } from './catalog.js';
import { Deletes, type DeleteSupport } from './deletes.js';
import { Manifests, type ManifestHead } from './manifests.js';
import { Referrers, type Referrer } from './referrers.js';
import { Tags } from './tags.js';
import { Transport, type RegistryEndpoint, type TransportOptions } from './transport.js';
import { Uploads, type ChunkedUpload, type ChunkedUploadOptions } from './uploads.js';

export type { CatalogPage } from './catalog.js';
export { DELETE_PROBE_DIGEST, type DeleteSupport } from './deletes.js';
export type { ManifestHead } from './manifests.js';
export type { Referrer } from './referrers.js';
export { nextLink } from './responses.js';
export type { ChunkedUpload, ChunkedUploadOptions } from './uploads.js';

type BlobSource = { stream: Readable; length: number };

/**
 * What a registry can do, one method per operation of the OCI distribution API, each written in
 * the module of its resource (tags.ts, catalog.ts, manifests.ts, blobs.ts, uploads.ts,
 * deletes.ts). Those only describe requests; the Transport sends them. One client lives for one
 * run, so its caches (blob existence, tag-delete support) never outlive what they describe by much.
 */
export class RegistryClient {
  readonly transport: Transport;
  private readonly tags: Tags;
  private readonly catalog: Catalog;
  private readonly manifests: Manifests;
  private readonly blobs: Blobs;
  private readonly uploads: Uploads;
  private readonly deletes: Deletes;
  private readonly referrers: Referrers;
  /**
   * Put before every repository name this client is given (a secondary's copies under `dr/`):
   * callers speak the primary's names, every request and every name this client knows of (a
   * mount's source) is under the prefix, so nothing outside it is ever read or written.
   */
  readonly prefix: string;

  constructor(endpoint: RegistryEndpoint, options: TransportOptions & { prefix?: string } = {}) {
    this.prefix = options.prefix ?? '';
    this.transport = new Transport(endpoint, options);
    const known = new KnownBlobs();
    this.tags = new Tags(this.transport);
    this.catalog = new Catalog(this.transport);
    this.manifests = new Manifests(this.transport);
    this.blobs = new Blobs(this.transport, known);
    this.uploads = new Uploads(this.transport, known);
    this.deletes = new Deletes(this.transport, known);
    this.referrers = new Referrers(this.transport);
  }

  /** The name a repository of the primary has here. */
  at(repository: string): string {
    return this.prefix + repository;
  }

  get host(): string {
    return this.transport.host;
  }

  close(): Promise<void> {
    return this.transport.close();
  }

  // Tags and the catalog.

  /** All tags of a repository; null when the registry says it does not exist. */
  listTags(repository: string): Promise<string[] | null> {
    return this.tags.listTags(this.at(repository));
  }

  /** A tag listing whose first page is asked for now, the rest when read (see Tags.beginListTags). */
  beginListTags(repository: string): { read(): Promise<string[] | null> } {
    return this.tags.beginListTags(this.at(repository));
  }

  /** The GitLab probe's answer once it came; undefined before (or when never probed). */
  get gitlabTagApiKnown(): boolean | undefined {
    return this.tags.gitlabTagApiKnown;
  }

  /** Whether GitLab's tag API (tags with digests) answers here; probed once. */
  hasGitlabTagApi(): Promise<boolean> {
    return this.tags.hasGitlabTagApi();
  }

  /** (tag -> digest) from GitLab's tag API; null when that API does not know the repository. */
  listTagDigestsGitlab(repository: string): Promise<Map<string, string> | null> {
    return this.tags.listTagDigestsGitlab(this.at(repository));
  }

  /** Whether the registry lists the repository (its own NAME_UNKNOWN is the only "no"). */
  repositoryListed(repository: string): Promise<boolean> {
    return this.tags.repositoryListed(this.at(repository));
  }

  /** One page of the catalog, from after `last`. */
  listCatalogPage(options: { last?: string; pageSize?: number } = {}): Promise<CatalogPage> {
    return this.catalog.listCatalogPage(options);
  }

  // Manifests.

  /** Digest, media type and size of a manifest without its body; null when absent. */
  headManifest(repository: string, reference: string): Promise<ManifestHead | null> {
    return this.manifests.headManifest(this.at(repository), reference);
  }

  /** The manifest's exact bytes, checked against its digest; null when absent. */
  getManifest(repository: string, reference: string): Promise<RawManifest | null> {
    return this.manifests.getManifest(this.at(repository), reference);
  }

  /** Whether a GET proves the manifest absent (the registry's own MANIFEST_UNKNOWN); a bare 404 throws. */
  provesAbsent(repository: string, reference: string): Promise<boolean> {
    return this.manifests.provesAbsent(this.at(repository), reference);
  }

  /** Stores a manifest's bytes as they are, under a tag or its digest. */
  putManifest(repository: string, reference: string, manifest: RawManifest): Promise<void> {
    return this.manifests.putManifest(this.at(repository), reference, manifest);
  }

  // Referrers (OCI 1.1).

  /** Whether the registry serves the referrers API; asked once per run (undefined while the repository does not exist there). */
  servesReferrers(repository: string): Promise<boolean | undefined> {
    return this.referrers.serves(this.at(repository));
  }

  /** The referrers of a manifest, every page; null without the API, 'unknown' for a repository the registry does not have. */
  listReferrers(repository: string, digest: string): Promise<Referrer[] | null | 'unknown'> {
    return this.referrers.list(this.at(repository), digest);
  }

  // Blobs.

  /** Whether the blob is in the repository; asked once per run. */
  blobExists(repository: string, digest: string): Promise<boolean> {
    return this.blobs.blobExists(this.at(repository), digest);
  }

  /** Another repository of this registry known to hold the blob, to mount from. */
  blobHome(digest: string, except: string): string | undefined {
    const home = this.blobs.blobHome(digest, this.at(except));
    return home?.slice(this.prefix.length);
  }

  /** Opens a blob for streaming. */
  openBlob(repository: string, descriptor: Descriptor): Promise<BlobSource> {
    return this.blobs.openBlob(this.at(repository), descriptor);
  }

  /** Opens a blob from byte `offset`. */
  openBlobAt(repository: string, descriptor: Descriptor, offset: number): Promise<BlobSource> {
    return this.blobs.openBlobAt(this.at(repository), descriptor, offset);
  }

  // Uploads.

  /** Cross-repository mount; false when the registry declined (the caller uploads). */
  mountBlob(repository: string, digest: string, from: string): Promise<boolean> {
    return this.uploads.mountBlob(this.at(repository), digest, this.at(from));
  }

  /** Uploads a blob in one request, opening the source afresh for each attempt; returns the bytes sent. */
  uploadBlob(repository: string, descriptor: Descriptor, open: () => Promise<BlobSource>): Promise<number> {
    return this.uploads.uploadBlob(this.at(repository), descriptor, open);
  }

  /** Uploads a blob in chunks, pausing at the deadline with a session a later run resumes. */
  uploadBlobChunked(
    repository: string,
    descriptor: Descriptor,
    open: (offset: number) => Promise<BlobSource>,
    options: ChunkedUploadOptions,
  ): Promise<ChunkedUpload> {
    return this.uploads.uploadBlobChunked(this.at(repository), descriptor, open, options);
  }

  /** A kept upload session as the registry holds it now; undefined when it is gone. */
  resumeSession(repository: string, session: UploadSession): Promise<UploadSession | undefined> {
    return this.uploads.resumeSession(this.at(repository), session);
  }

  /** Uploads small bytes held in memory; returns their digest. */
  uploadBytes(repository: string, bytes: Buffer): Promise<string> {
    return this.uploads.uploadBytes(this.at(repository), bytes);
  }

  /** Cancels an upload session, ignoring errors. */
  cancelUpload(repository: string, location: string): Promise<void> {
    return this.uploads.cancelUpload(this.at(repository), location);
  }

  // Deletes.

  /** Deletes a manifest by digest (which, on registry 2.8, untags every tag on it). */
  deleteManifest(repository: string, digest: string): Promise<boolean> {
    return this.deletes.deleteManifest(this.at(repository), digest);
  }

  /** OCI tag deletion; 'unsupported' when the registry refuses to delete by tag. */
  deleteTag(repository: string, tag: string): Promise<'deleted' | 'absent' | 'unsupported'> {
    return this.deletes.deleteTag(this.at(repository), tag);
  }

  /** Deletes a blob. */
  deleteBlob(repository: string, digest: string): Promise<void> {
    return this.deletes.deleteBlob(this.at(repository), digest);
  }

  /** Whether this registry deletes manifests in the repository, found out without changing anything. */
  probeDeletes(repository: string): Promise<DeleteSupport> {
    return this.deletes.probeDeletes(this.at(repository));
  }
}
