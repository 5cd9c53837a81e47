// Registry notifications read as hints, the webhook door's answers and coalescing: no registry, no server.
import { describe, expect, it } from 'vitest';
import { PendingTags, isEventJob, jobsForHints, mergeJobs, pairKey } from '../shared/jobs/events/coalesce.js';
import { NOTIFICATION_MEDIA_TYPE, readNotifications, type TagHint } from '../shared/jobs/events/notification.js';
import {
  MAX_BODY_BYTES,
  answerWebhook,
  bearerMatches,
  checkHeaders,
  fixedToken,
  readBody,
  rereadToken,
  type WebhookDoor,
  type WebhookRequest,
} from '../shared/jobs/events/webhook.js';
import { noMetrics } from '../shared/jobs/ports.js';
import { silentLogger } from '../shared/engine/index.js';
import { SyncMessage, parseInput, parseMessage, type VerifyMessage } from '../shared/jobs/messages.js';
import { enqueueEventJobs } from '../shared/jobs/events/enqueue.js';
import { PairScheduler, type PairJob } from '../shared/local/pair-scheduler.js';
import { unscoped } from './support/scopes.js';
import { MemoryQueue } from '../shared/local/memory-queue.js';
import { parseDuration } from '../shared/cli/listen.js';
import { lastEventCell } from '../shared/cli/local-commands.js';
import { newRecord } from '../shared/jobs/record.js';
import { coalescedRecords } from '../shared/jobs/events/batch.js';
import { tokenOf } from '../shared/aws/notify-runtime.js';

