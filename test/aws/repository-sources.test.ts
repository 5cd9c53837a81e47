// The fan-out on AWS where the primary refuses `_catalog`: the real handlers against dynalite and
// local-aws-sqs list the primary's repositories through GitLab's API (the stand-in, over a real
// registry), with the GitLab token read from the Secrets Manager secret through a stand-in
// secrets extension, never from the environment; and a fixed list of names (GEO_SYNC_REPOSITORIES,
// the stack parameter `repositories`), since a Lambda has no repositories file to read.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createAwsRuntime } from '../../shared/aws/runtime.js';
import type { Readiness } from '../../shared/jobs/index.js';
import { startGitlabApi, type GitlabApiServer } from '../support/gitlab-api.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { pushImage, readTags } from '../support/seed.js';
import { drain, importHandlers, lambdaContext, type Handlers } from './support/event-source.js';
import { startLocalAws, type LocalAws } from './support/local-aws.js';
import { startSecretsExtension, type FakeSecretsExtension } from './support/secrets-extension.js';

const SECRET_ID = 'geo-registry-sync/registries';
const TOKEN = 'glpat-from-the-secret-never-logged';
const GROUP = ['team/api', 'team/web', 'team/worker'];
const PROJECT = ['tools/cli/image'];
/** On the primary, in no configured group or project: GitLab's API does not list it, so nothing syncs it. */
const OUTSIDE = 'other/private';

let aws: LocalAws;
let primary: TestRegistry;
let secondary: TestRegistry;
let gitlab: GitlabApiServer;
let extension: FakeSecretsExtension;
let handlers: Handlers;
const output: string[] = [];
const SET = ['GEO_SYNC_GITLAB_URL', 'GEO_SYNC_GITLAB_GROUPS', 'GEO_SYNC_GITLAB_PROJECTS', 'GEO_SYNC_CREDENTIALS_SECRET', 'GEO_SYNC_PRIMARY_URL'];

beforeAll(async () => {
  [aws, primary, secondary] = await Promise.all([startLocalAws(), startRegistry(), startRegistry()]);
  for (const repository of [...GROUP, ...PROJECT, OUTSIDE]) await pushImage(primary.url, repository, 'v1');
  await pushImage(primary.url, GROUP[0]!, 'v2', { seed: 'v2' });
  // GitLab's registry: `_catalog` refused to every ordinary token; two registry repositories a page.
  gitlab = await startGitlabApi(primary.url, {
    refuseCatalog: 401,
    registryRepositories: { groups: { team: GROUP }, projects: { 'tools/cli': PROJECT } },
    apiToken: TOKEN,
    maxPerPage: 2,
  });
  extension = await startSecretsExtension(SECRET_ID, { gitlabToken: TOKEN }, 'session-token');
  Object.assign(process.env, aws.env(), {
    AWS_SESSION_TOKEN: 'session-token',
    PARAMETERS_SECRETS_EXTENSION_HTTP_PORT: String(extension.port),
    GEO_SYNC_CREDENTIALS_SECRET: SECRET_ID,
    GEO_SYNC_PRIMARY_URL: gitlab.url,
    GEO_SYNC_SECONDARIES: JSON.stringify([{ name: 'dr', url: secondary.url }]),
    GEO_SYNC_GITLAB_URL: gitlab.url,
    GEO_SYNC_GITLAB_GROUPS: 'team',
    GEO_SYNC_GITLAB_PROJECTS: 'tools/cli',
    POWERTOOLS_LOG_LEVEL: 'INFO',
  });
  for (const stream of [process.stdout, process.stderr])
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => (output.push(String(chunk)), true));
  handlers = await importHandlers();
});

afterAll(async () => {
  vi.restoreAllMocks();
  for (const name of SET) delete process.env[name];
  await Promise.all([aws?.stop(), primary?.stop(), secondary?.stop(), gitlab?.stop(), extension?.stop()]);
});

const sources = () => [
  { name: 'fanOut', url: aws.queues.fanOut.url, arn: aws.queues.fanOut.arn, handler: handlers.fanOut, batchSize: 1 },
  { name: 'sync', url: aws.queues.sync.url, arn: aws.queues.sync.arn, handler: handlers.sync, batchSize: 5 },
  { name: 'verify', url: aws.queues.verify.url, arn: aws.queues.verify.arn, handler: handlers.verify, batchSize: 10 },
];

