// Where `_catalog` is refused: `geo-sync run` lists the primary's repositories from a repositories
// file or from GitLab's API (the stand-in, over a real registry), and a refused catalog is an
// error naming both, never an empty primary.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGeoSync } from './support/cli.js';
import { startGitlabApi, type GitlabApiServer } from './support/gitlab-api.js';
import { startRegistryPair, type RegistryPair } from './support/registry.js';
import { pushImage, readTags } from './support/seed.js';

interface Row {
  repository: string;
  status: string;
}

const GROUP = Array.from({ length: 5 }, (_, i) => `team/app/svc-${i}`);
const PROJECT = ['tools/cli/image'];
const FILE_NAMED = ['file/one', 'file/two'];
const TOKEN = 'glpat-test-token';

let registries: RegistryPair;
const gitlab: Record<number, GitlabApiServer> = {};
let work: string;

beforeAll(async () => {
  registries = await startRegistryPair();
  work = mkdtempSync(join(tmpdir(), 'geo-sync-sources-'));
  for (const repository of [...GROUP, ...PROJECT, ...FILE_NAMED, 'file/not-named']) await pushImage(registries.primary.url, repository, 'v1');
  const registryRepositories = { groups: { team: GROUP }, projects: { 'tools/cli': PROJECT } };
  for (const status of [401, 403, 404] as const) {
    gitlab[status] = await startGitlabApi(registries.primary.url, { refuseCatalog: status, registryRepositories, apiToken: TOKEN, maxPerPage: 2 });
  }
});

afterAll(async () => {
  for (const server of Object.values(gitlab)) await server.stop();
  await registries?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

function envFor(primary: string, name: string): Record<string, string> {
  return { GEO_SYNC_PRIMARY_URL: primary, GEO_SYNC_SECONDARY_URL: registries.secondary.url, GEO_SYNC_STATE_DIR: join(work, name) };
}

describe('repositories where _catalog is refused', () => {
  it.each([401, 403, 404])('a _catalog answering %i is an error naming the repositories file and GitLab API, exit 3, nothing synced', async (status) => {
    const result = await runGeoSync(['run', '--json'], envFor(gitlab[status]!.url, `refused-${status}`));
    expect(result.code, result.stderr).toBe(3);
    expect(result.stderr).toContain('refuses to list its repositories');
    expect(result.stderr).toContain('--repositories-file');
    expect(result.stderr).toContain('GEO_SYNC_GITLAB_URL');
    expect(result.stdout).not.toContain('"records"');
    expect(gitlab[status]!.counts['catalog-refused']).toBeGreaterThan(0);
    for (const repository of GROUP) expect(await readTags(registries.secondary.url, repository)).toEqual({});
  });

  it('run --repositories-file syncs exactly the named repositories; comments and blank lines are ignored', async () => {
    const file = join(work, 'repositories.txt');
    writeFileSync(file, `# the repositories to keep\n${FILE_NAMED[0]}\n\n  ${FILE_NAMED[1]}  # trailing comment\n`);
    const result = await runGeoSync(['run', '--repositories-file', file, '--json'], envFor(gitlab[401]!.url, 'file'));
    expect(result.code, result.stderr).toBe(0);
    const rows = (JSON.parse(result.stdout) as { records: Row[] }).records;
    expect(rows.map((r) => [r.repository, r.status])).toEqual(FILE_NAMED.map((r) => [r, 'synced']));
    for (const repository of FILE_NAMED)
      expect(await readTags(registries.secondary.url, repository)).toEqual(await readTags(registries.primary.url, repository));
    expect(await readTags(registries.secondary.url, 'file/not-named')).toEqual({});
  });

  it('GEO_SYNC_REPOSITORIES_FILE with an invalid name is an error naming its line, nothing synced', async () => {
    const file = join(work, 'bad.txt');
    writeFileSync(file, 'file/one\n# fine so far\nFile/Upper\n');
    const result = await runGeoSync(['run'], { ...envFor(gitlab[401]!.url, 'bad'), GEO_SYNC_REPOSITORIES_FILE: file });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${file} line 3`);
  });

  it("GitLab's API lists a group (over several pages) and a project, and drives run", async () => {
    const server = gitlab[403]!;
    const env = {
      ...envFor(server.url, 'gitlab'),
      GEO_SYNC_GITLAB_URL: server.url,
      GEO_SYNC_GITLAB_GROUPS: 'team',
      GEO_SYNC_GITLAB_PROJECTS: 'tools/cli',
      GEO_SYNC_GITLAB_TOKEN: TOKEN,
    };
    const pagesBefore = server.counts['api-v4'] ?? 0;
    const result = await runGeoSync(['run', '--json'], env);
    expect(result.code, result.stderr).toBe(0);
    const rows = (JSON.parse(result.stdout) as { records: Row[] }).records;
    expect(rows.map((r) => r.repository).sort()).toEqual([...GROUP, ...PROJECT].sort());
    expect(rows.every((r) => r.status === 'synced')).toBe(true);
    // The group's 5 repositories at 2 a page (the stand-in's cap) are 3 pages, and the project's 1 is one.
    expect((server.counts['api-v4'] ?? 0) - pagesBefore).toBe(4);
    for (const repository of [...GROUP, ...PROJECT])
      expect(await readTags(registries.secondary.url, repository)).toEqual(await readTags(registries.primary.url, repository));
    expect(result.stderr).not.toContain(TOKEN);
  });

  it('the stand-in pages a group with page/per_page and X-Next-Page, and refuses a wrong token', async () => {
    const base = `${gitlab[404]!.url}/api/v4/groups/team/registry/repositories`;
    const seen: string[] = [];
    let page = '1';
    let pages = 0;
    while (page) {
      const response = await fetch(`${base}?per_page=2&page=${page}`, { headers: { 'private-token': TOKEN } });
      seen.push(...((await response.json()) as { path: string }[]).map((item) => item.path));
      page = response.headers.get('x-next-page') ?? '';
      pages++;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(GROUP);
    expect((await fetch(base, { headers: { 'private-token': 'wrong' } })).status).toBe(401);
  });

  it('a wrong GitLab token is an error naming GitLab and the group, not an empty run', async () => {
    const server = gitlab[404]!;
    const env = { ...envFor(server.url, 'gitlab-bad'), GEO_SYNC_GITLAB_URL: server.url, GEO_SYNC_GITLAB_GROUPS: 'team', GEO_SYNC_GITLAB_TOKEN: 'wrong' };
    const result = await runGeoSync(['run'], env);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('groups team');
    expect(result.stderr).toContain('HTTP 401');
  });
});