const NOW = Date.parse('2026-11-29T10:00:00Z');
const DIGEST = `sha256:${'a'.repeat(64)}`;
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** An event as registry 2.8.2 sends it (fields it always sends, plus the target's). */
function event(action: string, target: Record<string, unknown>, timestamp = '2026-11-29T09:59:59.123456789Z') {
  return {
    id: 'e1',
    timestamp,
    action,
    target: { url: 'http://evil.example.com/v2/x/manifests/y', ...target },
    request: { id: 'r', addr: '127.0.0.1:1', host: 'registry', method: 'PUT', useragent: 'skopeo' },
    actor: {},
    source: { addr: 'registry:5000', instanceID: 'i' },
  };
}
const push = (repository: string, tag?: string, mediaType = MANIFEST) =>
  event('push', { mediaType, digest: DIGEST, size: 500, length: 500, repository, ...(tag ? { tag } : {}) });
const envelope = (...events: unknown[]) => ({ events });

describe('readNotifications: events are hints for (repository, tag), nothing more', () => {
  it("a manifest push with a tag is a hint for that tag, at the registry's time", () => {
    const read = readNotifications(envelope(push('group/app', 'v1')), NOW);
    expect(read).toEqual({
      hints: [{ repository: 'group/app', tag: 'v1', at: Date.parse('2026-11-29T09:59:59.123Z'), pushed: DIGEST }],
      digests: [],
      ignored: 0,
      invalid: [],
    });
  });

  it('a tag delete is a hint; the digest delete before it is a digest hint, and its tag deletes stay tag hints', () => {
    const read = readNotifications(
      envelope(
        event('delete', { digest: DIGEST, repository: 'app' }),
        event('delete', { repository: 'app', tag: 'a' }),
        event('delete', { repository: 'app', tag: 'b' }),
      ),
      NOW,
    );
    expect(read.hints.map((h) => h.tag)).toEqual(['a', 'b']);
    expect(read.digests.map((d) => `${d.action} ${d.digest}`)).toEqual([`delete ${DIGEST}`]);
    expect(read.ignored).toBe(0);
  });

  it.each([
    ["a pull (the engine's own reads raise them)", event('pull', { mediaType: MANIFEST, digest: DIGEST, repository: 'app', tag: 'v1' })],
    ['a mount', event('mount', { mediaType: 'application/octet-stream', digest: DIGEST, repository: 'app' })],
    ['an unknown action', event('rename', { repository: 'app', tag: 'v1' })],
    ['a blob push', push('app', undefined, 'application/octet-stream')],
    ['a layer push naming a tag', push('app', 'v1', 'application/vnd.oci.image.layer.v1.tar+gzip')],
    ['a push by digest without a media type (a blob)', event('push', { digest: DIGEST, repository: 'app' })],
    ['a blob delete that names its media type', event('delete', { mediaType: 'application/octet-stream', digest: DIGEST, repository: 'app' })],
  ])('ignores %s', (_name, ignored) => {
    expect(readNotifications(envelope(ignored), NOW)).toEqual({ hints: [], digests: [], ignored: 1, invalid: [] });
  });

  it('reports events with an invalid repository or tag, and still reads the rest', () => {
    const read = readNotifications(envelope(push('../etc', 'v1'), push('app', '-bad'), event('push', { repository: 7, tag: 'v1' }), push('app', 'good')), NOW);
    expect(read.hints.map((h) => `${h.repository}:${h.tag}`)).toEqual(['app:good']);
    expect(read.invalid.map((i) => i.index)).toEqual([0, 1, 2]);
    expect(read.invalid[0]!.reason).toMatch(/invalid repository name/);
  });

  it("never keeps the event's url or source: a hint is a repository, a tag, a time and (a push) the digest it announced", () => {
    const [pushed] = readNotifications(envelope(push('app', 'v1')), NOW).hints;
    const [deleted] = readNotifications(envelope(event('delete', { digest: DIGEST, repository: 'app', tag: 'v1' })), NOW).hints;
    const [invalid] = readNotifications(envelope(event('push', { mediaType: MANIFEST, digest: 'sha256:x', repository: 'app', tag: 'v1' })), NOW).hints;
    expect(Object.keys(pushed!).sort()).toEqual(['at', 'pushed', 'repository', 'tag']);
    expect(Object.keys(deleted!).sort()).toEqual(['at', 'repository', 'tag']);
    expect(Object.keys(invalid!).sort()).toEqual(['at', 'repository', 'tag']);
  });

  it('takes the time of receipt for a missing or future timestamp, so a lag is never negative', () => {
    const read = readNotifications(
      envelope(
        event('push', { mediaType: MANIFEST, repository: 'a', tag: 'x' }, 'not a date'),
        event('push', { mediaType: MANIFEST, repository: 'a', tag: 'y' }, '2099-01-01T00:00:00Z'),
      ),
      NOW,
    );
    expect(read.hints.map((h) => h.at)).toEqual([NOW, NOW]);
  });

  it.each([[{}], [{ events: 'x' }], [[]], [null], [{ events: [1, 2] }]])('rejects a body that is not an envelope: %j', (body) => {
    const read = () => readNotifications(body, NOW);
    if (Array.isArray((body as { events?: unknown } | null)?.events)) expect(read().ignored).toBe(2);
    else expect(read).toThrow(/not a notification envelope/);
  });
});

describe('readNotifications: a manifest pushed or deleted by digest alone is a digest hint', () => {
  const AT = Date.parse('2026-11-29T09:59:59.123Z');

  it('a digest-only push of an OCI manifest (a signature, an SBOM) is a push hint for that digest', () => {
    expect(readNotifications(envelope(push('group/app')), NOW)).toEqual({
      hints: [],
      digests: [{ repository: 'group/app', digest: DIGEST, action: 'push', at: AT }],
      ignored: 0,
      invalid: [],
    });
  });

  it("a digest-only delete, which registry 2.8 sends without a media type, is a delete hint; the event's url is not kept", () => {
    const { digests } = readNotifications(envelope(event('delete', { digest: DIGEST, repository: 'app' })), NOW);
    expect(digests).toEqual([{ repository: 'app', digest: DIGEST, action: 'delete', at: AT }]);
    expect(Object.keys(digests[0]!).sort()).toEqual(['action', 'at', 'digest', 'repository']);
  });

  it('reports an invalid or missing digest, or an invalid repository, and still reads the rest', () => {
    const read = readNotifications(
      envelope(
        event('push', { mediaType: MANIFEST, digest: 'sha256:x', repository: 'app' }),
        event('delete', { repository: 'app' }),
        event('delete', { digest: DIGEST, repository: '../etc' }),
        push('app'),
      ),
      NOW,
    );
    expect(read.digests.map((d) => d.digest)).toEqual([DIGEST]);
    expect(read.invalid).toEqual([
      { index: 0, action: 'push', reason: 'invalid digest' },
      { index: 1, action: 'delete', reason: 'no tag and no digest' },
      { index: 2, action: 'delete', reason: expect.stringMatching(/invalid repository name/) },
    ]);
  });

  it('a blob pushed by digest is still ignored', () => {
    expect(readNotifications(envelope(push('app', undefined, 'application/vnd.oci.image.layer.v1.tar+gzip')), NOW)).toEqual({
      hints: [],
      digests: [],
      ignored: 1,
      invalid: [],
    });
  });

  it('a tag event that carries a digest stays a tag hint only', () => {
    const read = readNotifications(envelope(push('app', 'v1'), event('delete', { digest: DIGEST, repository: 'app', tag: 'v1' })), NOW);
    expect(read).toEqual({
      hints: [
        { repository: 'app', tag: 'v1', at: AT, pushed: DIGEST },
        { repository: 'app', tag: 'v1', at: AT },
      ],
      digests: [],
      ignored: 0,
      invalid: [],
    });
  });
});

describe("the webhook's answers", () => {
  const TOKEN = 'correct-horse-battery-staple';
  const ok = { authorization: `Bearer ${TOKEN}`, contentType: NOTIFICATION_MEDIA_TYPE };

  it.each([
    ['the right token', `Bearer ${TOKEN}`, true],
    ['the scheme in any case', `bearer ${TOKEN}`, true],
    ['no header', undefined, false],
    ['an empty token', 'Bearer ', false],
    ['a wrong token', 'Bearer correct-horse-battery-stapler', false],
    ['a prefix of it', 'Bearer correct', false],
    ['basic auth', `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`, false],
    ['the token without a scheme', TOKEN, false],
  ])('bearerMatches: %s -> %s', (_name, header, expected) => {
    expect(bearerMatches(header, TOKEN)).toBe(expected);
  });

  it('never matches when the configured token is empty', () => {
    expect(bearerMatches('Bearer ', '')).toBe(false);
    expect(bearerMatches(undefined, '')).toBe(false);
  });

  it.each([
    ['401 without the token, before anything else', { contentType: 'text/plain', contentLength: String(MAX_BODY_BYTES * 2) }, 401],
    ['415 for a body that is not JSON', { ...ok, contentType: 'text/plain' }, 415],
    ['413 for a declared length over 1 MiB', { ...ok, contentLength: String(MAX_BODY_BYTES + 1) }, 413],
    ["nothing yet for the registry's own request", { ...ok, contentLength: '900' }, undefined],
    ['nothing yet for plain JSON', { ...ok, contentType: 'application/json; charset=utf-8' }, undefined],
  ])('checkHeaders: %s', (_name, headers, status) => {
    expect(checkHeaders(headers, TOKEN)?.status).toBe(status);
  });

  it.each([
    ['garbage', Buffer.from('\u0000not json'), 400],
    ['JSON that is not an envelope', Buffer.from('{"event": []}'), 400],
    ['a body over 1 MiB', Buffer.alloc(MAX_BODY_BYTES + 1, 0x20), 413],
    ['an envelope', Buffer.from(JSON.stringify(envelope(push('app', 'v1')))), 200],
  ])('readBody: %s -> %i', (_name, body, status) => {
    expect(readBody(body, NOW).status).toBe(status);
  });
});

describe('answerWebhook: the one door of the listener and the notify function', () => {
  const TOKEN = 'correct-horse-battery-staple';
  const body = Buffer.from(JSON.stringify(envelope(push('app', 'v1'))));

  /** A door that records what it is handed and whether a body was read. */
  function door(overrides: Partial<WebhookDoor> = {}) {
    const taken: string[] = [];
    const door: WebhookDoor = {
      token: fixedToken(TOKEN),
      logger: silentLogger,
      metrics: noMetrics,
      clock: () => NOW,
      health: () => ({ status: 'ok', pendingTags: 0 }),
      take: (read) => void taken.push(...read.hints.map((h) => `${h.repository}:${h.tag}`)),
      ...overrides,
    };
    return { door, taken };
  }
  function request(overrides: Partial<WebhookRequest> & { raw?: Buffer | undefined } = {}) {
    const reads = { count: 0 };
    const { raw, ...rest } = { raw: body, ...overrides };
    const request: WebhookRequest = {
      method: 'POST',
      path: '/events',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': NOTIFICATION_MEDIA_TYPE },
      body: async () => (reads.count++, raw),
      ...rest,
    };
    return { request, reads };
  }

  it('hands the hints on, then answers 200 with counts only', async () => {
    const { door: d, taken } = door();
    const answer = await answerWebhook(request().request, d);
    expect(answer).toEqual({ statusCode: 200, headers: { 'content-type': 'application/json' }, body: '{"accepted":1,"ignored":0,"invalid":0}' });
    expect(taken).toEqual(['app:v1']);
  });

  it('hands digest hints on with the tag hints, and counts them as accepted', async () => {
    const digests: string[] = [];
    const { door: d } = door({ take: (read) => void digests.push(...read.digests.map((h) => `${h.repository}@${h.digest}`)) });
    const raw = Buffer.from(JSON.stringify(envelope(push('app', 'v1'), push('app'))));
    const answer = await answerWebhook(request({ raw }).request, d);
    expect(answer.body).toBe('{"accepted":2,"ignored":0,"invalid":0}');
    expect(digests).toEqual([`app@${DIGEST}`]);
  });

  it.each([
    ['GET /healthz: what the server reports', 200, { method: 'GET', path: '/healthz' }, '{"status":"ok","pendingTags":0}'],
    ['HEAD /healthz', 200, { method: 'HEAD', path: '/healthz' }, '{"status":"ok","pendingTags":0}'],
    ['another path', 404, { path: '/other' }, '{"error":"not found"}'],
    ['another method', 405, { method: 'GET' }, '{"error":"POST only"}'],
    ['no token', 401, { headers: { 'content-type': NOTIFICATION_MEDIA_TYPE } }, '{"error":"missing or wrong bearer token"}'],
    ['a body over the limit', 413, { raw: undefined }, `{"error":"body larger than ${MAX_BODY_BYTES} bytes"}`],
    ['garbage', 400, { raw: Buffer.from('{') }, '{"error":"body is not valid JSON"}'],
  ] as const)('%s -> %i, nothing handed on', async (_name, status, overrides, text) => {
    const { door: d, taken } = door();
    const answer = await answerWebhook(request(overrides as Partial<WebhookRequest>).request, d);
    expect([answer.statusCode, answer.body]).toEqual([status, text]);
    expect(taken).toEqual([]);
  });

  it('answers 401 with a Bearer challenge, and never reads the body of a request without the token', async () => {
    const { request: r, reads } = request({ headers: { authorization: 'Bearer wrong' } });
    const answer = await answerWebhook(r, door().door);
    expect(answer).toMatchObject({ statusCode: 401, headers: { 'www-authenticate': 'Bearer' } });
    expect(reads.count).toBe(0);
  });

  it('answers 503 with Retry-After while the server shuts down: the registry sends the event again', async () => {
    const { door: d, taken } = door({ closing: () => true });
    const answer = await answerWebhook(request().request, d);
    expect(answer).toMatchObject({ statusCode: 503, headers: { 'retry-after': '1' } });
    expect(taken).toEqual([]);
  });

  it('fails when the hand-off fails, so the server answers 5xx and the registry sends again', async () => {
    const { door: d } = door({ take: async () => Promise.reject(new Error('queue down')) });
    await expect(answerWebhook(request().request, d)).rejects.toThrow('queue down');
  });

  it('a rotated token: the first request with it reads the token again and is taken', async () => {
    let stored = 'old-token-0123456789';
    let clock = NOW;
    const token = rereadToken(
      async () => stored,
      'test store',
      () => clock,
    );
    const { door: d, taken } = door({ token });
    const withToken = (value: string) => request({ headers: { authorization: `Bearer ${value}` } }).request;
    expect((await answerWebhook(withToken('old-token-0123456789'), d)).statusCode).toBe(200);

    stored = 'new-token-0123456789';
    clock += 31_000;

    expect((await answerWebhook(withToken('new-token-0123456789'), d)).statusCode).toBe(200);
    expect((await answerWebhook(withToken('old-token-0123456789'), d)).statusCode).toBe(401);
    expect(taken).toEqual(['app:v1', 'app:v1']);
  });
});

describe('rereadToken: cached, read again on a mismatch at most every 30 s', () => {
  it('reads once while cached, at most once per 30 s on refresh, and again after 5 minutes', async () => {
    let reads = 0;
    let clock = NOW;
    const token = rereadToken(
      async () => `token-${++reads}\n`,
      'test store',
      () => clock,
    );

    expect(await token.current()).toBe('token-1');
    expect(await token.current()).toBe('token-1');
    expect(await token.refresh()).toBeUndefined();
    clock += 30_000;
    expect(await token.refresh()).toBe('token-2');
    clock += 5 * 60_000;
    expect(await token.current()).toBe('token-3');
    expect(reads).toBe(3);
  });

  it('says which store holds no token, rather than refusing every request', async () => {
    await expect(rereadToken(async () => ' ', 'secret geo/webhook').current()).rejects.toThrow('secret geo/webhook holds no webhook token');
  });
});

describe('coalescing: one job per pair, nothing dropped', () => {
  const hint = (repository: string, tag: string, at = NOW - 1000) => ({ repository, tag, at });
  /** The hints of a notification that names tags only. */
  const tagHints = (hints: TagHint[]) => ({ hints, digests: [] });

  it('gathers the tags of many events for one pair into one job, with the earliest event and request times', () => {
    const pending = new PendingTags();
    pending.addHints(tagHints([hint('app', 'v2', NOW - 500), hint('app', 'v1', NOW - 900), hint('app', 'v2', NOW - 100)]), unscoped('eu'), NOW);
    pending.addHints(tagHints([hint('app', 'v3', NOW - 50)]), unscoped('eu'), NOW + 10);

    expect(pending.take(pairKey({ repository: 'app', secondary: 'eu' }))).toEqual({
      repository: 'app',
      secondary: 'eu',
      tags: ['v1', 'v2', 'v3'],
      eventAt: NOW - 900,
      requestedAt: NOW,
    });
    expect(pending.size).toBe(0);
  });

  it('carries the digest the latest push announced per tag; a later delete clears it', () => {
    const D2 = `sha256:${'b'.repeat(64)}`;
    const pending = new PendingTags();
    pending.addHints(
      tagHints([{ ...hint('app', 'v1'), pushed: DIGEST }, { ...hint('app', 'v2'), pushed: DIGEST }, { ...hint('app', 'v1'), pushed: D2 }, hint('app', 'v2')]),
      unscoped('eu'),
      NOW,
    );
    const job = pending.take(pairKey({ repository: 'app', secondary: 'eu' }))!;
    expect(job).toMatchObject({ tags: ['v1', 'v2'], pushed: { v1: D2 } });
    expect(parseInput(SyncMessage, job)).toEqual(job);
  });

  it('keeps pairs apart: each repository and each secondary its own job', () => {
    const { jobs } = jobsForHints(tagHints([hint('a', 'v1'), hint('b', 'v1'), hint('a', 'v2')]), unscoped('eu', 'us'), NOW);
    expect(jobs.map((j) => `${j.secondary}/${j.repository}:${j.tags!.join(',')}`).sort()).toEqual(['eu/a:v1,v2', 'eu/b:v1', 'us/a:v1,v2', 'us/b:v1']);
    for (const job of jobs) expect(parseInput(SyncMessage, job)).toEqual(job);
  });

  it('turns more than 1,000 pending tags of one pair into a forced full sync of the repository', () => {
    const pending = new PendingTags();
    pending.addHints(tagHints(Array.from({ length: 1001 }, (_, i) => hint('big', `t${i}`))), unscoped('eu'), NOW);
    expect(pending.take(pairKey({ repository: 'big', secondary: 'eu' }))).toEqual({ repository: 'big', secondary: 'eu', force: true, requestedAt: NOW });
  });

  it('gathers the digests of one pair as a set beside its tags, whether pushed or deleted', () => {
    const D2 = `sha256:${'b'.repeat(64)}`;
    const digest = (repository: string, value: string, action: 'push' | 'delete', at = NOW - 1000) => ({ repository, digest: value, action, at });
    const pending = new PendingTags();
    pending.addHints({ hints: [], digests: [digest('app', D2, 'push', NOW - 300), digest('app', DIGEST, 'push')] }, unscoped('eu'), NOW);
    pending.addHints({ hints: [hint('app', 'v1', NOW - 200)], digests: [digest('app', D2, 'delete')] }, unscoped('eu'), NOW + 5);
    pending.addHints({ hints: [], digests: [digest('other', DIGEST, 'delete')] }, unscoped('eu'), NOW);
    expect(pending.digestCount).toBe(3);

    const job = pending.take(pairKey({ repository: 'app', secondary: 'eu' }))!;
    expect(job).toEqual({ repository: 'app', secondary: 'eu', tags: ['v1'], digests: [DIGEST, D2], eventAt: NOW - 1000, requestedAt: NOW });
    expect(parseInput(SyncMessage, job)).toEqual(job);
    const digestsOnly = pending.take(pairKey({ repository: 'other', secondary: 'eu' }))!;
    expect(digestsOnly).toEqual({ repository: 'other', secondary: 'eu', digests: [DIGEST], eventAt: NOW - 1000, requestedAt: NOW });
    expect(isEventJob(digestsOnly)).toBe(true);
  });

  it('counts digests with tags against the limit: past 1,000 together, a forced full sync', () => {
    const digests = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ repository: 'big', digest: `sha256:${i.toString(16).padStart(64, '0')}`, action: 'push' as const, at: NOW }));
    const tags = Array.from({ length: 600 }, (_, i) => hint('big', `t${i}`));
    const atLimit = jobsForHints({ hints: tags, digests: digests(400) }, unscoped('eu'), NOW).jobs;
    expect(atLimit).toEqual([expect.objectContaining({ tags: expect.any(Array), digests: expect.any(Array) })]);
    expect(parseInput(SyncMessage, atLimit[0])).toEqual(atLimit[0]);
    expect(jobsForHints({ hints: tags, digests: digests(401) }, unscoped('eu'), NOW).jobs).toEqual([
      { repository: 'big', secondary: 'eu', force: true, requestedAt: NOW },
    ]);
  });

  it('merges the event jobs of one SQS batch per pair, and leaves full syncs as they are', () => {
    const messages = [
      { repository: 'app', secondary: 'eu', tags: ['v1'], eventAt: NOW - 30, requestedAt: NOW - 20 },
      { repository: 'app', secondary: 'eu' },
      { repository: 'app', secondary: 'eu', tags: ['v2', 'v1'], eventAt: NOW - 40, requestedAt: NOW - 10, attempt: 2 },
      { repository: 'app', secondary: 'us', tags: ['v1'], eventAt: NOW, requestedAt: NOW },
    ];
    expect(mergeJobs(messages, NOW)).toEqual([
      { message: { repository: 'app', secondary: 'eu' }, from: [1] },
      { message: { repository: 'app', secondary: 'eu', tags: ['v1', 'v2'], eventAt: NOW - 40, requestedAt: NOW - 20, attempt: 2 }, from: [0, 2] },
      { message: { repository: 'app', secondary: 'us', tags: ['v1'], eventAt: NOW, requestedAt: NOW }, from: [3] },
    ]);
  });

  it('merges event jobs that carry only digests with those that carry tags', () => {
    const D2 = `sha256:${'b'.repeat(64)}`;
    const messages = [
      { repository: 'app', secondary: 'eu', digests: [D2], eventAt: NOW - 30, requestedAt: NOW - 20 },
      { repository: 'app', secondary: 'eu', tags: ['v1'], digests: [DIGEST, D2], eventAt: NOW - 10, requestedAt: NOW - 10, attempt: 2 },
    ];
    expect(mergeJobs(messages, NOW)).toEqual([
      {
        message: { repository: 'app', secondary: 'eu', tags: ['v1'], digests: [DIGEST, D2], eventAt: NOW - 30, requestedAt: NOW - 20, attempt: 2 },
        from: [0, 1],
      },
    ]);
  });
});

