// Stands in for a GitLab container registry, which cannot run here: it answers GitLab's tag list
// API (`/gitlab/v1/repositories/<path>/tags/list/`, paged with Link) from a real registry's
// state, and proxies every other request to that registry unchanged. Like GitLab's registry, its
// `/gitlab/v1/` answers carry `Gitlab-Container-Registry-Version`: 200 `{}` where the API is
// offered, 404 where it is not (GitLab's registry without its metadata database).
//
// It also stands in for GitLab's REST API (v4) listing of container registry repositories, as
// GitLab's "Container registry API" documents it (GitLab 11.8 and later; the group listing since
// 12.x): `GET /api/v4/groups/:id/registry/repositories` and
// `GET /api/v4/projects/:id/registry/repositories`, `:id` a numeric id or the URL-encoded full path;
// offset pagination with `page` and `per_page` (default 20, at most 100) and the `X-Page`,
// `X-Per-Page`, `X-Next-Page`, `X-Total` headers (`X-Next-Page` empty on the last page); a token in
// `PRIVATE-TOKEN` (401 `{"message":"401 Unauthorized"}` without the right one, 404
// `{"message":"404 Group Not Found"}` for an unknown group). Each item carries `id`, `name`, `path`
// (the repository's full name in the registry, the one field geo-sync reads), `project_id`,
// `location` and `created_at`; not modelled: `tags`, `tags_count`, `cleanup_policy_started_at`,
// `status`, keyset pagination, JOB-TOKEN, subgroup inclusion rules. Its `/v2/_catalog` may be
// refused (401, 403 or 404), as GitLab's registry refuses it to every ordinary token.
import { createServer, type Server, type ServerResponse } from 'node:http';
import { forward, serveOnLoopback } from './loopback.js';
import { readTags } from './seed.js';

export interface GitlabApiServer {
  url: string;
  /** Requests by kind: 'probe', 'gitlab-tags', 'tags-list', 'manifest-head', 'other'. */
  counts: Record<string, number>;
  stop(): Promise<void>;
}

export interface GitlabApiOptions {
  pageLimit?: number;
  enabled?: boolean;
  /** Repositories the API answers 404 for while `/v2/` serves them (GitLab: not yet in its metadata database). */
  unknownToApi?: string[];
  /** Registry repositories per group and per project (full paths), as GitLab's API v4 lists them. */
  registryRepositories?: { groups?: Record<string, string[]>; projects?: Record<string, string[]> };
  /** The token the API v4 listing asks for in `PRIVATE-TOKEN` (none: any caller is answered). */
  apiToken?: string;
  /** The largest `per_page` the API v4 listing grants (GitLab: 100); lower, to page a short list. */
  maxPerPage?: number;
  /** `/v2/_catalog` answered with this status instead of being proxied. */
  refuseCatalog?: 401 | 403 | 404;
}

const GITLAB_VERSION = { 'gitlab-container-registry-version': '4.15.2-gitlab' };

