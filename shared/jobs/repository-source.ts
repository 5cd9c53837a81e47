/**
 * Where the primary's repositories are listed from: its `_catalog` (the default), a repositories
 * file (one name a line), a list of names in the environment (GEO_SYNC_REPOSITORIES: a Lambda has
 * no file of its own to read), or GitLab's container registry API (group or project registry
 * repositories). Chosen in one place (`repositorySourceFrom`), and turned into the one `Catalog`
 * that `run`, the fan-out, `ready` and the listener's reconcile all walk.
 */
import { readFileSync } from 'node:fs';
import { GeoSyncError, RegistryError, invalidInput, validateRepositoryName } from '../engine/index.js';
import type { Catalog } from './fan-out.js';

export type RepositorySource =
  | { kind: 'catalog' }
  | { kind: 'file'; path: string }
  | { kind: 'list'; names: string[] }
  | { kind: 'gitlab'; url: string; token?: string; groups: string[]; projects: string[] };

/** GitLab's largest `per_page`. */
const GITLAB_PAGE_SIZE = 100;
/** Pages of one group or project before the listing is taken for a loop. */
const GITLAB_MAX_PAGES = 10_000;

/**
 * The configured source: the --repositories-file option first, then one of GEO_SYNC_REPOSITORIES_FILE,
 * GEO_SYNC_REPOSITORIES and GitLab's API (the file before GitLab, as ever; the list with either is
 * an error, not a guess), else the catalog.
 */
export function repositorySourceFrom(env: NodeJS.ProcessEnv, repositoriesFile?: string): RepositorySource {
  if (repositoriesFile) return { kind: 'file', path: repositoriesFile };
  const list = env.GEO_SYNC_REPOSITORIES;
  if (list !== undefined && list.trim() !== '') {
    const others = ['GEO_SYNC_REPOSITORIES_FILE', 'GEO_SYNC_GITLAB_URL', 'GEO_SYNC_GITLAB_GROUPS', 'GEO_SYNC_GITLAB_PROJECTS'].filter((name) => env[name]);
    if (others.length > 0)
      throw invalidInput('INVALID_CONFIG', `GEO_SYNC_REPOSITORIES and ${others.join(', ')} are both set: name the repositories in one way only`);
    return { kind: 'list', names: repositoryList(list) };
  }
  if (env.GEO_SYNC_REPOSITORIES_FILE) return { kind: 'file', path: env.GEO_SYNC_REPOSITORIES_FILE };
  const groups = commaList(env.GEO_SYNC_GITLAB_GROUPS);
  const projects = commaList(env.GEO_SYNC_GITLAB_PROJECTS);
  const url = env.GEO_SYNC_GITLAB_URL;
  if (!url && groups.length + projects.length === 0) return { kind: 'catalog' };
  if (!url) throw invalidInput('MISSING_CONFIG', 'GEO_SYNC_GITLAB_GROUPS or GEO_SYNC_GITLAB_PROJECTS is set without GEO_SYNC_GITLAB_URL');
  if (groups.length + projects.length === 0)
    throw invalidInput('MISSING_CONFIG', 'GEO_SYNC_GITLAB_URL is set without GEO_SYNC_GITLAB_GROUPS or GEO_SYNC_GITLAB_PROJECTS');
  const token = env.GEO_SYNC_GITLAB_TOKEN;
  return { kind: 'gitlab', url, groups, projects, ...(token ? { token } : {}) };
}

/** GEO_SYNC_REPOSITORIES: names separated by commas; a name the engine would refuse is an error naming it. */
function repositoryList(text: string): string[] {
  return commaList(text).map((name) => {
    try {
      validateRepositoryName(name);
      return name;
    } catch (error) {
      if (!(error instanceof GeoSyncError)) throw error;
      throw invalidInput('INVALID_REPOSITORY', `GEO_SYNC_REPOSITORIES: ${error.message}`);
    }
  });
}

/** The `Catalog` of a source; `registryPage` is the primary's own `_catalog`, and `host` names it in errors. */
export function sourceCatalog(source: RepositorySource, registryPage: Catalog['page'], host: () => string): Catalog {
  if (source.kind === 'file') return namesCatalog(async () => readRepositoriesFile(source.path));
  if (source.kind === 'list') return namesCatalog(async () => source.names);
  if (source.kind === 'gitlab') return namesCatalog(() => listGitlabRepositories(source));
  return {
    async page(options) {
      try {
        return await registryPage(options);
      } catch (error) {
        throw refusedCatalog(error, host()) ?? error;
      }
    },
  };
}

