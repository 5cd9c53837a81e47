// What the CLI writes for a person: log lines, one word per outage, the status table.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, jsonLogger, textLogger, validateRepositoryName, type EngineLogger } from '../shared/engine/index.js';
import { newRecord, type RepositoryRecord } from '../shared/jobs/index.js';
import { formatStatus } from '../shared/cli/local-commands.js';
import { startFaultProxy, type FaultProxy } from './support/fault-proxy.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { pushImage } from './support/seed.js';

describe('log lines', () => {
  const fields = { registry: 'r.example:5000', reason: 'connect ECONNREFUSED 10.0.0.1:5000', waitMs: 250, offered: false, holder: { kind: 'sync' } };

  it('text: time, level, message, then key=value pairs; strings with spaces quoted, objects as JSON', () => {
    const written: string[] = [];
    textLogger('debug', (line) => void written.push(line)).info('retrying request', fields);
    expect(written).toEqual([
      expect.stringMatching(
        /^\d\d:\d\d:\d\d\.\d{3} info {2}retrying request {2}registry=r\.example:5000 {2}reason="connect ECONNREFUSED 10\.0\.0\.1:5000" {2}waitMs=250 {2}offered=false {2}holder=\{"kind":"sync"\}\n$/,
      ),
    ]);
  });

  it('text: warnings and errors marked in capitals, coloured only when asked', () => {
    const plain: string[] = [];
    const coloured: string[] = [];
    textLogger('info', (line) => void plain.push(line)).warn('registry not answering; retrying');
    textLogger('info', (line) => void plain.push(line)).error('failed');
    textLogger('info', (line) => void coloured.push(line), { colour: true }).warn('registry not answering; retrying');
    expect(plain).toEqual([expect.stringMatching(/^\S+ WARN {2}registry not answering/), expect.stringMatching(/^\S+ ERROR failed/)]);
    expect(coloured[0]).toContain('\u001b[33mWARN ');
    expect(plain.join('')).not.toContain('\u001b[');
  });

  it.each([
    ['json', (write: (line: string) => void) => jsonLogger('debug', write)],
    ['text', (write: (line: string) => void) => textLogger('debug', write)],
  ])('%s: keeps a secret-named field out, at the top and nested', (_format, make) => {
    const written: string[] = [];
    make((line) => void written.push(line)).warn('token refresh', { password: 'hunter2-pass', nested: { authorization: 'Basic aGVsbG8=' }, registry: 'r' });
    expect(written.join('')).not.toMatch(/hunter2-pass|aGVsbG8=/);
    expect(written.join('')).toContain('[redacted]');
  });

  it('honours the level', () => {
    const written: string[] = [];
    const logger = textLogger('warn', (line) => void written.push(line));
    logger.debug('a');
    logger.info('b');
    logger.warn('c');
    expect(written).toHaveLength(1);
  });
});

describe('one word per outage (a real registry behind a proxy that drops connections)', () => {
  let registry: TestRegistry;
  let proxy: FaultProxy;
  const repo = validateRepositoryName('outage/app');

  beforeAll(async () => {
    registry = await startRegistry();
    await pushImage(registry.url, repo, 'v1');
    proxy = await startFaultProxy(registry.url);
  });
  afterAll(async () => {
    await proxy?.stop();
    await registry?.stop();
  });

  function recorder() {
    const lines: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
    const at = (level: string) => (message: string, fields?: object) => void lines.push({ level, message, fields: fields as Record<string, unknown> });
    const logger: EngineLogger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
    return { lines, logger };
  }

  /** Drops the next `count` connections, then lets requests through. */
  function dropNext(count: number): void {
    let dropped = 0;
    proxy.setRule(() => (dropped++ < count ? { kind: 'reset' } : undefined));
  }

  it('a registry that answered, then stops: one warning, retries at debug, one line when it answers again', async () => {
    const { lines, logger } = recorder();
    const client = new RegistryClient({ url: proxy.url }, { retries: 6, backoff: { baseMs: 1, capMs: 5 }, logger });
    expect(await client.listTags(repo)).toEqual(['v1']);
    dropNext(3);
    expect(await client.listTags(repo)).toEqual(['v1']);
    await client.close();
    proxy.setRule(() => undefined);

    const host = new URL(proxy.url).host;
    expect(lines.filter((l) => l.level === 'warn')).toEqual([
      { level: 'warn', message: 'registry not answering; retrying', fields: expect.objectContaining({ registry: host, reason: expect.any(String) }) },
      { level: 'warn', message: 'registry answering again', fields: expect.objectContaining({ registry: host, failedAttempts: 3 }) },
    ]);
    expect(lines.filter((l) => l.message === 'retrying request' && l.level === 'debug')).toHaveLength(3);
  });

  it('a registry not reached yet: retries at debug only; the run goes on when it answers', async () => {
    const { lines, logger } = recorder();
    const client = new RegistryClient({ url: proxy.url }, { retries: 6, backoff: { baseMs: 1, capMs: 5 }, logger });
    dropNext(2);
    expect(await client.listTags(repo)).toEqual(['v1']);
    await client.close();
    proxy.setRule(() => undefined);
    expect(lines.filter((l) => l.level !== 'debug')).toEqual([]);
    expect(lines.filter((l) => l.message === 'retrying request')).toHaveLength(2);
  });

  it('throttling is an answer: its retries stay at debug', async () => {
    const { lines, logger } = recorder();
    const client = new RegistryClient({ url: proxy.url }, { retries: 6, backoff: { baseMs: 1, capMs: 5 }, logger });
    expect(await client.listTags(repo)).toEqual(['v1']);
    let throttled = 0;
    proxy.setRule(() => (throttled++ < 2 ? { kind: 'status', status: 429 } : undefined));
    expect(await client.listTags(repo)).toEqual(['v1']);
    await client.close();
    proxy.setRule(() => undefined);
    expect(lines.filter((l) => l.level !== 'debug')).toEqual([]);
  });
});

