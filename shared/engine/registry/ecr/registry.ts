/**
 * `EcrRegistry`: the `Registry` of an Amazon ECR registry. The registry API (manifests, blobs,
 * referrers) goes through a RegistryClient signed in with ECR's registry tokens; what ECR does
 * through its own API goes there: tags with digests (ListImages), manifests many at a time
 * (BatchGetImage, each checked against its digest), the repositories
 * (DescribeRepositories), removal of one tag or one untagged image (BatchDeleteImage), and the
 * creation of a repository before its first write (ECR does not create repositories on push).
 */
import type { Descriptor, RawManifest } from '../../base/oci.js';
import { GeoSyncError, RegistryError } from '../../base/errors.js';
import { RegistryClient } from '../client.js';
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
} from '../registry.js';
import type { RegistryEndpoint, TransportOptions } from '../transport.js';
import { silentLogger } from '../../base/log.js';
import { RegistryPace } from '../pace.js';
import { EcrApi } from './api.js';
import { EcrManifests } from './manifests.js';
import { EcrReferrers } from './referrers.js';
import type { EcrSettings } from './settings.js';
import { registryTokens } from './token.js';

export class EcrRegistry implements Registry {
  private readonly client: RegistryClient;
  private readonly api: EcrApi;
  /** Referrers from ECR's API, indexed per repository until this registry writes there. */
  private readonly referrers: EcrReferrers;
  /** Manifests many at a time through BatchGetImage, each checked; what it does not give, over the registry API. */
  private readonly manifests: EcrManifests;
  /** Set once the role was refused ecr:DescribeImages or ecr:BatchGetImage: referrers are then read over the registry API. */
  private referrersOverRegistry = false;
  /** Repositories known to exist here in this run (listed, or created). */
  private readonly existing = new Set<string>();
  /** Repositories known not to exist (their listing said so): created without asking again. */
  private readonly absent = new Set<string>();
  /** Each repository's creation, asked once per run; a refusal stays, so nothing else is tried for it. */
  private readonly creating = new Map<string, Promise<void>>();
  /** The whole catalog, sorted, read once per client: ECR pages by token, the catalog by name. */
  private catalog: Promise<string[]> | undefined;

  constructor(endpoint: RegistryEndpoint, settings: EcrSettings, options: TransportOptions & { prefix?: string } = {}) {
    const { username: _username, password: _password, ...plain } = endpoint;
    const host = new URL(endpoint.url.includes('://') ? endpoint.url : `https://${endpoint.url}`).host;
    // One pace for the registry API and ECR's own: the entry's requestsPerSecond holds for both together.
    const pace = options.pace ?? new RegistryPace(endpoint.requestsPerSecond, { registry: host, ...(options.logger && { logger: options.logger }) });
    this.api = new EcrApi(settings, host, pace);
    const tokens = registryTokens(`${host}\0${settings.registryId ?? ''}\0${settings.roleArn ?? ''}`, host, () => this.api.authorizationToken());
    this.client = new RegistryClient(plain, { ...options, credentials: tokens, pace });
    this.referrers = new EcrReferrers(
      this.api,
      (repository) => this.at(repository),
      async (repository, digest) => (await this.client.headManifest(repository, digest))?.size,
    );
    const get = (repository: string, digest: string) => this.client.getManifest(repository, digest);
    this.manifests = new EcrManifests(this.api, (repository) => this.at(repository), get, options.logger ?? silentLogger, host);
  }

  get host(): string {
    return this.client.host;
  }

  get prefix(): string {
    return this.client.prefix;
  }

  get stats(): Readonly<TrafficStats> {
    return { ...this.client.stats, apiCalls: this.api.calls };
  }

  at(repository: string): string {
    return this.client.at(repository);
  }

  ping(options?: { timeoutMs?: number }): Promise<void> {
    return this.client.ping(options);
  }

  async close(): Promise<void> {
    await Promise.all([this.client.close(), this.api.close()]);
  }

  // Listings through ECR's API: no HEAD per tag, no catalog request (ECR's registry API has none).

