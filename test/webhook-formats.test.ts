// The webhook formats of Harbor, Quay and GitHub read as hints, each on its own path of the door,
// with its own authentication; and the strict reader of the Prometheus text the listener serves.
// No registry, no server: the end-to-end runs are listen-formats.test.ts and aws/notify.test.ts.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../shared/engine/index.js';
import type { ReadNotifications } from '../shared/jobs/events/notification.js';
import { readGitHub, readHarbor, readQuay } from '../shared/jobs/events/vendor-notifications.js';
import {
  answerWebhook,
  fixedToken,
  githubSignatureMatches,
  rereadToken,
  routeOf,
  type RefusalReason,
  type WebhookDoor,
  type WebhookFormat,
  type WebhookRequest,
} from '../shared/jobs/events/webhook.js';
import { noMetrics } from '../shared/jobs/ports.js';
import { keyOf, tokenOf } from '../shared/aws/notify-runtime.js';
import { ListenerMetrics } from '../shared/local/metrics.js';
import { parsePrometheusText, sampleValue } from './support/prometheus-text.js';
import { githubPackageEvent, harborPayload, quayPush, signGitHub } from './support/vendor-payloads.js';

const NOW = Date.parse('2026-12-01T10:00:00Z');
const DIGEST = `sha256:${'b'.repeat(64)}`;
const TOKEN = 'token-for-the-bearer-formats-0123456789';
const GITHUB_SECRET = 'github-secret-0123456789abcdef';

describe('Harbor (Default format)', () => {
  it('PUSH_ARTIFACT: a tag hint per resource, the digest as the push announces it, the time from occur_at', () => {
    const read = readHarbor(harborPayload('PUSH_ARTIFACT', 'library/app', [{ tag: 'v1', digest: DIGEST }], NOW / 1000 - 5), NOW);
    expect(read).toEqual({ hints: [{ repository: 'library/app', tag: 'v1', at: NOW - 5000, pushed: DIGEST }], digests: [], ignored: 0, invalid: [] });
  });

  it('an artifact pushed by digest: Harbor puts the digest in `tag`, read as a digest hint, never a tag', () => {
    const read = readHarbor(harborPayload('PUSH_ARTIFACT', 'library/app', [{ tag: DIGEST, digest: DIGEST }], NOW / 1000), NOW);
    expect(read.hints).toEqual([]);
    expect(read.digests).toEqual([{ repository: 'library/app', digest: DIGEST, action: 'push', at: NOW }]);
  });

  it('DELETE_ARTIFACT: its tag is looked at, and its digest (removed only where the primary answers 404)', () => {
    const read = readHarbor(harborPayload('DELETE_ARTIFACT', 'library/app', [{ tag: 'v1', digest: DIGEST }], NOW / 1000), NOW);
    expect(read.hints).toEqual([{ repository: 'library/app', tag: 'v1', at: NOW }]);
    expect(read.digests).toEqual([{ repository: 'library/app', digest: DIGEST, action: 'delete', at: NOW }]);
  });

  it.each(['PULL_ARTIFACT', 'SCANNING_COMPLETED', 'QUOTA_EXCEED', 'REPLICATION'])('%s carries no work', (type) => {
    expect(readHarbor({ type, occur_at: NOW / 1000, operator: 'admin', event_data: {} }, NOW)).toMatchObject({ hints: [], digests: [], ignored: 1 });
  });

  it('an invalid repository, tag or digest is reported; the other resources are still read', () => {
    const read = readHarbor(
      harborPayload(
        'PUSH_ARTIFACT',
        'library/app',
        [
          { tag: 'bad tag', digest: DIGEST },
          { tag: 'sha256:short', digest: '' },
          { tag: 'v2', digest: DIGEST },
        ],
        NOW / 1000,
      ),
      NOW,
    );
    expect(read.hints.map((h) => h.tag)).toEqual(['v2']);
    expect(read.invalid.map((i) => i.index)).toEqual([0, 1]);
  });

  it("a time ahead of ours is taken as now (no negative lag); a body that is not Harbor's is refused", () => {
    expect(readHarbor(harborPayload('PUSH_ARTIFACT', 'a/b', [{ tag: 'v1', digest: DIGEST }], NOW / 1000 + 60), NOW).hints[0]!.at).toBe(NOW);
    expect(() => readHarbor({ events: [] }, NOW)).toThrow(/not a Harbor webhook payload/);
    expect(() => readHarbor({ type: 'PUSH_ARTIFACT', event_data: { resources: [] } }, NOW)).toThrow(/repository/);
  });
});

