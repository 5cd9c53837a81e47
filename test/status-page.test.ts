// The listener's status page as a person meets it: the real `geo-sync listen` over real registries,
// read in Debian's chromium driven headless by playwright-core (nothing downloaded). `east` is
// synced and verified by `geo-sync run`; `west` has never been verified. A push on the primary
// reaches the listener as a real notification, so the lag chart has points.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readiness } from '../shared/jobs/index.js';
import { renderStatusPage, statusPageData } from '../shared/local/status-page.js';
import { runGeoSync } from './support/cli.js';
import { eventually, startListenerProcess, type RunningListener } from './support/listener.js';
import { freePort, startRegistry, type TestRegistry } from './support/registry.js';
import { pushImage } from './support/seed.js';

const TOKEN = 'status-page-webhook-token';
const METRICS_TOKEN = 'status-page-metrics-token';
/** Where the screenshot is kept for a person to look at (ignored by git). */
const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url));
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

let primary: TestRegistry;
let east: TestRegistry;
let west: TestRegistry;
let stateDir: string;
let listener: RunningListener | undefined;
let browser: Browser | undefined;

beforeAll(async () => {
  const port = await freePort();
  [primary, east, west] = await Promise.all([
    startRegistry({
      notifications: { url: `http://127.0.0.1:${port}/events`, headers: { Authorization: [`Bearer ${TOKEN}`] }, timeout: '2s', threshold: 3, backoff: '200ms' },
    }),
    startRegistry(),
    startRegistry(),
  ]);
  stateDir = join(mkdtempSync(join(tmpdir(), 'geo-sync-status-page-')), 'state');
  const env = {
    GEO_SYNC_PRIMARY_URL: primary.url,
    GEO_SYNC_SECONDARIES: JSON.stringify([
      { name: 'east', url: east.url },
      { name: 'west', url: west.url },
    ]),
    GEO_SYNC_STATE_DIR: stateDir,
  };
  for (const repository of ['app/api', 'lib/base']) await pushImage(primary.url, repository, 'v1');
  expect((await runGeoSync(['run', '--secondary', 'east'], env)).code).toBe(0);
  listener = await startListenerProcess(port, ['--reconcile-every', '0'], { ...env, GEO_SYNC_WEBHOOK_TOKEN: TOKEN, GEO_SYNC_METRICS_TOKEN: METRICS_TOKEN });
  // A real notification: the push reaches the listener, whose event jobs record their lag for both secondaries.
  await pushImage(primary.url, 'lib/base', 'v2');
  await eventually(
    async () => (await statusJson()).lag.points.length >= 2,
    20_000,
    () => JSON.stringify(listener?.lines.slice(-10)),
  );
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  if (listener) {
    listener.child.kill('SIGTERM');
    await listener.done;
  }
  await Promise.all([primary, east, west].map((registry) => registry?.stop()));
  if (stateDir) rmSync(join(stateDir, '..'), { recursive: true, force: true });
});

const bearer = { authorization: `Bearer ${METRICS_TOKEN}` };

async function statusJson(): Promise<{ lag: { points: unknown[] } }> {
  const response = await fetch(`${listener!.url}/status.json`, { headers: bearer });
  return (await response.json()) as { lag: { points: unknown[] } };
}

describe('the status page in a real browser', () => {
  it('shows the ready secondary and the one not ready, what keeps it, every repository, and the lag chart; a screenshot is kept', async () => {
    const context = await browser!.newContext({ extraHTTPHeaders: bearer, javaScriptEnabled: false, viewport: { width: 1200, height: 900 } });
    const page = await context.newPage();
    const response = await page.goto(`${listener!.url}/status`);
    expect(response?.status()).toBe(200);

    await expect(page.locator('h1').textContent()).resolves.toBe('Not every secondary is ready');
    const rows = page.locator('#readiness tbody tr');
    await expect(rows.count()).resolves.toBe(2);
    // The worst first: west (never verified) before east.
    expect(await rows.nth(0).innerText()).toMatch(/^west\s+not ready\s+2\s+0\s+0\s+0\s+0\s+2\b/);
    expect(await rows.nth(1).innerText()).toMatch(/^east\s+ready\s+2\s+2\s+0\s+0\s+0\s+0\b/);
    const blockers = await page.locator('#readiness').innerText();
    expect(blockers).toContain('What keeps west from ready');
    expect(blockers).toMatch(/app\/api: never-verified: never (synced nor )?verified/);
    expect(await page.locator('#needs-human').innerText()).toContain('Nothing waits for a person.');
    const repositories = await page.locator('#repositories tbody').innerText();
    expect(repositories).toMatch(/east\s+app\/api\s+synced\s+\d+ s ago \(synced: copied 1, repaired 0, removed 0\)\s+synced, \d+ s ago/);
    expect(repositories).toMatch(/west\s+lib\/base\s+\S+\s+never\s+never/);

    const chart = page.locator('svg#lag-chart');
    await expect(chart.count()).resolves.toBe(1);
    await expect(chart.locator('circle').count()).resolves.toBeGreaterThanOrEqual(2);
    expect(await chart.getAttribute('aria-label')).toMatch(/^\d+ event jobs in the last hour, the largest lag \d+\.\d s$/);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'status-page.png'), fullPage: true });
    await context.close();
  });

  it('/status.json serves the same data the page shows', async () => {
    const data = (await statusJson()) as unknown as {
      readiness: { exitCode: number; secondaries: { secondary: string; status: string; notReady: { repository: string }[] }[] };
      repositories: { secondary: string; repository: string }[];
    };
    expect(data.readiness.exitCode).toBe(1);
    expect(data.readiness.secondaries.map((s) => [s.secondary, s.status])).toEqual([
      ['west', 'not-ready'],
      ['east', 'ready'],
    ]);
    expect(data.readiness.secondaries[0]!.notReady.map((r) => r.repository)).toEqual(['app/api', 'lib/base']);
    // west's records are its event jobs' (the registry also delivers the pushes made before the listener started).
    expect(data.repositories.map((r) => `${r.secondary}/${r.repository}`)).toEqual(expect.arrayContaining(['east/app/api', 'east/lib/base', 'west/lib/base']));
  });

  it('asks for the bearer token /metrics asks for', async () => {
    for (const path of ['/metrics', '/status', '/status.json']) {
      const without = await fetch(`${listener!.url}${path}`);
      expect(without.status, path).toBe(401);
      expect(without.headers.get('www-authenticate'), path).toBe('Bearer');
      expect((await fetch(`${listener!.url}${path}`, { headers: { authorization: 'Bearer wrong' } })).status, path).toBe(401);
      expect((await fetch(`${listener!.url}${path}`, { headers: bearer })).status, path).toBe(200);
    }
  });
});

describe('the status page as rendered', () => {
  it('escapes every value that comes from a record or a registry', () => {
    const hostile = '<script>alert(1)</script> & "quoted"';
    const report = readiness({
      secondaries: [{ name: 'dr', repositories: ['a'] }],
      source: 'records',
      sourceNote: hostile,
      records: [],
      now: 0,
      maxAgeMs: 3_600_000,
    });
    report.secondaries[0]!.notReady[0]!.detail = hostile;
    const html = renderStatusPage(statusPageData(report, [], 0));
    expect(html).not.toContain('<script>');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot;');
    expect(html).toContain('<svg id="lag-chart"');
    expect(html).toContain('no event jobs in the last hour');
  });
});
