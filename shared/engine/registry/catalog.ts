import { GeoSyncError } from '../base/errors.js';
import type { CatalogPage } from './registry.js';
import { nextLink, parseJson } from './responses.js';
import { LISTING_LIMIT } from './tags.js';
import type { Transport } from './transport.js';

/** The registry's catalog of repositories, a page at a time. */
export class Catalog {
  constructor(private readonly transport: Transport) {}

  /** One page of the catalog, from after `last`. */
  async listCatalogPage(options: { last?: string; pageSize?: number } = {}): Promise<CatalogPage> {
    const query = new URLSearchParams({ n: String(options.pageSize ?? 1000) });
    if (options.last) query.set('last', options.last);
    const response = await this.transport.send({
      method: 'GET',
      target: `/v2/_catalog?${query}`,
      scopes: ['registry:catalog:*'],
      expect: [200],
      maxBytes: LISTING_LIMIT,
    });
    const body = parseJson(response.body, `catalog of ${this.transport.host}`) as { repositories?: unknown };
    if (body.repositories !== null && body.repositories !== undefined && !Array.isArray(body.repositories)) {
      throw new GeoSyncError('INVALID_RESPONSE', `registry ${this.transport.host} sent a malformed catalog`);
    }
    const repositories = ((body.repositories as unknown[] | null | undefined) ?? []).filter((r): r is string => typeof r === 'string');
    const link = nextLink(response.headers.link);
    const last = link ? (new URL(link, this.transport.base).searchParams.get('last') ?? repositories.at(-1)) : undefined;
    return last && repositories.length > 0 ? { repositories, next: last } : { repositories };
  }
}