describe('Quay (repo_push)', () => {
  it('one tag hint per updated tag, at the time it arrived (Quay sends no time)', () => {
    expect(readQuay(quayPush('acme/app', ['latest', 'v1']), NOW)).toEqual({
      hints: [
        { repository: 'acme/app', tag: 'latest', at: NOW },
        { repository: 'acme/app', tag: 'v1', at: NOW },
      ],
      digests: [],
      ignored: 0,
      invalid: [],
    });
  });

  it("older Quay's updated_tags object (tag to image id) gives the same hints", () => {
    const read = readQuay({ ...quayPush('acme/app', []), updated_tags: { latest: 'b750fe79269d2ec9a3c593ef05b4332b1d1a02a62b4accb2c21d589ff2f5f2dc' } }, NOW);
    expect(read.hints).toEqual([{ repository: 'acme/app', tag: 'latest', at: NOW }]);
  });

  it('a build event or anything without updated_tags is refused', () => {
    expect(() => readQuay({ build_id: 'x', repository: 'acme/app', docker_tags: ['latest'] }, NOW)).toThrow(/not a Quay repo_push/);
  });
});

describe('GitHub (package, registry_package)', () => {
  it.each(['package', 'registry_package'] as const)('%s published: the tag of <owner>/<name> on ghcr.io, with its digest', (event) => {
    const read = readGitHub(event, githubPackageEvent(event, 'Octo-Org', 'hello-world', { tag: 'v1', digest: DIGEST }), NOW);
    expect(read).toEqual({ hints: [{ repository: 'octo-org/hello-world', tag: 'v1', at: NOW, pushed: DIGEST }], digests: [], ignored: 0, invalid: [] });
  });

  it('a version pushed by digest alone (no tag name) is a digest hint', () => {
    const read = readGitHub('package', githubPackageEvent('package', 'octo-org', 'hello-world', { tag: '', digest: DIGEST }), NOW);
    expect(read.digests).toEqual([{ repository: 'octo-org/hello-world', digest: DIGEST, action: 'push', at: NOW }]);
  });

  it('ping, other events, other package types carry no work', () => {
    expect(readGitHub('ping', { zen: 'Keep it logically awesome.', hook_id: 1 }, NOW).ignored).toBe(1);
    expect(readGitHub('push', { ref: 'refs/heads/main' }, NOW).ignored).toBe(1);
    expect(readGitHub(undefined, {}, NOW).ignored).toBe(1);
    const npm = githubPackageEvent('package', 'octo-org', 'lib', { tag: 'v1', digest: DIGEST });
    (npm.package as Record<string, unknown>).package_type = 'npm';
    (npm.package as Record<string, unknown>).ecosystem = 'npm';
    expect(readGitHub('package', npm, NOW).ignored).toBe(1);
  });

  it('a package event without its package is refused', () => {
    const { registry_package: pkg } = githubPackageEvent('registry_package', 'octo-org', 'app', { tag: 'v1', digest: DIGEST }) as { registry_package: unknown };
    expect(() => readGitHub('registry_package', { action: 'published', package: pkg }, NOW)).toThrow(/registry_package missing/);
    expect(() => readGitHub('package', { action: 'published', package: {} }, NOW)).toThrow(/package.name/);
  });

  it('the signature is the HMAC-SHA256 of the exact body; anything else does not match', () => {
    const body = Buffer.from('{"a":1}');
    const good = signGitHub(body, GITHUB_SECRET);
    expect(githubSignatureMatches(good, body, GITHUB_SECRET)).toBe(true);
    expect(githubSignatureMatches(good.toUpperCase().replace('SHA256=', 'sha256='), body, GITHUB_SECRET)).toBe(true);
    expect(githubSignatureMatches(good, Buffer.from('{"a":2}'), GITHUB_SECRET)).toBe(false);
    expect(githubSignatureMatches(good, body, 'another-secret')).toBe(false);
    expect(githubSignatureMatches(good, body, '')).toBe(false);
    expect(githubSignatureMatches(`sha1=${'0'.repeat(40)}`, body, GITHUB_SECRET)).toBe(false);
    expect(githubSignatureMatches(undefined, body, GITHUB_SECRET)).toBe(false);
  });
});

