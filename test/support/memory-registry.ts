/**
 * A Registry held in memory, for unit tests of the pipeline: tags, manifests by digest, blobs,
 * referrers (an index by subject) and deletes, with the answers a registry gives. It never
 * replaces the tests against real registries: it has no HTTP, no auth, no quirks but the ones
 * chosen here (`deleteByTag: false` deletes as registry 2.8 does: only by digest, every tag on it).
 */
import { Readable } from 'node:stream';
import { digestOf, type Descriptor, type RawManifest } from '../../shared/engine/base/oci.js';
import type {
  BlobSource,
  CatalogPage,
  ChunkedUpload,
  DeleteSupport,
  ManifestHead,
  Referrer,
  Registry,
  TagListing,
  TrafficStats,
} from '../../shared/engine/registry/registry.js';

export interface MemoryRegistryOptions {
  host?: string;
  prefix?: string;
  /** Deletes a tag alone (OCI tag delete); false: only by digest, untagging every tag on it (registry 2.8). Default true. */
  deleteByTag?: boolean;
  /** Lists tags with their digests (as GitLab's tag API does), so no HEAD per tag is needed. Default false. */
  listsDigests?: boolean;
  /** Serves the referrers API. Default true. */
  referrersApi?: boolean;
  /** What a delete probe finds. Default 'allowed'. */
  deletes?: DeleteSupport;
}

interface StoredRepository {
  tags: Map<string, string>;
  manifests: Map<string, RawManifest>;
  blobs: Set<string>;
}

export class MemoryRegistry implements Registry {
  readonly host: string;
  readonly prefix: string;
  readonly stats: TrafficStats = { requests: 0, writes: 0, retries: 0, throttled: 0, bytesUp: 0, limitMax: 1, limitFinal: 1 };
  /** Blob bytes by digest, shared by every repository (as a registry's storage is). */
  private readonly content = new Map<string, Buffer>();
  private readonly repositories = new Map<string, StoredRepository>();
  private readonly options: Required<Omit<MemoryRegistryOptions, 'host' | 'prefix'>>;

  constructor(options: MemoryRegistryOptions = {}) {
    this.host = options.host ?? 'memory';
    this.prefix = options.prefix ?? '';
    this.options = {
      deleteByTag: options.deleteByTag ?? true,
      listsDigests: options.listsDigests ?? false,
      referrersApi: options.referrersApi ?? true,
      deletes: options.deletes ?? 'allowed',
    };
  }

