import { GeoSyncError, RegistryError, errorMessage } from '../base/errors.js';
import { isValidDigest, isValidTag, quote } from '../base/oci.js';
import { provenAbsent } from './absence.js';
import { nextLink, parseJson } from './responses.js';
import { pull } from './scopes.js';
import type { RegistryResponse } from './request.js';
import type { Transport } from './transport.js';

/** Cap for one page of a tag list or the catalog. */
export const LISTING_LIMIT = 64 * 1024 * 1024;

/** Tag listings: the OCI tag list, and GitLab's tag API that lists digests too. */
export class Tags {
  private gitlabTagApi: Promise<boolean> | undefined;
  /** The probe's answer once it came; undefined before. */
  private gitlabTagApiAnswer: boolean | undefined;

  constructor(private readonly transport: Transport) {}

  /**
   * All tags of a repository (Link pagination, any order, `tags: null` = none); null when the
   * repository does not exist. Only the registry's own "unknown" answer (404 with a registry error
   * body) means that: any other 404 (a proxy's page, a wrong path) is an error, never "no tags".
   */
  async listTags(repository: string, firstPageSent?: Promise<RegistryResponse>): Promise<string[] | null> {
    const host = this.transport.host;
    const tags = new Set<string>();
    for await (const page of this.tagListPages(repository, `/v2/${repository}/tags/list?n=1000`, firstPageSent)) {
      if (page.status === 404) {
        if (provenAbsent(page, 'tag list')) return null;
        throw new GeoSyncError(
          'LISTING_FAILED',
          `registry ${host} answered 404 without a registry error to the tag list of ${repository}; not reading that as "no such repository" (is a proxy in the way, or the URL wrong?)`,
        );
      }
      const body = parseJson(page.body, `tag list of ${repository} on ${host}`) as { tags?: unknown };
      // `tags: null` is how registry 2.8 lists a repository whose tags were all deleted; no `tags` at all is not a tag list.
      if (body.tags !== null && !Array.isArray(body.tags)) {
        throw new GeoSyncError(
          'INVALID_RESPONSE',
          `registry ${host} sent a malformed tag list for ${repository}${body.tags === undefined ? ' (no "tags")' : ''}`,
        );
      }
      for (const tag of (body.tags as unknown[] | null) ?? []) {
        if (typeof tag !== 'string' || !isValidTag(tag)) {
          throw new GeoSyncError(
            'INVALID_RESPONSE',
            `registry ${host} listed an invalid tag ${quote(String(tag))} in ${repository}; refusing to act on this listing`,
          );
        }
        tags.add(tag);
      }
    }
    return [...tags];
  }

  /**
   * Every tag with its digest where the listing gives one (GitLab's tag API), undefined where only
   * a HEAD tells; null when the repository does not exist. While the GitLab probe is out, the plain
   * listing's first page goes out beside it: far away, waiting for the probe first costs a round
   * trip on every run. On GitLab that page is spent unread (one request per side and run); where
   * GitLab's API does not know the repository, it is the page the fallback needs.
   * `named`: the repository as the caller named it, for the log.
   */
  async listTagDigests(repository: string, options: { gitlabApi?: boolean; named?: string } = {}): Promise<Map<string, string | undefined> | null> {
    const known = options.gitlabApi === false ? false : this.gitlabTagApiAnswer;
    const plain = known === true ? undefined : this.beginListTags(repository);
    const gitlab = known ?? (await this.hasGitlabTagApi());
    const withDigests = gitlab ? await this.listTagDigestsGitlab(repository) : null;
    if (withDigests !== null) return withDigests;
    // GitLab's API answering 404 is no proof of absence (it knows only the repositories in its
    // metadata database): the plain API decides.
    const tags = await (plain ?? this.beginListTags(repository)).read();
    if (tags === null) return null;
    if (gitlab) {
      this.transport.logger.warn('GitLab tag API does not know a repository the plain API lists; using the plain list', {
        registry: this.transport.host,
        repository: options.named ?? repository,
        tags: tags.length,
      });
    }
    return new Map(tags.map((tag) => [tag, undefined]));
  }

  /**
   * A tag listing asked for before it is known to be wanted: its first page is requested now,
   * the further pages only once `read` is called. Never read, it costs that one request.
   */
  private beginListTags(repository: string): { read(): Promise<string[] | null> } {
    const firstPageSent = this.sendTagListPage(repository, `/v2/${repository}/tags/list?n=1000`);
    // Not read, its failure is nobody's news; read, `listTags` meets it.
    firstPageSent.catch(() => {});
    return { read: () => this.listTags(repository, firstPageSent) };
  }

