// The event path on the local AWS stack: a real primary docker-registry sends its notifications to
// the notify handler behind a stand-in function URL (token from a stand-in secrets extension);
// event jobs go through local SQS to the real sync handler, state to dynalite, copies to a real secondary.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { deleteManifest, manifestExists, pushImage, pushManifest, readTags } from '../support/seed.js';
import { drain, importHandlers, lambdaContext, pollOnce, queueDepth, type Handler, type Handlers } from './support/event-source.js';
import { functionUrlEvent, startFunctionUrl, type FunctionUrl, type UrlHandler } from './support/function-url.js';
import { startLocalAws, type LocalAws } from './support/local-aws.js';
import { startSecretsExtension, type FakeSecretsExtension } from './support/secrets-extension.js';
import { githubPackageEvent, harborPayload, quayPush, signGitHub } from '../support/vendor-payloads.js';

const TOKEN = 'webhook-token-for-tests-0123456789abcdef';
const GITHUB_SECRET = 'github-secret-for-tests-0123456789abcdef';
const SECRET_ID = 'geo-registry-sync/webhook-token';
const EVENTS_TYPE = 'application/vnd.docker.distribution.events.v1+json';

let aws: LocalAws;
let primary: TestRegistry;
let eu: TestRegistry;
let extension: FakeSecretsExtension;
let functionUrl: FunctionUrl;
let handlers: Handlers;
let notify: UrlHandler;
const output: string[] = [];

beforeAll(async () => {
  // Bound first, on a port of its own: a port only found free could go to a registry started beside it.
  functionUrl = await startFunctionUrl(() => notify, 0);
  [aws, primary, eu] = await Promise.all([
    startLocalAws({ visibilityTimeout: 5 }),
    startRegistry({
      notifications: { url: `${functionUrl.url}/events`, headers: { Authorization: [`Bearer ${TOKEN}`] }, timeout: '5s', backoff: '200ms' },
    }),
    startRegistry(),
  ]);
  // GitHub's HMAC secret is a second key of the webhook secret: no secret in the environment.
  extension = await startSecretsExtension(SECRET_ID, { token: TOKEN, githubSecret: GITHUB_SECRET }, 'session-token');
  Object.assign(process.env, aws.env(), {
    AWS_SESSION_TOKEN: 'session-token',
    PARAMETERS_SECRETS_EXTENSION_HTTP_PORT: String(extension.port),
    GEO_SYNC_WEBHOOK_SECRET: SECRET_ID,
    GEO_SYNC_PRIMARY_URL: primary.url,
    GEO_SYNC_SECONDARIES: JSON.stringify([{ name: 'eu', url: eu.url }]),
    POWERTOOLS_LOG_LEVEL: 'INFO',
  });
  delete process.env.GEO_SYNC_CREDENTIALS_SECRET;
  for (const stream of [process.stdout, process.stderr])
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => (output.push(String(chunk)), true));
  handlers = await importHandlers();
  notify = (await import('../../functions/notify/handler.js')).handler as UrlHandler;
});

afterAll(async () => {
  vi.restoreAllMocks();
  await functionUrl?.stop();
  await Promise.all([aws?.stop(), primary?.stop(), eu?.stop(), extension?.stop()]);
});

const syncSource = () => [{ name: 'sync', url: aws.queues.sync.url, arn: aws.queues.sync.arn, handler: handlers.sync, batchSize: 5 }];
const logLines = () =>
  output
    .flatMap((chunk) => chunk.split('\n'))
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, any>);
const record = async (repository: string) => (await aws.items()).find((item) => item.repository === repository && item.secondary === 'eu');

/** Runs the sync queue's event source until `check` holds (events arrive from the registry on their own time). */
async function syncUntil(check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not reached within ${timeoutMs} ms`);
    await drain(aws.sqs, syncSource(), { timeoutMs });
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const invokeNotify = (headers: Record<string, string>, body: string | Buffer, method = 'POST', path = '/events') =>
  notify(functionUrlEvent(method, path, headers, Buffer.isBuffer(body) ? body : Buffer.from(body)), lambdaContext(10_000, 'notify'));

function forgedEvent(action: string, repository: string, tag: string, url: string) {
  return {
    id: 'f',
    timestamp: new Date().toISOString(),
    action,
    target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'e'.repeat(64)}`, size: 1, length: 1, repository, url, tag },
    request: {},
    actor: {},
    source: {},
  };
}