describe("the fan-out lists GitLab's registry repositories with the secret's token", () => {
  it('syncs exactly the group and project repositories to the secondary, though `_catalog` is refused', async () => {
    const outcome = await handlers.fanOut({ target: 'sync' }, lambdaContext());
    expect(outcome).toMatchObject({ kind: 'finished', enqueued: GROUP.length + PROJECT.length });
    // Readiness after the fan-out read the fan-out's own listing, and says so.
    const readinessLine = output.map((chunk) => chunk.trim()).find((line) => line.includes('"message":"readiness"'));
    expect(JSON.parse(readinessLine!)).toMatchObject({ source: 'fan-out' });
    await drain(aws.sqs, sources());

    for (const repository of [...GROUP, ...PROJECT])
      expect(await readTags(secondary.url, repository), repository).toEqual(await readTags(primary.url, repository));
    expect(await readTags(secondary.url, OUTSIDE)).toEqual({});
    // The API was asked page by page (two a page: two pages for the group, one for the project), with the token.
    expect(gitlab.counts['api-v4']).toBeGreaterThanOrEqual(3);
    expect(gitlab.counts['catalog-refused'] ?? 0).toBe(0);
    expect(extension.requests).toBeGreaterThan(0);
  });

  it('a direct {"action": "ready"} reads the same source: every listed repository ready, none other counted', async () => {
    const report = (await handlers.fanOut({ action: 'ready' }, lambdaContext())) as Readiness;
    expect(report).toMatchObject({ exitCode: 0, source: 'primary' });
    expect(report.secondaries.map((s) => [s.secondary, s.status, s.repositories])).toEqual([['dr', 'ready', GROUP.length + PROJECT.length]]);
  });

  it('the token appears in no log line, metric or record', async () => {
    expect(output.join('')).not.toContain(TOKEN);
    expect(JSON.stringify(await aws.items())).not.toContain(TOKEN);
  });
});

describe('repository sources on Lambda, configured wrongly or otherwise', () => {
  const base = { GEO_SYNC_TABLE: 'state', AWS_REGION: 'us-east-1', GEO_SYNC_SECONDARIES: JSON.stringify([{ name: 'dr', url: 'https://dr.example.com' }]) };

  it('GEO_SYNC_GITLAB_TOKEN in the environment is refused at start, naming the secret and its key, never echoing the token', () => {
    const start = () => createAwsRuntime({ ...base, GEO_SYNC_PRIMARY_URL: 'https://p.example.com', GEO_SYNC_GITLAB_TOKEN: 'glpat-hunter2' }, async () => ({}));
    expect(start).toThrow(
      /GEO_SYNC_GITLAB_TOKEN set in the environment: on Lambda, the GitLab token comes from the secret GEO_SYNC_CREDENTIALS_SECRET only, under "gitlabToken"/,
    );
    expect(start).not.toThrow(/hunter2/);
  });

  it('a wrong token in the secret fails the listing, naming GitLab, the group and where the token lives; never an empty run', async () => {
    const runtime = createAwsRuntime(
      { ...base, GEO_SYNC_PRIMARY_URL: gitlab.url, GEO_SYNC_GITLAB_URL: gitlab.url, GEO_SYNC_GITLAB_GROUPS: 'team' },
      async () => ({ gitlabToken: 'glpat-wrong-one' }),
    );
    const listing = runtime.invoke(lambdaContext(), (_registries, _budget, catalog) => catalog.page({}));
    await expect(listing).rejects.toThrow(/GitLab .* refused to list the registry repositories of groups team: HTTP 401 .*gitlabToken in the AWS secret/);
    await expect(listing).rejects.not.toThrow(/glpat-wrong-one/);
  });

  it('GEO_SYNC_REPOSITORIES (the stack parameter `repositories`) is the catalog: its names, sorted and paged, and no request to `_catalog`', async () => {
    const runtime = createAwsRuntime(
      { ...base, GEO_SYNC_PRIMARY_URL: gitlab.url, GEO_SYNC_REPOSITORIES: ' team/web, tools/cli/image ,team/api' },
      async () => ({}),
    );
    const refusedBefore = gitlab.counts['catalog-refused'] ?? 0;
    const pages = await runtime.invoke(lambdaContext(), async (_registries, _budget, catalog) => {
      const first = await catalog.page({ pageSize: 2 });
      return [first, await catalog.page({ pageSize: 2, last: first.next })];
    });
    expect(pages).toEqual([{ repositories: ['team/api', 'team/web'], next: 'team/web' }, { repositories: ['tools/cli/image'] }]);
    expect(gitlab.counts['catalog-refused'] ?? 0).toBe(refusedBefore);
  });

  it.each([
    [{ GEO_SYNC_REPOSITORIES: 'team/api', GEO_SYNC_GITLAB_URL: 'https://gitlab.example.com' }, /GEO_SYNC_REPOSITORIES and GEO_SYNC_GITLAB_URL are both set/],
    [{ GEO_SYNC_REPOSITORIES: 'team/api', GEO_SYNC_REPOSITORIES_FILE: '/opt/names.txt' }, /GEO_SYNC_REPOSITORIES and GEO_SYNC_REPOSITORIES_FILE are both set/],
    [{ GEO_SYNC_REPOSITORIES: 'team/api,Team/Bad' }, /GEO_SYNC_REPOSITORIES: .*Team\/Bad/],
    [{ GEO_SYNC_GITLAB_URL: 'https://gitlab.example.com' }, /GEO_SYNC_GITLAB_URL is set without GEO_SYNC_GITLAB_GROUPS or GEO_SYNC_GITLAB_PROJECTS/],
  ])('%j is an error at start: %s', (env, message) => {
    expect(() => createAwsRuntime({ ...base, GEO_SYNC_PRIMARY_URL: 'https://p.example.com', ...env }, async () => ({}))).toThrow(message);
  });
});