describe('digest hints reach an event job on both paths', () => {
  const read = { hints: [], digests: [{ repository: 'app', digest: DIGEST, action: 'push' as const, at: NOW - 5 }], ignored: 0, invalid: [] };
  const job = { repository: 'app', secondary: 'eu', digests: [DIGEST], eventAt: NOW - 5, requestedAt: NOW };

  it('the notify function sends one job per pair to the sync queue', async () => {
    const sent: SyncMessage[] = [];
    const take = enqueueEventJobs({
      syncQueue: { send: async (messages) => void sent.push(...messages) },
      secondaries: unscoped('eu'),
      logger: silentLogger,
      metrics: noMetrics,
    });
    await take(read, NOW);
    expect(sent).toEqual([job]);
  });

  it("the listener's pair scheduler starts the pair's job at once", async () => {
    const ran: PairJob[] = [];
    const scheduler = new PairScheduler({
      workers: 1,
      syncQueue: new MemoryQueue<SyncMessage>(),
      verifyQueue: new MemoryQueue<VerifyMessage>(),
      run: async (pairJob) => void ran.push(pairJob),
      logger: silentLogger,
    });
    scheduler.addHints(read, unscoped('eu'), NOW);
    expect(ran).toEqual([{ kind: 'sync', message: job }]);
    await scheduler.stop(1_000);
  });
});