/** A `_catalog` refused (401, 403, 404) names both other sources; never read as an empty primary. */
function refusedCatalog(error: unknown, host: string): GeoSyncError | undefined {
  const refused =
    (error instanceof RegistryError && [401, 403, 404].includes(error.status)) || (error instanceof GeoSyncError && error.code === 'AUTH_REFUSED');
  if (!refused) return undefined;
  const answer = error instanceof RegistryError ? `HTTP ${error.status}` : 'authentication refused';
  return new GeoSyncError(
    'CATALOG_REFUSED',
    `registry ${host} refuses to list its repositories (GET /v2/_catalog: ${answer}): name them in a repositories file ` +
      '(geo-sync run --repositories-file, or GEO_SYNC_REPOSITORIES_FILE) or in GEO_SYNC_REPOSITORIES (comma-separated), ' +
      'or for GitLab list them through its API (GEO_SYNC_GITLAB_URL with GEO_SYNC_GITLAB_GROUPS or GEO_SYNC_GITLAB_PROJECTS, ' +
      'and a GitLab token: GEO_SYNC_GITLAB_TOKEN, or gitlabToken in the AWS secret)',
    { cause: error },
  );
}

/** A catalog over a whole list read once: sorted as `_catalog` is, paged by `last` like it. */
function namesCatalog(list: () => Promise<string[]>): Catalog {
  let names: Promise<string[]> | undefined;
  return {
    async page({ last, pageSize = 1000 }) {
      names ??= list().then((all) => [...new Set(all)].sort());
      const sorted = await names;
      const start = last === undefined ? 0 : sorted.findIndex((name) => name > last);
      const repositories = start < 0 ? [] : sorted.slice(start, start + pageSize);
      const more = start >= 0 && start + repositories.length < sorted.length;
      return more ? { repositories, next: repositories.at(-1)! } : { repositories };
    },
  };
}

/** One name a line; `#` comments and blank lines ignored; a name the engine would refuse is an error naming its line. */
export function readRepositoriesFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw invalidInput('INVALID_OPTION', `cannot read the repositories file ${path}: ${(error as Error).message}`);
  }
  const names: string[] = [];
  text.split('\n').forEach((raw, index) => {
    const name = raw.replace(/#.*/, '').trim();
    if (!name) return;
    try {
      validateRepositoryName(name);
    } catch (error) {
      if (!(error instanceof GeoSyncError)) throw error;
      throw invalidInput('INVALID_REPOSITORY', `${path} line ${index + 1}: ${error.message}`);
    }
    names.push(name);
  });
  return names;
}

/** Every registry repository's `path` in the configured groups and projects (GitLab API v4, `page`/`per_page`, `X-Next-Page`). */
async function listGitlabRepositories(source: Extract<RepositorySource, { kind: 'gitlab' }>): Promise<string[]> {
  const owners = [...source.groups.map((id) => ['groups', id] as const), ...source.projects.map((id) => ['projects', id] as const)];
  const names: string[] = [];
  for (const [kind, id] of owners) names.push(...(await listGitlabOwner(source, kind, id)));
  return names;
}

async function listGitlabOwner(source: Extract<RepositorySource, { kind: 'gitlab' }>, kind: 'groups' | 'projects', id: string): Promise<string[]> {
  const names: string[] = [];
  const base = source.url.replace(/\/+$/, '');
  let page: string | null = '1';
  for (let pages = 0; page; pages++) {
    if (pages >= GITLAB_MAX_PAGES)
      throw new GeoSyncError('PAGINATION_LOOP', `GitLab ${base}: more than ${GITLAB_MAX_PAGES} pages of registry repositories in ${kind} ${id}`);
    const url = `${base}/api/v4/${kind}/${encodeURIComponent(id)}/registry/repositories?per_page=${GITLAB_PAGE_SIZE}&page=${page}`;
    const response = await gitlabGet(url, source.token, `${kind} ${id}`);
    const body = (await response.json().catch(() => undefined)) as unknown;
    if (!Array.isArray(body)) throw new GeoSyncError('INVALID_RESPONSE', `GitLab ${base} sent a malformed list of registry repositories for ${kind} ${id}`);
    for (const item of body as { path?: unknown }[]) if (typeof item?.path === 'string') names.push(item.path);
    page = response.headers.get('x-next-page') || null;
  }
  return names;
}

async function gitlabGet(url: string, token: string | undefined, what: string): Promise<Response> {
  const host = new URL(url).host;
  let response: Response;
  try {
    response = await fetch(url, { headers: { accept: 'application/json', ...(token ? { 'private-token': token } : {}) } });
  } catch (error) {
    throw new GeoSyncError('REGISTRY_UNREACHABLE', `GitLab ${host} cannot be reached: ${(error as Error).message}`, { retryable: true });
  }
  if (response.ok) return response;
  const hint =
    response.status === 401 || response.status === 403
      ? ' (the GitLab token, GEO_SYNC_GITLAB_TOKEN or gitlabToken in the AWS secret, needs read_api and the Reporter role or more)'
      : '';
  throw new GeoSyncError('LISTING_FAILED', `GitLab ${host} refused to list the registry repositories of ${what}: HTTP ${response.status}${hint}`, {
    retryable: response.status >= 500,
  });
}

function commaList(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
}