  at(repository: string): string {
    return this.prefix + repository;
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {}

  // Reading and seeding as a test does, outside the counted requests.

  /** (tag -> digest) of a repository as stored (its name as stored, prefix included), sorted by tag. */
  tagsOf(stored: string): Record<string, string> {
    return Object.fromEntries([...(this.repositories.get(stored)?.tags ?? [])].sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  /** Stores bytes as a blob of a repository (its name as stored); returns their descriptor. */
  seedBlob(stored: string, bytes: Buffer, mediaType = 'application/octet-stream'): Descriptor {
    const digest = digestOf(bytes);
    this.content.set(digest, bytes);
    this.repository(stored, true)!.blobs.add(digest);
    return { digest, size: bytes.length, mediaType };
  }

  /** Stores a manifest in a repository (its name as stored), under `tag` too when given. */
  seedManifest(stored: string, manifest: RawManifest, tag?: string): void {
    const repository = this.repository(stored, true)!;
    repository.manifests.set(manifest.digest, manifest);
    if (tag !== undefined) repository.tags.set(tag, manifest.digest);
  }

  /** Deletes a blob outright (damage below the tags, for a deep verify). */
  dropBlob(stored: string, digest: string): void {
    this.repositories.get(stored)?.blobs.delete(digest);
  }

  // The Registry.

  async listTagDigests(repository: string): Promise<TagListing | null> {
    const stored = this.read(repository);
    if (!stored) return null;
    return new Map([...stored.tags].map(([tag, digest]) => [tag, this.options.listsDigests ? digest : undefined]));
  }

  async repositoryListed(repository: string): Promise<boolean> {
    return this.read(repository) !== undefined;
  }

  async listCatalogPage(options: { last?: string; pageSize?: number } = {}): Promise<CatalogPage> {
    this.stats.requests++;
    const names = [...this.repositories.keys()].sort().filter((name) => options.last === undefined || name > options.last);
    const page = names.slice(0, options.pageSize ?? 1000);
    return page.length < names.length ? { repositories: page, next: page.at(-1)! } : { repositories: page };
  }

  async headManifest(repository: string, reference: string): Promise<ManifestHead | null> {
    const manifest = this.manifest(repository, reference);
    return manifest && { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.bytes.length };
  }

  async getManifest(repository: string, reference: string): Promise<RawManifest | null> {
    return this.manifest(repository, reference);
  }

  /** None, as the registry API tells none without a request. */
  async knownMediaTypes(): Promise<Map<string, string>> {
    return new Map();
  }

  async getManifests(repository: string, digests: readonly string[]): Promise<Map<string, RawManifest>> {
    return new Map(digests.flatMap((digest) => this.manifest(repository, digest) ?? []).map((manifest) => [manifest.digest, manifest]));
  }

  async putManifest(repository: string, reference: string, manifest: RawManifest): Promise<void> {
    this.seedManifest(this.write(repository), manifest, reference.includes(':') ? undefined : reference);
  }

  async provesAbsent(repository: string, reference: string): Promise<boolean> {
    return this.manifest(repository, reference) === null;
  }

  async deleteTag(repository: string, tag: string): Promise<'deleted' | 'absent' | 'unsupported'> {
    const stored = this.repositories.get(this.write(repository));
    if (!this.options.deleteByTag) return 'unsupported';
    return stored?.tags.delete(tag) ? 'deleted' : 'absent';
  }

  async deleteManifest(repository: string, digest: string): Promise<boolean> {
    const stored = this.repositories.get(this.write(repository));
    if (!stored?.manifests.delete(digest)) return false;
    for (const [tag, tagged] of stored.tags) if (tagged === digest) stored.tags.delete(tag);
    return true;
  }

  async deleteBlob(repository: string, digest: string): Promise<void> {
    this.repositories.get(this.write(repository))?.blobs.delete(digest);
  }

  async probeDeletes(): Promise<DeleteSupport> {
    this.stats.requests++;
    return this.options.deletes;
  }

  async servesReferrers(repository: string): Promise<boolean | undefined> {
    const found = await this.listReferrers(repository, digestOf(Buffer.from('probe')));
    return found === null ? false : found === 'unknown' ? undefined : true;
  }

  async listReferrers(repository: string, digest: string): Promise<Referrer[] | null | 'unknown'> {
    const stored = this.read(repository);
    if (!this.options.referrersApi) return null;
    if (!stored) return 'unknown';
    return [...stored.manifests.values()].flatMap((manifest) => referrerOf(manifest, digest));
  }

  async blobExists(repository: string, digest: string): Promise<boolean> {
    return this.read(repository)?.blobs.has(digest) ?? false;
  }

  async mountBlob(repository: string, digest: string): Promise<boolean> {
    const target = this.write(repository);
    const home = [...this.repositories].find(([name, stored]) => name !== target && stored.blobs.has(digest));
    if (home) this.repository(target, true)!.blobs.add(digest);
    return home !== undefined;
  }

  async openBlob(repository: string, descriptor: Descriptor, offset = 0): Promise<BlobSource> {
    const bytes = this.read(repository)?.blobs.has(descriptor.digest) ? this.content.get(descriptor.digest) : undefined;
    if (!bytes) throw new Error(`blob ${descriptor.digest} unknown in ${this.at(repository)} on ${this.host}`);
    return { stream: Readable.from([bytes.subarray(offset)]), length: bytes.length - offset };
  }

  async uploadBlob(repository: string, descriptor: Descriptor, open: () => Promise<BlobSource>): Promise<number> {
    const bytes = await readAll(await open());
    if (digestOf(bytes) !== descriptor.digest) throw new Error(`blob ${descriptor.digest} uploaded with other bytes`);
    this.seedBlob(this.write(repository), bytes);
    this.stats.bytesUp += bytes.length;
    return bytes.length;
  }

  async uploadBlobChunked(repository: string, descriptor: Descriptor, open: (offset: number) => Promise<BlobSource>): Promise<ChunkedUpload> {
    return { kind: 'done', bytes: await this.uploadBlob(repository, descriptor, () => open(0)) };
  }

  async uploadBytes(repository: string, bytes: Buffer): Promise<string> {
    return this.seedBlob(this.write(repository), bytes).digest;
  }

  async cancelUpload(): Promise<void> {}

  private manifest(repository: string, reference: string): RawManifest | null {
    const stored = this.read(repository);
    const digest = reference.includes(':') ? reference : stored?.tags.get(reference);
    return (digest !== undefined && stored?.manifests.get(digest)) || null;
  }

  /** A read request: counted; the repository as stored, or undefined. */
  private read(repository: string): StoredRepository | undefined {
    this.stats.requests++;
    return this.repositories.get(this.at(repository));
  }

  /** A write request: counted; the repository's name as stored. */
  private write(repository: string): string {
    this.stats.requests++;
    this.stats.writes++;
    return this.at(repository);
  }

  private repository(stored: string, create: boolean): StoredRepository | undefined {
    let found = this.repositories.get(stored);
    if (!found && create) this.repositories.set(stored, (found = { tags: new Map(), manifests: new Map(), blobs: new Set() }));
    return found;
  }
}

/** The manifest as a referrer of `subject`, when its `subject` names it (OCI 1.1). */
function referrerOf(manifest: RawManifest, subject: string): Referrer[] {
  const body = JSON.parse(manifest.bytes.toString('utf8')) as { subject?: { digest?: string }; artifactType?: string; config?: { mediaType?: string } };
  if (body.subject?.digest !== subject) return [];
  const artifactType = body.artifactType ?? body.config?.mediaType ?? '';
  return [{ digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.bytes.length, artifactType }];
}

async function readAll(source: BlobSource): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of source.stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}
