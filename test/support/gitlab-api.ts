// Stands in for a GitLab container registry, which cannot run here: it answers GitLab's tag list
// API (`/gitlab/v1/repositories/<path>/tags/list/`, paged with Link) from a real registry's
// state, and proxies every other request to that registry unchanged. Like GitLab's registry, its
// `/gitlab/v1/` answers carry `Gitlab-Container-Registry-Version`: 200 `{}` where the API is
// offered, 404 where it is not (GitLab's registry without its metadata database).
import { createServer, type Server } from 'node:http';
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
