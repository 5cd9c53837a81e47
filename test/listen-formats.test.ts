// `geo-sync listen` end to end with the webhooks of Harbor, Quay and GitHub: the test pushes to a
// real primary docker-registry, then sends the payload that registry's vendor documents
// (test/support/vendor-payloads.ts) to the real listener process, which copies what the primary
// holds to a real secondary. Then what an operator watches: /metrics (read with a strict parser,
// its counters moving with the pushes), /healthz and /readyz.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGeoSync } from './support/cli.js';
import { eventually as poll, startListenerProcess, type RunningListener } from './support/listener.js';
import { parsePrometheusText, sampleValue, type MetricFamily } from './support/prometheus-text.js';
import { freePort, startRegistry, type TestRegistry } from './support/registry.js';
import { deleteManifest, manifestExists, pushImage, readTags } from './support/seed.js';
import { githubPackageEvent, harborPayload, quayPush, signGitHub } from './support/vendor-payloads.js';

const TOKEN = randomBytes(24).toString('hex');
const GITHUB_SECRET = randomBytes(24).toString('hex');
const METRICS_TOKEN = randomBytes(24).toString('hex');

let primary: TestRegistry;
let secondary: TestRegistry;
let elsewhere: TestRegistry;
let stateDir: string;
let listener: RunningListener;

async function startListener(env: Record<string, string>, reconcileEvery = '0'): Promise<RunningListener> {
  return startListenerProcess(await freePort(), ['--reconcile-every', reconcileEvery], {
    GEO_SYNC_SECONDARY_URL: secondary.url,
    GEO_SYNC_WEBHOOK_TOKEN: TOKEN,
    GEO_SYNC_GITHUB_WEBHOOK_SECRET: GITHUB_SECRET,
    GEO_SYNC_METRICS_TOKEN: METRICS_TOKEN,
    GEO_SYNC_STATE_DIR: stateDir,
    ...env,
  });
}

/** Polls until `check` holds; a timeout fails the test (never an assertion on speed). */
/** Polls until `check` holds, naming the listener's last log lines on a timeout. */
const eventually = (check: () => Promise<boolean>, timeoutMs = 20_000, describe = () => JSON.stringify(listener?.lines.slice(-15))) =>
  poll(check, timeoutMs, describe);

async function idle(): Promise<void> {
  await eventually(async () => {
    const health = (await (await fetch(`${listener.url}/healthz`)).json()) as { pendingTags: number; pendingDigests: number; running: number };
    return health.pendingTags === 0 && health.pendingDigests === 0 && health.running === 0;
  });
}

const sameTags = (repository: string) => async () =>
  JSON.stringify(await readTags(secondary.url, repository)) === JSON.stringify(await readTags(primary.url, repository));

async function send(path: string, headers: Record<string, string>, payload: unknown): Promise<{ status: number; body: string }> {
  const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const response = await fetch(`${listener.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  return { status: response.status, body: await response.text() };
}

const toHarbor = (payload: unknown) => send('/events/harbor', { authorization: `Bearer ${TOKEN}` }, payload);
const toQuay = (payload: unknown, token = TOKEN) => send(`/events/quay/${token}`, {}, payload);
function toGitHub(payload: unknown, secret = GITHUB_SECRET, event = 'package') {
  const body = JSON.stringify(payload);
  return send('/events/github', { 'x-github-event': event, 'x-hub-signature-256': signGitHub(body, secret), 'user-agent': 'GitHub-Hookshot/abc' }, body);
}

async function scrape(token = METRICS_TOKEN): Promise<{ status: number; families?: Map<string, MetricFamily>; text: string; type: string | null }> {
  const response = await fetch(`${listener.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  const text = await response.text();
  return {
    status: response.status,
    text,
    type: response.headers.get('content-type'),
    ...(response.status === 200 ? { families: parsePrometheusText(text) } : {}),
  };
}

const seconds = () => Date.now() / 1000;
const accepted = { status: 200, body: '{"accepted":1,"ignored":0,"invalid":0}' };

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'listen-formats-'));
  [primary, secondary, elsewhere] = await Promise.all([startRegistry(), startRegistry(), startRegistry()]);
  listener = await startListener({ GEO_SYNC_PRIMARY_URL: primary.url });
});