describe('status at a glance', () => {
  const NOW = Date.parse('2026-12-01T12:00:00Z');
  const at = (secondsAgo: number) => new Date(NOW - secondsAgo * 1000).toISOString();
  const lastSync = (secondsAgo: number, removed = 0) => ({
    status: 'synced' as const,
    copied: 1,
    repaired: 0,
    removed,
    failedTags: 0,
    bytes: 10,
    durationMs: 5,
    finishedAt: at(secondsAgo),
  });
  const record = (repository: string, patch: Partial<RepositoryRecord>): RepositoryRecord => ({
    ...newRecord({ repository, secondary: 'eu' }, NOW - 3600_000),
    ...patch,
  });
  const diff = { missing: 1, extra: 0, mismatched: 0, firstMissing: ['v2'], firstExtra: [], firstMismatched: [] };
  const records = [
    record('a/synced', { syncState: 'synced', verifyState: 'synced', verifiedAt: at(120), lastSync: lastSync(125) }),
    record('b/failed', { syncState: 'failed', syncError: 'GET https://p/v2/ failed', retryCount: 1, nextRetryAt: at(-60), lastSync: lastSync(3 * 3600) }),
    record('c/guard', { syncState: 'guard-held', syncError: 'would remove 9 of 10 tags', verifyState: 'mismatch', verifiedAt: at(30), differences: diff }),
    record('d/mismatch', { syncState: 'synced', verifyState: 'mismatch', verifiedAt: at(5), differences: diff, lastSync: lastSync(7) }),
    record('e/refused', { syncState: 'deletes-refused', syncError: 'the secondary refuses deletes', lastSync: lastSync(3 * 86400) }),
  ];

  it('puts what needs a human first, then failures, then the rest; shows each age', () => {
    const rows = formatStatus(records, NOW).split('\n');
    expect(rows[0]).toMatch(/^REPOSITORY\s+SECONDARY\s+STATUS\s+LAST SYNC\s+LAST VERIFY\s+NEEDS A HUMAN\s+DETAIL$/);
    expect(rows.slice(1).map((row) => row.split(/\s+/)[0])).toEqual(['c/guard', 'd/mismatch', 'e/refused', 'b/failed', 'a/synced']);
    expect(rows[1]).toMatch(/^c\/guard\s+eu\s+guard-held\s+-\s+mismatch, 30s ago\s+guard held, mismatch\s+would remove 9 of 10 tags$/);
    expect(rows[2]).toMatch(
      /^d\/mismatch\s+eu\s+mismatch\s+7s ago: copied 1, repaired 0, removed 0\s+mismatch, 5s ago\s+mismatch\s+missing 1, extra 0, mismatched 0$/,
    );
    expect(rows[3]).toMatch(/^e\/refused\s+eu\s+deletes-refused\s+3d ago: .*\s+-\s+deletes refused\s+the secondary refuses deletes$/);
    expect(rows[4]).toMatch(/^b\/failed\s+eu\s+failed\s+3h ago: .*\s+-\s+-\s+GET https:\/\/p\/v2\/ failed \(retry 1 at /);
    expect(rows[5]).toMatch(/^a\/synced\s+eu\s+synced\s+2m ago: copied 1, repaired 0, removed 0\s+synced, 2m ago\s+-$/);
  });

  it('shows the last event and its lag when any record has one', () => {
    const lastEvent = { at: at(62), finishedAt: at(61), status: 'synced' as const, tags: 1, firstTags: ['v1'], copied: 1, repaired: 0, removed: 0 };
    const table = formatStatus(
      [...records, record('f/event', { syncState: 'synced', verifyState: 'synced', verifiedAt: at(1), lastEvent, lagSeconds: 0.4 })],
      NOW,
    );
    expect(table.split('\n')[0]).toMatch(/LAST VERIFY\s+LAST EVENT\s+NEEDS A HUMAN/);
    expect(table).toMatch(/f\/event\s+eu\s+synced\s+-\s+synced, 1s ago\s+1m ago synced \(1 tag, lag 0\.4 s\)\s+-/);
  });
});