  /**
   * GitLab's registry API lists tags with their digests, 1,000 a page, so a side is read without
   * one HEAD per tag. Probed once per client, credentials sent as for any request: only GitLab's
   * own answer counts, a 200 carrying its `Gitlab-Container-Registry-Version` header. A 401 proves
   * nothing (an authenticating proxy before a plain registry answers 401 to every path).
   * A registry that does not answer is not asked again: the plain API's requests meet the same
   * outage next, carry the retries, and report it.
   */
  hasGitlabTagApi(): Promise<boolean> {
    this.gitlabTagApi ??= this.transport
      .send({ method: 'GET', target: '/gitlab/v1/', scopes: [], expect: [200, 400, 403, 404, 405, 501], retryUnanswered: false })
      .then((response) => {
        const version = response.headers['gitlab-container-registry-version'];
        const offered = response.status === 200 && version !== undefined && version.trim() !== '';
        this.transport.logger.debug('GitLab tag API probe', { registry: this.transport.host, status: response.status, offered });
        this.gitlabTagApiAnswer = offered;
        return offered;
      })
      .catch((error: unknown) => {
        // The plain API gives the same answer with more requests; say why it is used. Only an
        // answer is news: no answer (refused, a certificate not trusted) is what the plain API's
        // next request meets and reports, in the one line that ends the run if it lasts.
        const level = error instanceof RegistryError ? 'warn' : 'debug';
        this.transport.logger[level]('GitLab API probe failed; using the plain tag list', { registry: this.transport.host, reason: errorMessage(error) });
        return false;
      });
    return this.gitlabTagApi;
  }

  /**
   * (tag -> digest) from GitLab's tag list API; null when this API does not know the repository,
   * which alone does not mean it is absent (the caller asks the plain API).
   */
  private async listTagDigestsGitlab(repository: string): Promise<Map<string, string> | null> {
    const host = this.transport.host;
    const tags = new Map<string, string>();
    for await (const page of this.tagListPages(repository, `/gitlab/v1/repositories/${repository}/tags/list/?n=1000`)) {
      if (page.status === 404) return null;
      const entries = parseJson(page.body, `GitLab tag list of ${repository} on ${host}`);
      if (!Array.isArray(entries)) throw new GeoSyncError('INVALID_RESPONSE', `registry ${host} sent a malformed GitLab tag list for ${repository}`);
      for (const entry of entries as Array<{ name?: unknown; digest?: unknown }>) {
        if (typeof entry?.name !== 'string' || !isValidTag(entry.name) || typeof entry.digest !== 'string' || !isValidDigest(entry.digest)) {
          throw new GeoSyncError(
            'INVALID_RESPONSE',
            `registry ${host} listed an invalid tag or digest in ${repository}: ${quote(JSON.stringify(entry).slice(0, 200))}; refusing to act on this listing`,
          );
        }
        tags.set(entry.name, entry.digest);
      }
    }
    return tags;
  }

  /**
   * Whether the registry lists the repository at all (one tag-list page of one entry): a 404
   * counts only with the registry's own NAME_UNKNOWN.
   */
  async repositoryListed(repository: string): Promise<boolean> {
    const response = await this.transport.send({
      method: 'GET',
      target: `/v2/${repository}/tags/list?n=1`,
      scopes: pull(repository),
      expect: [200, 404],
      maxBytes: 64 * 1024,
    });
    if (response.status === 200) return true;
    if (provenAbsent(response, 'repository')) return false;
    throw new GeoSyncError('LISTING_FAILED', `registry ${this.transport.host} answered 404 without a registry error to the tag list of ${repository}`);
  }

  private sendTagListPage(repository: string, target: string): Promise<RegistryResponse> {
    return this.transport.send({ method: 'GET', target, scopes: pull(repository), expect: [200, 404], maxBytes: LISTING_LIMIT });
  }

  /**
   * The pages of a paged tag listing, following `Link`; a 404 only as the first and only page, for
   * the caller to judge. `firstPageSent`: the first page, already asked for.
   */
  private async *tagListPages(
    repository: string,
    first: string,
    firstPageSent?: Promise<RegistryResponse>,
  ): AsyncGenerator<{ status: 200 | 404; body: Buffer }> {
    const host = this.transport.host;
    const seen = new Set<string>();
    for (let target: string | undefined = first; target;) {
      if (seen.has(target)) throw new GeoSyncError('PAGINATION_LOOP', `registry ${host} repeated a tag list page for ${repository}`);
      const response = await (seen.size === 0 && firstPageSent ? firstPageSent : this.sendTagListPage(repository, target));
      seen.add(target);
      if (response.status === 404) {
        if (seen.size > 1)
          throw new GeoSyncError('LISTING_FAILED', `registry ${host} lost the tag list of ${repository} during pagination`, { retryable: true });
        yield { status: 404, body: response.body };
        return;
      }
      yield { status: 200, body: response.body };
      target = nextLink(response.headers.link);
    }
  }
}