afterAll(async () => {
  if (listener) {
    listener.child.kill('SIGTERM');
    await listener.done;
  }
  await Promise.all([primary?.stop(), secondary?.stop(), elsewhere?.stop()]);
  rmSync(stateDir, { recursive: true, force: true });
});

describe('geo-sync listen: Harbor, Quay and GitHub webhooks', () => {
  it.each([
    ['a secret and its file both set', { GEO_SYNC_GITHUB_WEBHOOK_SECRET: GITHUB_SECRET, GEO_SYNC_GITHUB_WEBHOOK_SECRET_FILE: '/dev/null' }, /not both/],
    ['an empty metrics token', { GEO_SYNC_METRICS_TOKEN: ' ' }, /GEO_SYNC_METRICS_TOKEN is set but empty/],
    ['a metrics token file that holds nothing', { GEO_SYNC_METRICS_TOKEN_FILE: '/dev/null' }, /holds no metrics token/],
  ])('refuses to start with %s (exit 2), and names no secret', async (_name, env, message) => {
    const result = await runGeoSync(['listen', '--port', '0'], {
      GEO_SYNC_PRIMARY_URL: primary.url,
      GEO_SYNC_SECONDARY_URL: secondary.url,
      GEO_SYNC_WEBHOOK_TOKEN: TOKEN,
      GEO_SYNC_STATE_DIR: stateDir,
      ...env,
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toContain(GITHUB_SECRET);
    expect(result.stderr).not.toContain(TOKEN);
  });

  let before: Map<string, MetricFamily>;

  it('serves /metrics only with its bearer token, in the Prometheus text format', async () => {
    expect((await scrape('wrong')).status).toBe(401);
    expect((await fetch(`${listener.url}/metrics`)).status).toBe(401);
    const first = await scrape();
    expect(first.status).toBe(200);
    expect(first.type).toMatch(/^text\/plain; version=0\.0\.4/);
    before = first.families!;
    expect(sampleValue(before, 'geo_sync_webhook_events_total', { format: 'harbor', outcome: 'accepted' })).toBe(0);
    expect(first.text).not.toContain(TOKEN);
  });

  it('Harbor PUSH_ARTIFACT of a tag: the tag is copied as the primary holds it', async () => {
    const repository = 'harbor/app';
    const pushed = await pushImage(primary.url, repository, 'v1');

    expect(await toHarbor(harborPayload('PUSH_ARTIFACT', repository, [{ tag: 'v1', digest: pushed.digest }], seconds()))).toEqual(accepted);

    await eventually(sameTags(repository));
    expect(await readTags(secondary.url, repository)).toEqual({ v1: pushed.digest });
  });

  it('Harbor PUSH_ARTIFACT by digest (the digest in `tag`): a digest hint, never a tag', async () => {
    const repository = 'harbor/app';
    const pushed = await pushImage(primary.url, repository, null, { seed: 'by-digest' });
    const from = listener.lines.length;

    expect(await toHarbor(harborPayload('PUSH_ARTIFACT', repository, [{ tag: pushed.digest, digest: pushed.digest }], seconds()))).toEqual(accepted);

    await eventually(async () => listener.lines.slice(from).some((l) => l.message === 'replicated' && l.repository === repository));
    expect(listener.lines.slice(from).find((l) => l.message === 'replicated' && l.repository === repository)).toMatchObject({ tags: 0, digests: 1 });
    // A manifest by digest alone is work only where the primary serves referrers (this one does
    // not): the image goes with the tag or index that names it. No tag is made of its digest.
    expect(await readTags(secondary.url, repository)).toEqual(await readTags(primary.url, repository));
  });

  it('Harbor DELETE_ARTIFACT: the tag goes from the secondary once gone from the primary, the other tags stay', async () => {
    const repository = 'harbor/gone';
    const doomed = await pushImage(primary.url, repository, 'old', { seed: 'doomed' });
    const kept = await pushImage(primary.url, repository, 'kept', { seed: 'kept' });
    await toHarbor(harborPayload('PUSH_ARTIFACT', repository, [{ tag: 'old', digest: doomed.digest }], seconds()));
    await toHarbor(harborPayload('PUSH_ARTIFACT', repository, [{ tag: 'kept', digest: kept.digest }], seconds()));
    await eventually(async () => Object.keys(await readTags(secondary.url, repository)).length === 2);

    await deleteManifest(primary.url, repository, doomed.digest);
    const answer = await toHarbor(harborPayload('DELETE_ARTIFACT', repository, [{ tag: 'old', digest: doomed.digest }], seconds()));

    // The tag and its digest: two hints from one resource.
    expect(answer).toEqual({ status: 200, body: '{"accepted":2,"ignored":0,"invalid":0}' });
    await eventually(async () => JSON.stringify(await readTags(secondary.url, repository)) === JSON.stringify({ kept: kept.digest }));
    expect(await manifestExists(secondary.url, repository, kept.digest)).toBe(true);
  });

  it('Quay repo_push: each updated tag is copied', async () => {
    const repository = 'acme/quay-app';
    await pushImage(primary.url, repository, 'latest');
    await pushImage(primary.url, repository, 'v2', { seed: 'v2' });

    const answer = await toQuay(quayPush(repository, ['latest', 'v2']));

    expect(answer).toEqual({ status: 200, body: '{"accepted":2,"ignored":0,"invalid":0}' });
    await eventually(sameTags(repository));
    expect(Object.keys(await readTags(secondary.url, repository)).sort()).toEqual(['latest', 'v2']);
  });

  it.each(['package', 'registry_package'] as const)('GitHub %s published: the tag of <owner>/<name> is copied', async (event) => {
    const repository = `octo-org/gh-${event.replace('_', '-')}`;
    const pushed = await pushImage(primary.url, repository, 'v1', { seed: event });

    const answer = await toGitHub(githubPackageEvent(event, 'Octo-Org', repository.split('/')[1]!, { tag: 'v1', digest: pushed.digest }), GITHUB_SECRET, event);

    expect(answer).toEqual(accepted);
    await eventually(sameTags(repository));
    expect(await readTags(secondary.url, repository)).toEqual({ v1: pushed.digest });
  });

  it('forged payloads in each format: without the secret refused 401; with it, naming what only another registry holds, nothing is copied', async () => {
    // What the forged payloads point at really exists, elsewhere.
    const elsewhereImage = await pushImage(elsewhere.url, 'forged/app', 'v1');
    const harbor = harborPayload('PUSH_ARTIFACT', 'forged/app', [{ tag: 'v1', digest: elsewhereImage.digest }], seconds(), elsewhere.host);
    const quay = quayPush('forged/app', ['v1'], elsewhere.host);
    const github = githubPackageEvent('package', 'forged', 'app', { tag: 'v1', digest: elsewhereImage.digest });

    const refused = [
      await send('/events/harbor', { authorization: `Bearer ${TOKEN.slice(1)}` }, harbor),
      await send('/events/harbor', {}, harbor),
      await toQuay(quay, 'not-the-token'),
      await toGitHub(github, 'not-the-secret'),
      await send('/events/github', { 'x-github-event': 'package', authorization: `Bearer ${TOKEN}` }, github),
    ];
    expect(refused.map((a) => a.status)).toEqual([401, 401, 401, 401, 401]);

    const taken = [await toHarbor(harbor), await toQuay(quay), await toGitHub(github)];
    expect(taken).toEqual([accepted, accepted, accepted]);
    await eventually(async () => listener.lines.filter((l) => l.message === 'replicated' && l.repository === 'forged/app').length > 0);
    await idle();
    expect(await readTags(secondary.url, 'forged/app')).toEqual({});
    expect(await manifestExists(secondary.url, 'forged/app', elsewhereImage.digest)).toBe(false);
  });

  it('/metrics after the pushes: the counters moved with them, the labels hold no repository, tag or secret', async () => {
    await idle();
    const after = await scrape();
    const families = after.families!;
    const moved = (name: string, labels: Record<string, string> = {}) => (sampleValue(families, name, labels) ?? 0) - (sampleValue(before, name, labels) ?? 0);

    expect(moved('geo_sync_webhook_events_total', { format: 'harbor', outcome: 'accepted' })).toBe(7);
    expect(moved('geo_sync_webhook_events_total', { format: 'quay', outcome: 'accepted' })).toBe(3);
    expect(moved('geo_sync_webhook_events_total', { format: 'github', outcome: 'accepted' })).toBe(3);
    expect(moved('geo_sync_webhook_requests_refused_total', { format: 'harbor', reason: 'unauthorized' })).toBe(2);
    expect(moved('geo_sync_webhook_requests_refused_total', { format: 'quay', reason: 'unauthorized' })).toBe(1);
    expect(moved('geo_sync_webhook_requests_refused_total', { format: 'github', reason: 'unauthorized' })).toBe(2);
    // v1, kept, old, latest, v2 and the two GitHub tags; old removed.
    expect(moved('geo_sync_tags_replicated_total')).toBeGreaterThanOrEqual(7);
    expect(moved('geo_sync_tags_removed_total')).toBeGreaterThanOrEqual(1);
    expect(moved('geo_sync_tags_failed_total')).toBe(0);
    expect(moved('geo_sync_event_jobs_total', { outcome: 'succeeded' })).toBeGreaterThanOrEqual(6);
    expect(moved('geo_sync_event_jobs_total', { outcome: 'failed' })).toBe(0);
    expect(moved('geo_sync_replication_lag_seconds_count')).toBeGreaterThanOrEqual(6);
    expect(moved('geo_sync_registry_requests_total', { role: 'primary', registry: 'primary', status_class: '2xx' })).toBeGreaterThan(0);
    expect(moved('geo_sync_registry_requests_total', { role: 'secondary', registry: 'secondary', status_class: '2xx' })).toBeGreaterThan(0);
    // The forged tag is asked of the primary, which knows nothing of it.
    expect(moved('geo_sync_registry_requests_total', { role: 'primary', registry: 'primary', status_class: '4xx' })).toBeGreaterThan(0);
    expect(sampleValue(families, 'geo_sync_registry_inflight_limit', { role: 'primary', registry: 'primary' })).toBeGreaterThan(0);
    expect(sampleValue(families, 'geo_sync_pending_tags')).toBe(0);
    expect(sampleValue(families, 'geo_sync_jobs_running')).toBe(0);

    const labelValues = [...families.values()].flatMap((f) => f.samples.flatMap((s) => Object.values(s.labels)));
    for (const leaked of [TOKEN, GITHUB_SECRET, METRICS_TOKEN, 'harbor/app', 'forged', 'octo-org', primary.host, secondary.host])
      expect(labelValues.filter((value) => value.includes(leaked))).toEqual([]);
    if (process.env.GEO_SYNC_METRICS_SAMPLE) writeFileSync(process.env.GEO_SYNC_METRICS_SAMPLE, after.text);
  });

  it('/healthz is alive; /readyz is ready while the primary answers', async () => {
    expect((await fetch(`${listener.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${listener.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', primary: 'reachable' });
  });

  it('a reconcile at start is counted, with its duration', async () => {
    const other = await startListener({ GEO_SYNC_PRIMARY_URL: primary.url }, '1h');
    try {
      const metrics = async () =>
        parsePrometheusText(await (await fetch(`${other.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text());
      await eventually(async () => sampleValue(await metrics(), 'geo_sync_reconcile_runs_total', { outcome: 'finished' }) === 1);
      const families = await metrics();
      expect(sampleValue(families, 'geo_sync_reconcile_duration_seconds_count')).toBe(1);
      expect(sampleValue(families, 'geo_sync_reconcile_runs_total', { outcome: 'failed' })).toBe(0);
      expect(sampleValue(families, 'geo_sync_reconcile_running')).toBe(0);
    } finally {
      other.child.kill('SIGTERM');
      expect((await other.done).code).toBe(0);
    }
  });

  it('/readyz answers 503 while the primary is unreachable; /healthz still 200; the reconcile that could not read the catalog is counted failed', async () => {
    const deadPort = await freePort();
    const other = await startListener({ GEO_SYNC_PRIMARY_URL: `http://127.0.0.1:${deadPort}` }, '1h');
    try {
      const ready = await fetch(`${other.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({ status: 'not ready', primary: expect.stringMatching(/^unreachable: /) });
      expect((await fetch(`${other.url}/healthz`)).status).toBe(200);
      const metrics = async () =>
        parsePrometheusText(await (await fetch(`${other.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text());
      await eventually(async () => sampleValue(await metrics(), 'geo_sync_reconcile_runs_total', { outcome: 'failed' }) === 1, 60_000);
      expect(sampleValue(await metrics(), 'geo_sync_registry_requests_total', { role: 'primary', registry: 'primary', status_class: 'error' })).toBeGreaterThan(
        0,
      );
    } finally {
      other.child.kill('SIGTERM');
      expect((await other.done).code).toBe(0);
    }
  });
});