describe('the door: the format from the path, each with its authentication', () => {
  it.each([
    ['/events', 'distribution'],
    ['/events/harbor', 'harbor'],
    ['/events/github', 'github'],
    ['/events/quay/abc', 'quay'],
  ] as const)('%s serves %s', (path, format) => {
    expect(routeOf(path)?.format).toBe(format);
  });

  it.each(['/events/', '/events/quay', '/events/quay/a/b', '/events/gitlab', '/events/harbor/x'])('%s is no webhook path', (path) => {
    expect(routeOf(path)).toBeUndefined();
  });

  function door(overrides: Partial<WebhookDoor> = {}) {
    const taken: ReadNotifications[] = [];
    const refused: [WebhookFormat, RefusalReason][] = [];
    const door: WebhookDoor = {
      token: fixedToken(TOKEN),
      githubSecret: fixedToken(GITHUB_SECRET),
      logger: silentLogger,
      metrics: noMetrics,
      observer: { refused: (format, reason) => void refused.push([format, reason]), read: () => undefined },
      clock: () => NOW,
      health: () => ({ status: 'ok' }),
      take: (read) => void taken.push(read),
      ...overrides,
    };
    return { door, taken, refused };
  }

  function post(path: string, headers: Record<string, string>, payload: unknown) {
    const raw = Buffer.isBuffer(payload) ? payload : Buffer.from(JSON.stringify(payload));
    const reads = { count: 0 };
    const request: WebhookRequest = {
      method: 'POST',
      path,
      headers: { 'content-type': 'application/json', ...headers },
      body: async () => (reads.count++, raw),
    };
    return { request, reads, raw };
  }

  const harbor = harborPayload('PUSH_ARTIFACT', 'library/app', [{ tag: 'v1', digest: DIGEST }], NOW / 1000);
  const quay = quayPush('acme/app', ['v1']);
  const github = githubPackageEvent('package', 'octo-org', 'app', { tag: 'v1', digest: DIGEST });
  const githubHeaders = (body: Buffer, secret = GITHUB_SECRET) => ({ 'x-github-event': 'package', 'x-hub-signature-256': signGitHub(body, secret) });

  it('each format, authenticated as its vendor does, hands on the same kind of hint', async () => {
    const { door: d, taken } = door();
    const githubBody = Buffer.from(JSON.stringify(github));
    const answers = [
      await answerWebhook(post('/events/harbor', { authorization: `Bearer ${TOKEN}` }, harbor).request, d),
      await answerWebhook(post(`/events/quay/${TOKEN}`, {}, quay).request, d),
      await answerWebhook(post('/events/github', githubHeaders(githubBody), githubBody).request, d),
    ];
    expect(answers.map((a) => [a.statusCode, a.body])).toEqual(Array(3).fill([200, '{"accepted":1,"ignored":0,"invalid":0}']));
    expect(taken.map((r) => r.hints.map((h) => `${h.repository}:${h.tag}`))).toEqual([['library/app:v1'], ['acme/app:v1'], ['octo-org/app:v1']]);
  });

  it('forged in each format: 401, the body never read where the scheme allows, nothing handed on', async () => {
    const { door: d, taken, refused } = door();
    const githubBody = Buffer.from(JSON.stringify(github));
    const cases = [
      post('/events/harbor', {}, harbor),
      post('/events/harbor', { authorization: `Bearer ${TOKEN}x` }, harbor),
      // Harbor's auth header written without the scheme: not a bearer token.
      post('/events/harbor', { authorization: TOKEN }, harbor),
      post(`/events/quay/${TOKEN.slice(0, -1)}`, {}, quay),
      post('/events/quay/', {}, quay),
      // The right token, but in a header: Quay's path is what authenticates.
      post('/events/quay/nothing', { authorization: `Bearer ${TOKEN}` }, quay),
      post('/events/github', { 'x-github-event': 'package' }, githubBody),
      post('/events/github', { 'x-github-event': 'package', authorization: `Bearer ${TOKEN}` }, githubBody),
      post('/events/github', { 'x-github-event': 'package', 'x-hub-signature-256': `sha256=${'0'.repeat(64)}` }, githubBody),
    ];
    const answers = [];
    for (const c of cases) answers.push(await answerWebhook(c.request, d));
    // Signed with another secret, and a body changed after signing.
    const otherSecret = post('/events/github', githubHeaders(githubBody, 'not-the-secret'), githubBody);
    const tampered = post('/events/github', githubHeaders(githubBody), Buffer.from(JSON.stringify({ ...github, action: 'updated' })));
    answers.push(await answerWebhook(otherSecret.request, d), await answerWebhook(tampered.request, d));

    expect(answers.map((a) => a.statusCode)).toEqual(Array(11).fill(401));
    expect(taken).toEqual([]);
    expect(cases.slice(0, 8).map((c) => c.reads.count)).toEqual(Array(8).fill(0));
    expect(refused.map(([format]) => format)).toEqual(['harbor', 'harbor', 'harbor', 'quay', 'quay', 'quay', 'github', 'github', 'github', 'github', 'github']);
    expect(new Set(refused.map(([, reason]) => reason))).toEqual(new Set(['unauthorized']));
    expect(JSON.stringify(answers)).not.toContain(TOKEN);
    expect(answers[0]!.headers['www-authenticate']).toBe('Bearer');
    expect(answers[3]!.headers['www-authenticate']).toBeUndefined();
  });

  it('the format is told from the path, never the body: a payload on the wrong path is refused 400, never guessed', async () => {
    const { door: d, taken } = door();
    const bearer = { authorization: `Bearer ${TOKEN}` };
    const envelope = { events: [{ action: 'push', target: { repository: 'a/b', tag: 'v1', mediaType: 'application/vnd.oci.image.manifest.v1+json' } }] };
    const answers = [
      await answerWebhook(post('/events', bearer, harbor).request, d),
      await answerWebhook(post('/events/harbor', bearer, envelope).request, d),
      await answerWebhook(post('/events/harbor', bearer, quay).request, d),
      await answerWebhook(post(`/events/quay/${TOKEN}`, {}, harbor).request, d),
    ];
    expect(answers.map((a) => a.statusCode)).toEqual([400, 400, 400, 400]);
    expect(taken).toEqual([]);
  });

  it('a GitHub payload with the bearer token on the distribution path is not GitHub: 400, nothing taken', async () => {
    const { door: d, taken } = door();
    const answer = await answerWebhook(post('/events', { authorization: `Bearer ${TOKEN}`, 'x-github-event': 'package' }, github).request, d);
    expect(answer.statusCode).toBe(400);
    expect(taken).toEqual([]);
  });

  it("without GitHub's secret, /events/github is not served (404), whatever the request says", async () => {
    const githubBody = Buffer.from(JSON.stringify(github));
    for (const secret of [undefined, rereadToken(async () => '', 'secret x', Date.now, { optional: true })]) {
      const { door: d, refused } = door({ githubSecret: secret });
      const { request, reads } = post('/events/github', githubHeaders(githubBody), githubBody);
      expect((await answerWebhook(request, d)).statusCode).toBe(404);
      expect(reads.count).toBe(0);
      expect(refused).toEqual([['github', 'not_configured']]);
    }
  });

  it("GitHub's ping (sent when the hook is made) is answered 200 with nothing to do", async () => {
    const { door: d, taken } = door();
    const ping = Buffer.from(JSON.stringify({ zen: 'Design for failure.', hook_id: 1, hook: { type: 'Repository' } }));
    const answer = await answerWebhook(
      post('/events/github', { 'x-github-event': 'ping', 'x-hub-signature-256': signGitHub(ping, GITHUB_SECRET) }, ping).request,
      d,
    );
    expect([answer.statusCode, answer.body]).toEqual([200, '{"accepted":0,"ignored":1,"invalid":0}']);
    expect(taken.flatMap((r) => r.hints)).toEqual([]);
  });

  it('a rotated GitHub secret is read again when a signature does not match', async () => {
    let secret = 'old-github-secret-0123456789';
    let clock = NOW;
    const rotating = rereadToken(
      async () => secret,
      'file',
      () => clock,
    );
    const { door: d } = door({ githubSecret: rotating });
    const githubBody = Buffer.from(JSON.stringify(github));
    expect((await answerWebhook(post('/events/github', githubHeaders(githubBody, secret), githubBody).request, d)).statusCode).toBe(200);
    secret = 'new-github-secret-0123456789';
    clock += 60_000;
    expect((await answerWebhook(post('/events/github', githubHeaders(githubBody, secret), githubBody).request, d)).statusCode).toBe(200);
  });

  it('same limits in every format: 415 for a body that is not JSON, 413 over the cap, 400 on garbage', async () => {
    const { door: d } = door();
    const junk = Buffer.from('{"type":');
    const answers = [
      await answerWebhook(post('/events/harbor', { authorization: `Bearer ${TOKEN}`, 'content-type': 'text/plain' }, harbor).request, d),
      await answerWebhook(post(`/events/quay/${TOKEN}`, { 'content-length': String(2 * 1024 * 1024) }, quay).request, d),
      await answerWebhook({ ...post('/events/github', githubHeaders(junk), junk).request, body: async () => undefined }, d),
      await answerWebhook(post(`/events/quay/${TOKEN}`, {}, junk).request, d),
      await answerWebhook(post('/events/github', githubHeaders(junk), junk).request, d),
    ];
    expect(answers.map((a) => a.statusCode)).toEqual([415, 413, 413, 400, 400]);
  });
});