describe('notify on the local AWS stack', () => {
  it('a push on the primary reaches the secondary: notify -> sync queue -> sync, the last event and its lag recorded, ReplicationLagSeconds emitted', async () => {
    const repository = 'aws/push';
    await pushImage(primary.url, repository, 'v1');

    await syncUntil(async () => JSON.stringify(await readTags(eu.url, repository)) === JSON.stringify(await readTags(primary.url, repository)));

    const item = await record(repository);
    expect(item).toMatchObject({ lastEvent: { status: 'synced', tags: 1, copied: 1, firstTags: ['v1'] } });
    expect(item!.lagSeconds).toEqual(expect.any(Number));
    expect(item).not.toHaveProperty('leaseOwner');
    expect(logLines()).toContainEqual(expect.objectContaining({ message: 'replicated', repository, secondary: 'eu', lagSeconds: item!.lagSeconds }));
    const emf = logLines().filter((l) =>
      l._aws?.CloudWatchMetrics?.[0]?.Metrics.some((m: { Name: string; Unit: string }) => m.Name === 'ReplicationLagSeconds' && m.Unit === 'Seconds'),
    );
    expect(emf.length).toBeGreaterThan(0);
    // The token was read once through the extension, and never written anywhere.
    expect(extension.requests).toBe(1);
    expect(output.join('')).not.toContain(TOKEN);
  });

  it('a moved tag is repaired; a digest delete removes exactly its tags', async () => {
    const repository = 'aws/changes';
    const doomed = await pushImage(primary.url, repository, 'a', { seed: 'doomed' });
    await pushManifest(primary.url, repository, 'b', doomed.bytes, doomed.mediaType);
    const kept = await pushImage(primary.url, repository, 'c', { seed: 'one' });
    await syncUntil(async () => Object.keys(await readTags(eu.url, repository)).length === 3);

    const moved = await pushImage(primary.url, repository, 'c', { seed: 'two' });
    await deleteManifest(primary.url, repository, doomed.digest);

    await syncUntil(async () => JSON.stringify(await readTags(eu.url, repository)) === JSON.stringify({ c: moved.digest }));
    expect(await manifestExists(eu.url, repository, moved.digest)).toBe(true);
    expect(kept.digest).not.toBe(moved.digest);
  });

  it('refuses a wrong or missing token (401), garbage (400), an oversized body (413), other methods and paths, and sends nothing to the queue', async () => {
    await drain(aws.sqs, syncSource());
    const body = JSON.stringify({ events: [forgedEvent('push', 'aws/refused', 'v1', 'x')] });
    const answers = await Promise.all([
      invokeNotify({ 'content-type': EVENTS_TYPE }, body),
      invokeNotify({ authorization: `Bearer ${TOKEN}0`, 'content-type': EVENTS_TYPE }, body),
      invokeNotify({ authorization: `Bearer ${TOKEN}`, 'content-type': EVENTS_TYPE }, '{"events": [}'),
      invokeNotify({ authorization: `Bearer ${TOKEN}`, 'content-type': EVENTS_TYPE }, Buffer.alloc(1024 * 1024 + 1, 0x20)),
      invokeNotify({ authorization: `Bearer ${TOKEN}` }, '', 'GET'),
      invokeNotify({ authorization: `Bearer ${TOKEN}` }, body, 'POST', '/other'),
    ]);
    expect(answers.map((a) => a.statusCode)).toEqual([401, 401, 400, 413, 405, 404]);
    expect(JSON.stringify(answers)).not.toContain(TOKEN);
    expect(await queueDepth(aws.sqs, aws.queues.sync.url)).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
  });

  it('a forged event (right token, a tag the primary lacks, a url elsewhere) copies nothing', async () => {
    const answer = await invokeNotify(
      { authorization: `Bearer ${TOKEN}`, 'content-type': EVENTS_TYPE },
      JSON.stringify({ events: [forgedEvent('push', 'aws/forged', 'v1', `${eu.url}/v2/aws/push/manifests/v1`)] }),
    );
    expect(answer).toMatchObject({ statusCode: 200, body: JSON.stringify({ accepted: 1, ignored: 0, invalid: 0 }) });
    await drain(aws.sqs, syncSource());
    expect(await readTags(eu.url, 'aws/forged')).toEqual({});
    expect(await record('aws/forged')).toMatchObject({ lastEvent: { status: 'synced', copied: 0 } });
  });

  it('the event jobs of one batch for one pair run as one job', async () => {
    await drain(aws.sqs, syncSource());
    const repository = 'aws/batch';
    const tags = ['t1', 't2', 't3', 't4', 't5'];
    for (const tag of tags) await pushImage(primary.url, repository, tag);
    // One message per push event, as the registry sends one event per request.
    for (const until = Date.now() + 10_000; (await queueDepth(aws.sqs, aws.queues.sync.url)).visible < 5 && Date.now() < until;)
      await new Promise((resolve) => setTimeout(resolve, 50));
    const before = logLines().length;

    await pollOnce(aws.sqs, aws.queues.sync.url, aws.queues.sync.arn, handlers.sync as Handler, { batchSize: 10 });

    const jobs = logLines()
      .slice(before)
      .filter((l) => l.message === 'replicated' && l.repository === repository);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({ tags: 5, status: 'synced' });
    expect(Object.keys(await readTags(eu.url, repository))).toEqual(tags);
  });

  it('Harbor, Quay and GitHub payloads on their paths of the function URL reach the secondary; forged ones are refused 401 and send nothing', async () => {
    const images = {
      harbor: await pushImage(primary.url, 'aws/harbor', 'v1', { seed: 'harbor' }),
      quay: await pushImage(primary.url, 'aws/quay', 'v1', { seed: 'quay' }),
      github: await pushImage(primary.url, 'octo/aws-github', 'v1', { seed: 'github' }),
    };
    const repositories = { harbor: 'aws/harbor', quay: 'aws/quay', github: 'octo/aws-github' };
    // The primary's own events copy them first; then the secondary loses them, which no event tells:
    // only the vendor payloads below can bring them back.
    await syncUntil(async () => (await Promise.all(Object.values(repositories).map((r) => readTags(eu.url, r)))).every((tags) => tags.v1 !== undefined));
    // Until nothing is left, not even a delayed second look at a tag.
    const empty = JSON.stringify({ visible: 0, inFlight: 0, delayed: 0 });
    await syncUntil(async () => JSON.stringify(await queueDepth(aws.sqs, aws.queues.sync.url)) === empty);
    for (const [format, repository] of Object.entries(repositories)) await deleteManifest(eu.url, repository, images[format as keyof typeof images].digest);

    const githubBody = JSON.stringify(githubPackageEvent('package', 'octo', 'aws-github', { tag: 'v1', digest: images.github.digest }));
    const harborBody = JSON.stringify(harborPayload('PUSH_ARTIFACT', 'aws/harbor', [{ tag: 'v1', digest: images.harbor.digest }], Date.now() / 1000));
    const quayBody = JSON.stringify(quayPush('aws/quay', ['v1']));
    const json = { 'content-type': 'application/json' };
    const forged = await Promise.all([
      invokeNotify({ ...json, authorization: `Bearer ${TOKEN}0` }, harborBody, 'POST', '/events/harbor'),
      invokeNotify(json, quayBody, 'POST', `/events/quay/${TOKEN}0`),
      invokeNotify({ ...json, 'x-github-event': 'package', 'x-hub-signature-256': signGitHub(githubBody, 'wrong') }, githubBody, 'POST', '/events/github'),
    ]);
    expect(forged.map((a) => a.statusCode)).toEqual([401, 401, 401]);
    expect(JSON.stringify(await queueDepth(aws.sqs, aws.queues.sync.url))).toBe(empty);

    const answers = await Promise.all([
      invokeNotify({ ...json, authorization: `Bearer ${TOKEN}` }, harborBody, 'POST', '/events/harbor'),
      invokeNotify(json, quayBody, 'POST', `/events/quay/${TOKEN}`),
      invokeNotify(
        { ...json, 'x-github-event': 'package', 'x-hub-signature-256': signGitHub(githubBody, GITHUB_SECRET) },
        githubBody,
        'POST',
        '/events/github',
      ),
    ]);

    expect(answers.map((a) => [a.statusCode, a.body])).toEqual(Array(3).fill([200, JSON.stringify({ accepted: 1, ignored: 0, invalid: 0 })]));
    await syncUntil(async () => (await Promise.all(Object.values(repositories).map((r) => readTags(eu.url, r)))).every((tags) => tags.v1 !== undefined));
    for (const [format, repository] of Object.entries(repositories))
      expect(await readTags(eu.url, repository)).toEqual({ v1: images[format as keyof typeof images].digest });
    expect(JSON.stringify(forged)).not.toContain(TOKEN);
    expect(output.join('')).not.toContain(GITHUB_SECRET);
  });
});