describe('the sync message: digests of an event job', () => {
  const pair = { repository: 'app', secondary: 'eu' };

  it('accepts digests alone or beside tags, and such a message is an event job', () => {
    for (const message of [
      { ...pair, digests: [DIGEST] },
      { ...pair, tags: ['v1'], digests: [DIGEST] },
    ]) {
      expect(parseMessage(SyncMessage, JSON.stringify(message))).toEqual(message);
      expect(isEventJob(message)).toBe(true);
    }
    expect(isEventJob(pair)).toBe(false);
  });

  it.each([
    ['an invalid digest', { ...pair, digests: ['sha256:x'] }, /digests\.0: invalid digest/],
    ['an empty list', { ...pair, digests: [] }, /digests: /],
    ['more than 1,000', { ...pair, digests: Array.from({ length: 1001 }, () => DIGEST) }, /digests: /],
    ['not a list', { ...pair, digests: DIGEST }, /digests: /],
  ])('refuses %s', (_name, message, problem) => {
    expect(() => parseInput(SyncMessage, message)).toThrow(problem);
  });
});

describe('geo-sync listen: its options and status column', () => {
  it.each([
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['0', 0],
  ])('--reconcile-every %s is %i ms', (value, ms) => {
    expect(parseDuration(value)).toBe(ms);
  });

  it.each(['', '1', '1d', '-5m', '1.5h', '5 m', 'soon'])('--reconcile-every %j is a usage error', (value) => {
    expect(() => parseDuration(value)).toThrow(/30s, 5m, 1h/);
  });

  it('status shows the last event job, how it ended and its lag', () => {
    const base = newRecord({ repository: 'app', secondary: 'eu' }, NOW);
    const lastEvent = {
      at: '2026-11-29T09:59:59.000Z',
      finishedAt: '2026-11-29T10:00:00.400Z',
      status: 'synced' as const,
      tags: 1,
      firstTags: ['v1'],
      copied: 1,
      repaired: 0,
      removed: 0,
    };
    const later = Date.parse('2026-11-29T10:05:30.400Z');
    expect(lastEventCell(base, later)).toBe('-');
    expect(lastEventCell({ ...base, lastEvent, lagSeconds: 1.4 }, later)).toBe('5m ago synced (1 tag, lag 1.4 s)');
    expect(lastEventCell({ ...base, lastEvent: { ...lastEvent, status: 'failed', tags: 3 }, lagSeconds: 1.4 }, later)).toBe('5m ago failed (3 tags)');
    expect(lastEventCell({ ...base, lastEvent: { ...lastEvent, tags: 0, firstTags: [], digests: 2 } }, later)).toBe('5m ago synced (0 tags, 2 digests)');
  });
});