  async listTagDigests(repository: string): Promise<TagListing | null> {
    const tags = await this.api.listTaggedImages(this.at(repository));
    this.learn(repository, tags !== null);
    return tags;
  }

  async repositoryListed(repository: string): Promise<boolean> {
    const exists = await this.api.repositoryExists(this.at(repository));
    this.learn(repository, exists);
    return exists;
  }

  /** A page of the repositories, sorted by name from after `last`, as the OCI catalog pages. */
  async listCatalogPage(options: { last?: string; pageSize?: number } = {}): Promise<CatalogPage> {
    this.catalog ??= this.api.listRepositories().then((names) => names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    this.catalog.catch(() => (this.catalog = undefined));
    const all = await this.catalog;
    const last = options.last;
    const from = last === undefined ? 0 : all.findIndex((name) => name > last);
    const rest = from < 0 ? [] : all.slice(from);
    const repositories = rest.slice(0, options.pageSize ?? 1000);
    return rest.length > repositories.length ? { repositories, next: repositories.at(-1)! } : { repositories };
  }

  // Manifests.

  headManifest(repository: string, reference: string): Promise<ManifestHead | null> {
    return this.client.headManifest(repository, reference);
  }

  getManifest(repository: string, reference: string): Promise<RawManifest | null> {
    return this.client.getManifest(repository, reference);
  }

  /** From DescribeImages (the read the referrers come from); empty where ECR's API may not be read. */
  async knownMediaTypes(repository: string, digests: readonly string[]): Promise<Map<string, string>> {
    if (this.referrersOverRegistry) return new Map();
    try {
      return await this.referrers.mediaTypes(repository, digests);
    } catch (error) {
      if (!(error instanceof GeoSyncError && error.code === 'ECR_ACCESS_DENIED')) throw error;
      this.referrersOverRegistry = true;
      return new Map();
    }
  }

  /** Through BatchGetImage, 100 a call; a manifest ECR does not give as asked (or when it refuses), one GET each. */
  getManifests(repository: string, digests: readonly string[], concurrency: number): Promise<Map<string, RawManifest>> {
    return this.manifests.byDigest(repository, digests, concurrency);
  }

  provesAbsent(repository: string, reference: string): Promise<boolean> {
    return this.client.provesAbsent(repository, reference);
  }

  /** A tag the repository will not move (IMMUTABLE, or an exclusion's rule) is TAG_IMMUTABLE: no retry moves it. */
  async putManifest(repository: string, reference: string, manifest: RawManifest): Promise<void> {
    await this.ensureRepository(repository);
    try {
      await this.client.putManifest(repository, reference, manifest);
    } catch (error) {
      this.referrers.forget(repository);
      if (error instanceof RegistryError && error.has('TAG_INVALID')) {
        const reason = error.diagnostics.find((d) => d.code === 'TAG_INVALID')?.message ?? 'the tag is immutable';
        throw new GeoSyncError(
          'TAG_IMMUTABLE',
          `tag ${reference} of ${this.at(repository)} on ${this.host} cannot be moved to ${manifest.digest}: ${reason.slice(0, 300)} (no retry will move it: change the repository's tag mutability or the tag on the primary)`,
          { cause: error, registry: error.registry },
        );
      }
      throw error;
    }
    this.referrers.forget(repository);
  }

  // Removal through ECR's API: the registry API deletes nothing; BatchDeleteImage removes one tag alone.

  async deleteTag(repository: string, tag: string): Promise<'deleted' | 'absent' | 'unsupported'> {
    const { notFound } = await this.batchDelete(repository, { imageTag: tag });
    return notFound > 0 ? 'absent' : 'deleted';
  }

  async deleteManifest(repository: string, digest: string): Promise<boolean> {
    const { notFound } = await this.batchDelete(repository, { imageDigest: digest });
    return notFound === 0;
  }

  /** ECR deletes layers with the images that use them: there is no blob to delete. */
  async deleteBlob(): Promise<void> {}

  async probeDeletes(): Promise<DeleteSupport> {
    return 'allowed';
  }

  // Referrers through ECR's API: ECR serves the referrers API, so there is nothing to probe.

  /** True without a request; undefined for a repository this run found missing, as the contract asks. */
  async servesReferrers(repository: string): Promise<boolean | undefined> {
    return this.absent.has(repository) ? undefined : true;
  }

  /** From the repository's images as DescribeImages lists them (referrers name their subject): no registry request per manifest. */
  async listReferrers(repository: string, digest: string): Promise<Referrer[] | null | 'unknown'> {
    if (!this.referrersOverRegistry) {
      try {
        return await this.referrers.list(repository, digest);
      } catch (error) {
        // A role granted only the registry API's reads still gets the referrers, a request per manifest.
        if (!(error instanceof GeoSyncError && error.code === 'ECR_ACCESS_DENIED')) throw error;
        this.referrersOverRegistry = true;
      }
    }
    return this.client.listReferrers(repository, digest);
  }

  // Blobs: every write first makes sure the repository exists.

  blobExists(repository: string, digest: string): Promise<boolean> {
    return this.client.blobExists(repository, digest);
  }

  openBlob(repository: string, descriptor: Descriptor, offset = 0): Promise<BlobSource> {
    return this.client.openBlob(repository, descriptor, offset);
  }

  async mountBlob(repository: string, digest: string): Promise<boolean> {
    await this.ensureRepository(repository);
    return this.client.mountBlob(repository, digest);
  }

  async uploadBlob(repository: string, descriptor: Descriptor, open: () => Promise<BlobSource>): Promise<number> {
    await this.ensureRepository(repository);
    return this.client.uploadBlob(repository, descriptor, open);
  }

  async uploadBlobChunked(
    repository: string,
    descriptor: Descriptor,
    open: (offset: number) => Promise<BlobSource>,
    options: ChunkedUploadOptions,
  ): Promise<ChunkedUpload> {
    await this.ensureRepository(repository);
    return this.client.uploadBlobChunked(repository, descriptor, open, options);
  }

  async uploadBytes(repository: string, bytes: Buffer): Promise<string> {
    await this.ensureRepository(repository);
    return this.client.uploadBytes(repository, bytes);
  }

  cancelUpload(repository: string, location: string): Promise<void> {
    return this.client.cancelUpload(repository, location);
  }

  private learn(repository: string, exists: boolean): void {
    (exists ? this.existing : this.absent).add(repository);
    (exists ? this.absent : this.existing).delete(repository);
  }

  private async batchDelete(repository: string, imageId: { imageTag: string } | { imageDigest: string }): Promise<{ notFound: number }> {
    const name = this.at(repository);
    const { notFound, failures } = await this.api.batchDeleteImage(name, [imageId]).finally(() => this.referrers.forget(repository));
    if (failures.length > 0)
      throw new GeoSyncError('ECR_API_FAILED', `ECR BatchDeleteImage on ${this.host} (repository ${name}) failed: ${failures.join('; ')}`);
    return { notFound };
  }

  /**
   * Creates the repository before its first write when this registry lacks it, once per run.
   * Where the role may not create it, the refusal names the repository and the permission, and
   * stays the answer for every later write to it: nothing else is tried for it.
   */
  private ensureRepository(repository: string): Promise<void> {
    if (this.existing.has(repository)) return Promise.resolve();
    let creation = this.creating.get(repository);
    if (!creation) {
      creation = this.create(repository);
      this.creating.set(repository, creation);
    }
    return creation;
  }

  private async create(repository: string): Promise<void> {
    const name = this.at(repository);
    if (!this.absent.has(repository) && (await this.api.repositoryExists(name))) return this.learn(repository, true);
    try {
      await this.api.createRepository(name);
    } catch (error) {
      if (error instanceof GeoSyncError && error.code === 'ECR_ACCESS_DENIED') {
        throw new GeoSyncError(
          'REPOSITORY_CREATE_DENIED',
          `repository ${name} does not exist on ${this.host} and may not be created here: the role lacks ecr:CreateRepository (create it, or grant that permission)`,
          { cause: error.cause },
        );
      }
      this.creating.delete(repository);
      throw error;
    }
    this.learn(repository, true);
  }
}
