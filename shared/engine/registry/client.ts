/** `RegistryClient`: the `Registry` over the OCI distribution API (registry.ts says what each operation means). */
import type { Descriptor, RawManifest } from '../base/oci.js';
import { Blobs, KnownBlobs } from './blobs.js';
import { Catalog } from './catalog.js';
import { Deletes } from './deletes.js';
import { Manifests, manifestsOneByOne } from './manifests.js';
import { Referrers } from './referrers.js';
import type {
  BlobSource,
  CatalogPage,
  ChunkedUpload,
  ChunkedUploadOptions,
  DeleteSupport,
  ManifestHead,
  Referrer,
  Registry,
  TagListing,
  TrafficStats,
} from './registry.js';
import { Tags } from './tags.js';
import { Transport, type RegistryEndpoint, type TransportOptions } from './transport.js';
import { Uploads } from './uploads.js';

export { DELETE_PROBE_DIGEST } from './deletes.js';

/**
 * The Registry over the OCI distribution API, one method per operation, each written in the
 * module of its resource (tags.ts, catalog.ts, manifests.ts, blobs.ts, uploads.ts, deletes.ts,
 * referrers.ts). Those only describe requests; the Transport, private to this client, sends them.
 * GitLab's tag API (tags with digests) is a capability behind `listTagDigests`. One client lives
 * for one run, so its caches (blob existence, tag-delete support) never outlive what they describe by much.
 */
export class RegistryClient implements Registry {
  private readonly transport: Transport;
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

  at(repository: string): string {
    return this.prefix + repository;
  }

  get host(): string {
    return this.transport.host;
  }

  get stats(): Readonly<TrafficStats> {
    return this.transport.stats;
  }

  /** Requests allowed in flight now (limit.ts); for tests and tuning, beyond the Registry interface. */
  get concurrencyLimit(): number {
    return this.transport.concurrencyLimit;
  }

  /** Requests in flight now, streamed bodies not yet read counted; for tests, beyond the Registry interface. */
  get requestsInFlight(): number {
    return this.transport.requestsInFlight;
  }

  async ping(options: { timeoutMs?: number } = {}): Promise<void> {
    await this.transport.send({ method: 'GET', target: '/v2/', scopes: [], expect: [200, 401], timeoutMs: options.timeoutMs ?? 5_000 });
  }

  close(): Promise<void> {
    return this.transport.close();
  }

  // Tags and the catalog.

  /** The tag names of a repository by the plain OCI tag list; null when the registry says it does not exist. */
  listTags(repository: string): Promise<string[] | null> {
    return this.tags.listTags(this.at(repository));
  }

  listTagDigests(repository: string, options: { gitlabApi?: boolean } = {}): Promise<TagListing | null> {
    return this.tags.listTagDigests(this.at(repository), { ...options, named: repository });
  }

  /** Whether GitLab's tag API (tags with digests) answers here; probed once. The capability behind listTagDigests. */
  hasGitlabTagApi(): Promise<boolean> {
    return this.tags.hasGitlabTagApi();
  }

  repositoryListed(repository: string): Promise<boolean> {
    return this.tags.repositoryListed(this.at(repository));
  }

  listCatalogPage(options: { last?: string; pageSize?: number } = {}): Promise<CatalogPage> {
    return this.catalog.listCatalogPage(options);
  }

  // Manifests.

  headManifest(repository: string, reference: string): Promise<ManifestHead | null> {
    return this.manifests.headManifest(this.at(repository), reference);
  }

  getManifest(repository: string, reference: string): Promise<RawManifest | null> {
    return this.manifests.getManifest(this.at(repository), reference);
  }

  /** None: the registry API tells a manifest's type only by a request for it (a HEAD). */
  async knownMediaTypes(): Promise<Map<string, string>> {
    return new Map();
  }

  /** One GET per digest, `concurrency` at a time: the registry API has no batch read. */
  getManifests(repository: string, digests: readonly string[], concurrency: number): Promise<Map<string, RawManifest>> {
    return manifestsOneByOne((digest) => this.getManifest(repository, digest), digests, concurrency);
  }

  provesAbsent(repository: string, reference: string): Promise<boolean> {
    return this.manifests.provesAbsent(this.at(repository), reference);
  }

  putManifest(repository: string, reference: string, manifest: RawManifest): Promise<void> {
    return this.manifests.putManifest(this.at(repository), reference, manifest);
  }

  // Referrers (OCI 1.1).

  servesReferrers(repository: string): Promise<boolean | undefined> {
    return this.referrers.serves(this.at(repository));
  }

  listReferrers(repository: string, digest: string): Promise<Referrer[] | null | 'unknown'> {
    return this.referrers.list(this.at(repository), digest);
  }

  // Blobs.

  blobExists(repository: string, digest: string): Promise<boolean> {
    return this.blobs.blobExists(this.at(repository), digest);
  }

  openBlob(repository: string, descriptor: Descriptor, offset = 0): Promise<BlobSource> {
    return this.blobs.openBlobAt(this.at(repository), descriptor, offset);
  }

  // Uploads.

  /** A cross-repository mount from where this run saw the blob; false when none is known or the registry declined. */
  async mountBlob(repository: string, digest: string): Promise<boolean> {
    const home = this.blobs.blobHome(digest, this.at(repository));
    return home !== undefined && this.uploads.mountBlob(this.at(repository), digest, home);
  }

  uploadBlob(repository: string, descriptor: Descriptor, open: () => Promise<BlobSource>): Promise<number> {
    return this.uploads.uploadBlob(this.at(repository), descriptor, open);
  }

  uploadBlobChunked(
    repository: string,
    descriptor: Descriptor,
    open: (offset: number) => Promise<BlobSource>,
    options: ChunkedUploadOptions,
  ): Promise<ChunkedUpload> {
    return this.uploads.uploadBlobChunked(this.at(repository), descriptor, open, options);
  }

  uploadBytes(repository: string, bytes: Buffer): Promise<string> {
    return this.uploads.uploadBytes(this.at(repository), bytes);
  }

  cancelUpload(repository: string, location: string): Promise<void> {
    return this.uploads.cancelUpload(this.at(repository), location);
  }

  // Deletes.

  deleteManifest(repository: string, digest: string): Promise<boolean> {
    return this.deletes.deleteManifest(this.at(repository), digest);
  }

  deleteTag(repository: string, tag: string): Promise<'deleted' | 'absent' | 'unsupported'> {
    return this.deletes.deleteTag(this.at(repository), tag);
  }

  deleteBlob(repository: string, digest: string): Promise<void> {
    return this.deletes.deleteBlob(this.at(repository), digest);
  }

  probeDeletes(repository: string): Promise<DeleteSupport> {
    return this.deletes.probeDeletes(this.at(repository));
  }
}