describe("coalescedRecords: an SQS batch's event jobs for one pair run once, and share the outcome", () => {
  const record = (messageId: string, body: unknown) => ({ messageId, body: typeof body === 'string' ? body : JSON.stringify(body) });

  it('runs one merged job for the pair, the other messages alone, and fails a poison record alone', async () => {
    const records = [
      record('1', { repository: 'app', secondary: 'eu', tags: ['v1'], eventAt: 5 }),
      record('2', { repository: 'app', secondary: 'eu', tags: ['v2'], eventAt: 3 }),
      record('3', 'not json'),
      record('4', { repository: 'app', secondary: 'eu' }),
    ];
    const runs: SyncMessage[] = [];
    const handle = coalescedRecords(
      records,
      (r) => parseMessage(SyncMessage, r.body),
      NOW,
      async (message) => {
        runs.push(message);
        if (message.tags) throw new Error('registry down');
        return 'ok';
      },
    );

    const outcomes = await Promise.allSettled(records.map(handle));

    expect(runs).toEqual([
      { repository: 'app', secondary: 'eu', tags: ['v1', 'v2'], eventAt: 3, requestedAt: NOW },
      { repository: 'app', secondary: 'eu' },
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected', 'fulfilled']);
    expect((outcomes[2] as PromiseRejectedResult).reason.message).toMatch(/not valid JSON/);
  });
});

describe('the webhook token secret', () => {
  it.each([
    ['the token itself', '  s3cret-token\n', 's3cret-token'],
    ['a key/value secret', '{"token": "s3cret-token"}', 's3cret-token'],
    ['a key/value secret without "token"', '{"other": "x"}', ''],
    ['nothing', undefined, ''],
  ])('reads %s', (_name, value, token) => {
    expect(tokenOf(value)).toBe(token);
  });
});