describe("notify's secret: the token, and GitHub's secret beside it", () => {
  it('reads both keys of a key/value secret, and neither from a plain one', () => {
    const secret = JSON.stringify({ token: ' t ', githubSecret: ' g ' });
    expect([tokenOf(secret), keyOf(secret, 'githubSecret')]).toEqual(['t', 'g']);
    expect([tokenOf('plain'), keyOf('plain', 'githubSecret')]).toEqual(['plain', '']);
    expect(keyOf('{"githubSecret": 5}', 'githubSecret')).toBe('');
    expect(keyOf('null', 'githubSecret')).toBe('');
  });
});

describe('the strict Prometheus text reader', () => {
  it('reads what prom-client writes, and the listener metrics carry only bounded labels', async () => {
    const metrics = new ListenerMetrics(['eu', 'primary']);
    metrics.webhook.refused('quay', 'unauthorized');
    metrics.registryAnswer({ role: 'secondary', name: 'eu' }, { status: 404, limit: 16 });
    // A secondary may be named "primary": its role keeps it apart from the primary.
    metrics.registryAnswer({ role: 'secondary', name: 'primary' }, { status: 200, limit: 24 });
    metrics.port.add('ReplicationLagSeconds', 0.2, 'Seconds');
    metrics.registryAnswer({ role: 'primary', name: 'primary' }, { status: 429, limit: 8 });
    const families = parsePrometheusText((await metrics.render()).body);
    expect(sampleValue(families, 'geo_sync_webhook_requests_refused_total', { format: 'quay', reason: 'unauthorized' })).toBe(1);
    expect(sampleValue(families, 'geo_sync_registry_requests_total', { role: 'secondary', registry: 'eu', status_class: '4xx' })).toBe(1);
    expect(sampleValue(families, 'geo_sync_registry_inflight_limit', { role: 'secondary', registry: 'eu' })).toBe(16);
    expect(sampleValue(families, 'geo_sync_registry_throttled_total', { role: 'primary', registry: 'primary' })).toBe(1);
    expect(sampleValue(families, 'geo_sync_registry_throttled_total', { role: 'secondary', registry: 'eu' })).toBe(0);
    expect(sampleValue(families, 'geo_sync_registry_requests_total', { role: 'secondary', registry: 'primary', status_class: '2xx' })).toBe(1);
    expect(sampleValue(families, 'geo_sync_registry_requests_total', { role: 'primary', registry: 'primary', status_class: '2xx' })).toBe(0);
    expect(sampleValue(families, 'geo_sync_replication_lag_seconds_count')).toBe(1);
    expect(sampleValue(families, 'geo_sync_replication_lag_seconds_bucket', { le: '0.25' })).toBe(1);
    expect(families.get('geo_sync_replication_lag_seconds')?.type).toBe('histogram');
    expect(families.get('process_cpu_seconds_total')?.type).toBe('counter');
  });

  it.each([
    ['no TYPE before a sample', 'x_total 1\n'],
    ['a value that is no number', '# TYPE x gauge\nx one\n'],
    ['an unterminated label', '# TYPE x gauge\nx{a="1} 1\n'],
    ['a label without quotes', '# TYPE x gauge\nx{a=1} 1\n'],
    ['a label given twice', '# TYPE x gauge\nx{a="1",a="2"} 1\n'],
    ['a series given twice', '# TYPE x gauge\nx{a="1"} 1\nx{a="1"} 2\n'],
    ['a bad escape', '# TYPE x gauge\nx{a="\\t"} 1\n'],
    ['a sample not of its family', '# TYPE x histogram\nx 1\n'],
    ['an unknown type', '# TYPE x thing\n'],
    ['TYPE given twice', '# TYPE x gauge\n# TYPE x gauge\n'],
    ['no final newline', '# TYPE x gauge\nx 1'],
    ['junk after the value', '# TYPE x gauge\nx 1 2 3\n'],
  ])('refuses %s', (_name, text) => {
    expect(() => parsePrometheusText(text)).toThrow();
  });

  it("reads escapes, special values (in any case, as Prometheus's own parser does: prom-client writes `Nan`) and a timestamp", () => {
    const families = parsePrometheusText(
      '# HELP x a \\\\ help\n# TYPE x gauge\nx{a="q\\"\\n"} +Inf\nx{a="b"} NaN 1700000000000\nx{a="c"} -1.5e3\nx{a="d"} Nan\n',
    );
    expect(families.get('x')?.help).toBe('a \\ help');
    expect(sampleValue(families, 'x', { a: 'q"\n' })).toBe(Infinity);
    expect(sampleValue(families, 'x', { a: 'b' })).toBeNaN();
    expect(sampleValue(families, 'x', { a: 'c' })).toBe(-1500);
    expect(sampleValue(families, 'x', { a: 'd' })).toBeNaN();
  });
});