export async function startGitlabApi(registryUrl: string, options: GitlabApiOptions = {}): Promise<GitlabApiServer> {
  const target = new URL(registryUrl);
  const pageLimit = options.pageLimit ?? 1000;
  const counts: Record<string, number> = {};
  const count = (kind: string) => (counts[kind] = (counts[kind] ?? 0) + 1);

  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const gitlab = /^\/gitlab\/v1\/repositories\/(.+)\/tags\/list\/$/.exec(url.pathname);
    if (url.pathname.startsWith('/api/v4/')) return void (count('api-v4'), answerApiV4(req.headers['private-token'], url, res, options));
    if (url.pathname === '/v2/_catalog' && options.refuseCatalog) return void (count('catalog-refused'), refuseCatalog(res, options.refuseCatalog));
    if (url.pathname === '/gitlab/v1/') {
      count('probe');
      if (options.enabled === false) res.writeHead(404, GITLAB_VERSION).end();
      else res.writeHead(200, { 'content-type': 'application/json', ...GITLAB_VERSION }).end('{}');
      return;
    }
    if (gitlab && options.enabled !== false) {
      count('gitlab-tags');
      const repo = gitlab[1]!;
      const all = await readTags(registryUrl, repo);
      const names = Object.keys(all).sort();
      if (names.length === 0 || options.unknownToApi?.includes(repo)) {
        res.writeHead(404, { 'content-type': 'application/json', ...GITLAB_VERSION }).end('{"errors":[{"code":"NAME_UNKNOWN"}]}');
        return;
      }
      const n = Math.min(Number(url.searchParams.get('n') ?? 100), pageLimit);
      const last = url.searchParams.get('last');
      const start = last ? names.findIndex((name) => name > last) : 0;
      const page = start < 0 ? [] : names.slice(start, start + n);
      const headers: Record<string, string> = { 'content-type': 'application/json', ...GITLAB_VERSION };
      if (start >= 0 && start + page.length < names.length) {
        headers.link = `</gitlab/v1/repositories/${repo}/tags/list/?last=${encodeURIComponent(page.at(-1)!)}&n=${n}>; rel="next"`;
      }
      const body = page.map((name) => ({ name, digest: all[name], media_type: 'application/vnd.oci.image.manifest.v1+json', size_bytes: 0 }));
      res.writeHead(200, headers).end(JSON.stringify(body));
      return;
    }
    count(url.pathname.endsWith('/tags/list') ? 'tags-list' : req.method === 'HEAD' && url.pathname.includes('/manifests/') ? 'manifest-head' : 'other');
    forward(req, res, target);
  });
  return { ...(await serveOnLoopback(server)), counts };
}

/** GitLab API v4: the registry repositories of a group or a project, paged with `page`/`per_page`. */
function answerApiV4(token: string | string[] | undefined, url: URL, res: ServerResponse, options: GitlabApiOptions): void {
  const json = { 'content-type': 'application/json' };
  if (options.apiToken && token !== options.apiToken) return void res.writeHead(401, json).end('{"message":"401 Unauthorized"}');
  const route = /^\/api\/v4\/(groups|projects)\/([^/]+)\/registry\/repositories$/.exec(url.pathname);
  if (!route) return void res.writeHead(404, json).end('{"error":"404 Not Found"}');
  const owner = decodeURIComponent(route[2]!);
  const paths = options.registryRepositories?.[route[1] as 'groups' | 'projects']?.[owner];
  if (!paths) return void res.writeHead(404, json).end(`{"message":"404 ${route[1] === 'groups' ? 'Group' : 'Project'} Not Found"}`);
  const perPage = Math.min(Math.max(Number(url.searchParams.get('per_page') ?? 20) || 20, 1), options.maxPerPage ?? 100);
  const page = Math.max(Number(url.searchParams.get('page') ?? 1) || 1, 1);
  const items = paths.slice((page - 1) * perPage, page * perPage).map((path, i) => ({
    id: (page - 1) * perPage + i + 1,
    name: path.split('/').slice(2).join('/'),
    path,
    project_id: 1,
    location: `${url.host}/${path}`,
    created_at: '2026-01-01T00:00:00.000Z',
  }));
  const next = page * perPage < paths.length ? String(page + 1) : '';
  const headers = { ...json, 'x-page': String(page), 'x-per-page': String(perPage), 'x-next-page': next, 'x-total': String(paths.length) };
  res.writeHead(200, headers).end(JSON.stringify(items));
}

/** `_catalog` refused as GitLab's registry refuses it (its token service grants no `registry:catalog:*`). */
function refuseCatalog(res: ServerResponse, status: 401 | 403 | 404): void {
  const code = status === 401 ? 'UNAUTHORIZED' : status === 403 ? 'DENIED' : 'NOT_FOUND';
  const challenge = status === 401 ? { 'www-authenticate': 'Basic realm="GitLab container registry"' } : {};
  res
    .writeHead(status, { 'content-type': 'application/json', ...challenge, ...GITLAB_VERSION })
    .end(JSON.stringify({ errors: [{ code, message: 'catalog listing refused' }] }));
}
