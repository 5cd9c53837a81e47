// Soak: one run, three scenarios against real registries, one table of what was injected and what
// came out. Truth is always read back directly from the registries, never through the proxies.
//   1. random faults on both sides over many repositories, each synced until converged;
//   2. the CLI SIGKILLed at random points of a sync, repeatedly, then a final sync;
//   3. the primary changing while the CLI syncs, then a second sync.
// Sizes: SOAK_REPOSITORIES, SOAK_TAGS, SOAK_FAULT_RATE, SOAK_KILLS, SOAK_SEED, SOAK_RETRIES;
// SOAK_REPORT=<path> also writes the counts as JSON. `npm run soak` is the long run.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exitCodeFor } from '../shared/cli/exit-codes.js';
import { syncExitCode } from '../shared/cli/main.js';
import { GeoSyncError, RegistryClient, syncRepository, validateRepositoryName, type SyncReport } from '../shared/engine/index.js';
import { DELETE_PROBE_DIGEST } from '../shared/engine/registry/client.js';
import type { CliResult } from './support/cli.js';
import { seededRandom, startFaultProxy, type Fault, type FaultProxy, type ProxiedRequest } from './support/fault-proxy.js';
import { startRegistryPair, type RegistryPair } from './support/registry.js';
import { deleteManifest, pushImage, pushManifest, pushMultiArch, type Format } from './support/seed.js';
import {
  RandomFaults,
  bump,
  differenceCount,
  differences,
  differingTags,
  inPool,
  isThrowaway,
  readState,
  snapshotCli,
  soakSettings,
  soakTable,
  spawnCli,
  storedThrowaways,
  tally,
  throwawayTags,
  type Counts,
  type SoakResult,
  type TagState,
} from './support/soak.js';

const settings = soakSettings();
const { report: reportPath, ...shown } = settings;
const result: SoakResult = { settings: shown, scenarios: {}, violations: [], seconds: 0 };
const started = Date.now();
const random = seededRandom(settings.seed);
const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!;
/** Syncs of one repository under random faults before it counts as not converged. */
const MAX_ATTEMPTS = 8;
const fast = { baseMs: 5, capMs: 50 };

let registries: RegistryPair;
let stateDir: string;
/** The CLI bundle as built for this run (test/global-setup.ts), copied so a rebuild meanwhile cannot touch it. */
let cli: string;
const P = () => registries.primary.url;
const S = () => registries.secondary.url;
const repositories = Array.from({ length: settings.repositories }, (_, i) => `soak/repo-${i}`);
const plainTags = Array.from({ length: settings.tags - 2 }, (_, i) => `v${i}`);

beforeAll(
  async () => {
    registries = await startRegistryPair();
    stateDir = mkdtempSync(join(tmpdir(), 'soak-geo-sync-'));
    cli = snapshotCli(stateDir);
    // Each repository: plain tags, a multi-arch index and a moved tag on the primary; on the
    // secondary one tag already right, the moved tag at its old digest, and two extra tags, one
    // sharing the digest of a tag that must stay.
    await inPool(repositories, 4, async (repository, i) => {
      const format: Format = i % 2 === 0 ? 'oci' : 'docker';
      const seed = repository;
      let first: Awaited<ReturnType<typeof pushImage>> | undefined;
      for (const tag of plainTags) {
        const image = await pushImage(P(), repository, tag, { format, seed });
        first ??= image;
      }
      await pushMultiArch(P(), repository, 'multi', format, seed);
      await pushImage(P(), repository, 'moved', { format, seed: `${seed} new` });
      await pushImage(S(), repository, plainTags[0]!, { format, seed });
      await pushImage(S(), repository, 'moved', { format, seed: `${seed} old` });
      await pushImage(S(), repository, 'extra', { format, seed });
      await pushManifest(S(), repository, 'extra-shared', first!.bytes, first!.mediaType);
    });
  },
  120_000 + settings.repositories * 2_000,
);

afterAll(async () => {
  result.seconds = round((Date.now() - started) / 1000);
  const table = soakTable(result);
  const violations = result.violations.length ? `\nViolations:\n${result.violations.map((v) => `- ${v}`).join('\n')}\n` : '';
  process.stdout.write(`\nSoak (seed ${settings.seed}, ${result.seconds} s):\n\n${table}\n${violations}\n`);
  if (reportPath) writeFileSync(reportPath, `${JSON.stringify(result, null, 2)}\n`);
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  await registries?.stop();
});

/** A breach of an invariant: recorded for the table, asserted at the end of its scenario. */
function violation(scenario: string, message: string): void {
  result.violations.push(`${scenario}: ${message}`);
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

/**
 * What one run may have done to the secondary, judged against the primary before (and, when it
 * changed, after) the run: a tag that was right stays right unless the primary moved it; a tag
 * only ever points at its old digest, a primary digest, or (on its way out) a throwaway.
 */
async function auditRun(repository: string, primaries: TagState[], before: TagState, after: TagState) {
  const lost: string[] = [];
  const wrong: string[] = [];
  const throwaways: string[] = [];
  const [first] = primaries;
  for (const [tag, digest] of Object.entries(before)) {
    const steady = primaries.every((p) => p[tag] === first![tag]);
    if (steady && first![tag] === digest && after[tag] !== digest) lost.push(tag);
  }
  for (const [tag, digest] of Object.entries(after)) {
    if (digest === before[tag] || primaries.some((p) => p[tag] === digest)) continue;
    const leaving = primaries.some((p) => !(tag in p));
    if (leaving && (await isThrowaway(S(), repository, digest))) throwaways.push(tag);
    else wrong.push(tag);
  }
  return { lost, wrong, throwaways };
}

/** The end state of repositories against the primary's, read directly, added into `counts`. */
async function finalAudit(scenario: string, repos: string[], counts: Counts): Promise<void> {
  let converged = 0;
  for (const repository of repos) {
    const [primary, secondary] = await Promise.all([readState(P(), repository), readState(S(), repository)]);
    const diff = differences(primary, secondary);
    const throwaways = await throwawayTags(S(), repository, primary, secondary);
    add(counts, 'tagsLost', diff.missing.length);
    add(counts, 'wrongDigests', diff.mismatched.length);
    add(counts, 'extraTags', diff.extra.length);
    add(counts, 'throwawaysTagged', throwaways.length);
    add(counts, 'storedThrowaways', storedThrowaways(registries.secondary.root, repository) - throwaways.length);
    if (differenceCount(diff) === 0) converged++;
    else violation(scenario, `${repository} ends with missing [${diff.missing}], extra [${diff.extra}], mismatched [${diff.mismatched}]`);
  }
  counts.converged = `${converged}/${repos.length}`;
}

function add(counts: Counts, key: keyof Counts, by: number): void {
  counts[key] = (Number(counts[key] ?? 0) || 0) + by;
}

function injected(counts: Counts, proxies: FaultProxy[], decided: RandomFaults[]): void {
  const sum = (kind: '503' | '502' | '429' | 'reset' | 'delay') => decided.reduce((n, f) => n + f.decided[kind], 0);
  counts.requests = proxies.reduce((n, p) => n + p.stats.requests, 0);
  counts.fault503 = sum('503');
  counts.fault502 = sum('502');
  counts.fault429 = sum('429');
  counts.faultReset = sum('reset');
  // Counted where it happened: the proxy cuts only bodies with a length.
  counts.faultTruncate = proxies.reduce((n, p) => n + (p.stats.byKind.truncate ?? 0), 0);
  counts.faultDelay = sum('delay');
  counts.retryAfterEarly = decided.reduce((n, f) => n + f.retryAfter.early, 0);
}

/** The invariants every scenario holds; `messages` are this scenario's violations, shown on failure. */
function expectHeld(scenario: string, counts: Counts, repos: number): void {
  const messages = result.violations.filter((v) => v.startsWith(`${scenario}:`));
  expect(messages).toEqual([]);
  expect(counts.tagsLost).toBe(0);
  expect(counts.wrongDigests).toBe(0);
  expect(counts.throwawaysTagged).toBe(0);
  expect(counts.extraTags).toBe(0);
  expect(counts.unnamed ?? 0).toBe(0);
  expect(counts.syncedMismatch ?? 0).toBe(0);
  expect(counts.converged).toBe(`${repos}/${repos}`);
}

function retriesLogged(stderr: string): number {
  return stderr.match(/"message":"retrying/g)?.length ?? 0;
}

function lockFiles(): number {
  try {
    return readdirSync(join(stateDir, 'locks')).filter((name) => name.endsWith('.lock')).length;
  } catch {
    return 0;
  }
}

function cliSync(repository: string, primary: string, secondary: string) {
  return spawnCli(cli, ['sync', repository, '--primary', primary, '--secondary', secondary, '--max-prune', '1', '--json', '--concurrency', '4'], {
    GEO_SYNC_STATE_DIR: stateDir,
  });
}

/** The parts of a sync report that explain an outcome, for violation messages. */
function summary(report: SyncReport | undefined): string {
  if (!report) return 'without a report';
  const { plan, done, failed, skipped } = report;
  const tags = (changes: { tag: string }[]) => changes.map((c) => c.tag).join(',');
  return `${report.status} (plan copy [${tags(plan.copy)}] repair [${tags(plan.repair)}] remove [${tags(plan.remove)}]; copied [${done.copied}] repaired [${done.repaired}] removed [${done.removed}]; failed [${tags(failed)}]; skipped [${tags(skipped)}])`;
}

function parseReport(run: CliResult): SyncReport | undefined {
  try {
    const parsed = JSON.parse(run.stdout) as SyncReport | { error: unknown };
    return 'error' in parsed ? undefined : parsed;
  } catch {
    return undefined;
  }
}

describe('soak settings', () => {
  it('names a bad SOAK_ value, what it must be, and what it got', () => {
    expect(() => soakSettings({ SOAK_TAGS: 'three' })).toThrow('SOAK_TAGS must be an integer from 4 to 500, not "three"');
    expect(() => soakSettings({ SOAK_FAULT_RATE: '5%' })).toThrow(/SOAK_FAULT_RATE must be a number from 0.01 to 0.5/);
    expect(() => soakSettings({ SOAK_REPOSITORIES: '0' })).toThrow(/SOAK_REPOSITORIES must be an integer from 1/);
    expect(soakSettings({})).toMatchObject({ repositories: 8, tags: 6, faultRate: 0.05, kills: 6 });
  });
});

describe('soak', () => {
  it(
    `random faults (${settings.faultRate * 100}% of requests, both sides): every repository converges, nothing lost`,
    async () => {
      const scenario = 'random faults (engine API)';
      const t0 = Date.now();
      const counts: Counts = {
        size: `${settings.repositories} × ${settings.tags}`,
        retries: 0,
        runs: 0,
        runsSynced: 0,
        runsGaveUp: 0,
        failedTags: 0,
        runsDifferences: 0,
        runsAborted: 0,
        unnamed: 0,
        syncedMismatch: 0,
      };
      const exitCodes: Record<string, number> = {};
      const faults = [
        new RandomFaults(seededRandom(settings.seed + 1), settings.faultRate),
        new RandomFaults(seededRandom(settings.seed + 2), settings.faultRate),
      ];
      const proxies = await Promise.all([startFaultProxy(P(), faults[0]!.rule), startFaultProxy(S(), faults[1]!.rule)]);
      try {
        await inPool(repositories, 2, async (repository) => {
          const primary = await readState(P(), repository);
          for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
            const before = await readState(S(), repository);
            // The first run retries nothing, so that runs give up and must name what failed.
            const options = { retries: attempt === 1 ? 0 : settings.retries, backoff: fast, concurrency: 4 };
            for (const f of faults) f.retrying(repository, options.retries > 0);
            const p = new RegistryClient({ url: proxies[0]!.url }, options);
            const s = new RegistryClient({ url: proxies[1]!.url }, options);
            let report: SyncReport | undefined;
            try {
              report = await syncRepository(p, s, validateRepositoryName(repository), { maxPrune: 1, concurrency: 4 });
              bump(exitCodes, syncExitCode(report));
            } catch (error) {
              add(counts, 'runsAborted', 1);
              bump(exitCodes, error instanceof GeoSyncError ? exitCodeFor(error) : 'uncaught');
            } finally {
              add(counts, 'retries', p.stats.retries + s.stats.retries);
              for (const f of faults) f.forget(repository);
              await Promise.all([p.close(), s.close()]);
            }
            add(counts, 'runs', 1);
            const after = await readState(S(), repository);
            const audit = await auditRun(repository, [primary], before, after);
            add(counts, 'tagsLost', audit.lost.length);
            add(counts, 'wrongDigests', audit.wrong.length);
            if (audit.lost.length || audit.wrong.length) violation(scenario, `${repository} run ${attempt} lost [${audit.lost}], wrong [${audit.wrong}]`);
            const diff = differences(primary, after);
            if (report?.status === 'synced') {
              add(counts, 'runsSynced', 1);
              if (differenceCount(diff) > 0) {
                add(counts, 'syncedMismatch', 1);
                violation(scenario, `${repository} run ${attempt} said synced with [${differingTags(diff)}] differing`);
              }
              break;
            }
            if (report) {
              if (report.failed.length > 0) add(counts, 'runsGaveUp', 1);
              else add(counts, 'runsDifferences', 1);
              add(counts, 'failedTags', report.failed.length);
              const named = new Set([...report.failed, ...report.skipped].map((entry) => entry.tag));
              const unnamed = differingTags(diff).filter((tag) => !named.has(tag));
              add(counts, 'unnamed', unnamed.length);
              if (unnamed.length) violation(scenario, `${repository} run ${attempt} (${report.status}) left [${unnamed}] differing without naming them`);
            }
          }
        });
      } finally {
        await Promise.all(proxies.map((proxy) => proxy.stop()));
      }
      injected(counts, proxies, faults);
      counts.tagsLost = counts.tagsLost ?? 0;
      counts.wrongDigests = counts.wrongDigests ?? 0;
      await finalAudit(scenario, repositories, counts);
      counts.exitCodes = tally(exitCodes);
      counts.seconds = round((Date.now() - t0) / 1000);
      result.scenarios[scenario] = counts;

      expectHeld(scenario, counts, repositories.length);
      expect(faults.flatMap((f) => f.earlyDetails)).toEqual([]);
      // The faults really happened and the engine really retried.
      expect(Number(counts.fault503) + Number(counts.fault502) + Number(counts.fault429) + Number(counts.faultReset)).toBeGreaterThan(0);
      expect(counts.retries).toBeGreaterThan(0);
    },
    120_000 + settings.repositories * settings.tags * 1_500,
  );

  it(
    `crashes: the CLI SIGKILLed ${settings.kills} times mid-sync; the next sync converges and leaves no throwaway tagged`,
    async () => {
      const scenario = 'crashes (CLI, SIGKILL)';
      const t0 = Date.now();
      const repository = 'soak/crash';
      const tags = Array.from({ length: settings.tags * 2 }, (_, i) => `v${i}`);
      for (const tag of tags) await pushImage(P(), repository, tag, { format: 'docker', seed: 'crash' });
      await pushMultiArch(P(), repository, 'multi', 'docker', 'crash');
      for (const tag of tags.filter((_, i) => i % 2 === 0)) await pushImage(S(), repository, tag, { format: 'docker', seed: 'stale' });
      for (const tag of ['old-a', 'old-b', 'old-c']) await pushImage(S(), repository, tag, { format: 'docker', seed: 'crash' });

      const counts: Counts = {
        size: `1 × ${tags.length + 1}`,
        kills: 0,
        retries: 0,
        runs: 0,
        tagsLost: 0,
        wrongDigests: 0,
        throwawaysAfterKill: 0,
        staleLocks: 0,
      };
      const exitCodes: Record<string, number> = {};
      const modes: Record<string, number> = {};
      const proxies = await Promise.all([startFaultProxy(P()), startFaultProxy(S())]);
      const [primaryProxy, secondaryProxy] = proxies as [FaultProxy, FaultProxy];
      try {
        for (let round = 0; Number(counts.kills) < settings.kills && round < settings.kills * 2; round++) {
          if (round > 0) {
            // New work for every run: two tags moved on the primary, one extra tag on the secondary.
            for (const tag of [pick(tags), pick(tags)]) await pushImage(P(), repository, tag, { format: 'docker', seed: `round ${round}` });
            await pushImage(S(), repository, `x${round}`, { format: 'docker', seed: 'crash' });
          }
          const [primary, before] = await Promise.all([readState(P(), repository), readState(S(), repository)]);
          add(counts, 'staleLocks', lockFiles());

          const run = cliSync(repository, primaryProxy.url, secondaryProxy.url);
          let killed = false;
          const kill = () => {
            if (!killed) killed = run.child.kill('SIGKILL');
          };
          let timer: NodeJS.Timeout | undefined;
          // Four kill points, in turn: the k-th request (let through), just before the k-th write
          // (held: it never arrives), between "tag -> throwaway" and "delete it", or a random moment.
          const mode = (['request', 'before a write', 'throwaway window', 'timer'] as const)[round % 4]!;
          let seen = 0;
          const k = 1 + Math.floor(random() * (mode === 'request' ? 40 : 12));
          const delayMs = Math.floor(random() * 400);
          const secondaryRule = ({ method, path }: ProxiedRequest): Fault | undefined => {
            if (killed) return { kind: 'status', status: 503 };
            const write = method !== 'GET' && method !== 'HEAD';
            if (mode === 'request' && ++seen === k) kill();
            if (mode === 'before a write' && write && ++seen === k) {
              kill();
              return { kind: 'status', status: 503 };
            }
            if (mode === 'throwaway window' && method === 'DELETE' && /\/manifests\/sha256:/.test(path) && !path.endsWith(DELETE_PROBE_DIGEST)) {
              kill();
              return { kind: 'status', status: 503 };
            }
            return undefined;
          };
          secondaryProxy.setRule(secondaryRule);
          primaryProxy.setRule(() => {
            if (mode === 'timer' && timer === undefined) timer = setTimeout(kill, delayMs);
            return undefined;
          });
          const outcome = await run.done;
          clearTimeout(timer);
          primaryProxy.setRule(() => undefined);
          secondaryProxy.setRule(() => undefined);

          add(counts, 'runs', 1);
          add(counts, 'retries', retriesLogged(outcome.stderr));
          if (run.child.signalCode === 'SIGKILL') {
            add(counts, 'kills', 1);
            bump(modes, mode);
            bump(exitCodes, 'SIGKILL');
          } else {
            bump(exitCodes, outcome.code);
          }
          const after = await readState(S(), repository);
          const audit = await auditRun(repository, [primary], before, after);
          add(counts, 'tagsLost', audit.lost.length);
          add(counts, 'wrongDigests', audit.wrong.length);
          add(counts, 'throwawaysAfterKill', audit.throwaways.length);
          if (audit.lost.length || audit.wrong.length) violation(scenario, `round ${round} (${mode}) lost [${audit.lost}], wrong [${audit.wrong}]`);
        }

        add(counts, 'staleLocks', lockFiles());
        const final = await cliSync(repository, primaryProxy.url, secondaryProxy.url).done;
        add(counts, 'runs', 1);
        add(counts, 'retries', retriesLogged(final.stderr));
        bump(exitCodes, final.code);
        if (final.code !== 0) violation(scenario, `the final sync exited ${final.code}: ${final.stderr.slice(0, 500)}`);
        const verify = await spawnCli(cli, ['verify', repository, '--deep', '--primary', P(), '--secondary', S()]).done;
        if (verify.code !== 0) violation(scenario, `verify --deep after the final sync exited ${verify.code}: ${verify.stdout.slice(0, 500)}`);
      } finally {
        await Promise.all(proxies.map((proxy) => proxy.stop()));
      }
      counts.requests = proxies.reduce((n, p) => n + p.stats.requests, 0);
      counts.killModes = Object.entries(modes)
        .map(([mode, n]) => `${mode} ×${n}`)
        .join(', ');
      await finalAudit(scenario, [repository], counts);
      counts.exitCodes = tally(exitCodes);
      counts.seconds = round((Date.now() - t0) / 1000);
      result.scenarios[scenario] = counts;

      expectHeld(scenario, counts, 1);
      expect(counts.kills).toBe(settings.kills);
    },
    120_000 + settings.kills * 6_000,
  );

  it(
    'races: the primary changes while the CLI syncs; never "synced" over a change it saw, and the next sync converges',
    async () => {
      const scenario = 'races (CLI)';
      const t0 = Date.now();
      const counts: Counts = {
        changes: 0,
        retries: 0,
        runs: 0,
        runsSynced: 0,
        runsDifferences: 0,
        runsGaveUp: 0,
        runsAborted: 0,
        unnamed: 0,
        syncedMismatch: 0,
        syncedAfterLastRead: 0,
        tagsLost: 0,
        wrongDigests: 0,
      };
      const exitCodes: Record<string, number> = {};
      const kinds: Record<string, number> = {};
      const sizes: number[] = [];
      // The same repositories as the random-fault scenario: count only the throwaways left from here on.
      const storedBefore = repositories.reduce((n, repository) => n + storedThrowaways(registries.secondary.root, repository), 0);
      const proxies = await Promise.all([startFaultProxy(P()), startFaultProxy(S())]);
      const [primaryProxy, secondaryProxy] = proxies as [FaultProxy, FaultProxy];
      try {
        for (const [round, repository] of repositories.entries()) {
          // Work for the run: a tag moved and one added on the primary, one extra on the secondary.
          await pushImage(P(), repository, plainTags[1]!, { seed: `before race ${round}` });
          await pushImage(P(), repository, `r${round}`, { seed: 'race' });
          await pushImage(S(), repository, `ghost${round}`, { seed: 'ghost' });
          const [primaryBefore, before] = await Promise.all([readState(P(), repository), readState(S(), repository)]);
          sizes.push(Object.keys(primaryBefore).length);

          // The change: a tag moved, added, deleted, or an extra tag of the secondary appearing on the primary.
          const kind = (['move', 'add', 'delete', 'reappear'] as const)[round % 4]!;
          const tag = kind === 'add' ? `late${round}` : kind === 'reappear' ? `ghost${round}` : pick(plainTags.filter((t) => t in primaryBefore));
          const change = async () => {
            if (kind === 'delete') await deleteManifest(P(), repository, primaryBefore[tag]!);
            else await pushImage(P(), repository, tag, { seed: `race ${round}` });
          };
          // Started by the k-th request to the primary, which is held while the change lands.
          const k = 1 + Math.floor(random() * (Object.keys(primaryBefore).length + 8));
          const reads: { at: number; method: string; path: string }[] = [];
          let changed: Promise<void> | undefined;
          let changedAt = Infinity;
          const requestsBefore = primaryProxy.stats.requests;
          primaryProxy.setRule(({ method, path, n }) => {
            reads.push({ at: Date.now(), method, path });
            if (changed || n - requestsBefore !== k) return undefined;
            changed = change().then(() => void (changedAt = Date.now()));
            return { kind: 'delay', ms: 250 };
          });
          const run = await cliSync(repository, primaryProxy.url, secondaryProxy.url).done;
          primaryProxy.setRule(() => undefined);
          const during = changed !== undefined;
          if (!during) await change().then(() => void (changedAt = Date.now()));
          await changed;
          add(counts, 'changes', during ? 1 : 0);
          bump(kinds, `${kind}${during ? '' : ' (after the run)'}`);
          add(counts, 'runs', 1);
          add(counts, 'retries', retriesLogged(run.stderr));
          bump(exitCodes, run.code);

          const [primaryAfter, after] = await Promise.all([readState(P(), repository), readState(S(), repository)]);
          const audit = await auditRun(repository, [primaryBefore, primaryAfter], before, after);
          add(counts, 'tagsLost', audit.lost.length);
          add(counts, 'wrongDigests', audit.wrong.length);
          if (audit.lost.length || audit.wrong.length) violation(scenario, `${repository} (${kind} ${tag}) lost [${audit.lost}], wrong [${audit.wrong}]`);

          const report = parseReport(run);
          const diff = differences(primaryAfter, after);
          const lastRead = Math.max(...reads.map((r) => r.at));
          const afterLastRead = changedAt > lastRead;
          if (!report) {
            add(counts, 'runsAborted', 1);
            violation(scenario, `${repository} (${kind} ${tag}): no report, exit ${run.code}: ${run.stderr.slice(0, 300)}`);
          } else if (report.status === 'synced') {
            add(counts, 'runsSynced', 1);
            if (differenceCount(diff) > 0) {
              // A change that landed after the run's last read of the primary is one no run could see.
              if (afterLastRead) add(counts, 'syncedAfterLastRead', 1);
              else {
                add(counts, 'syncedMismatch', 1);
                violation(scenario, `${repository} (${kind} ${tag}) said synced with [${differingTags(diff)}] differing`);
              }
            }
          } else {
            add(counts, report.failed.length ? 'runsGaveUp' : 'runsDifferences', 1);
            const named = new Set([...report.failed, ...report.skipped].map((entry) => entry.tag));
            const unnamed = afterLastRead ? [] : differingTags(diff).filter((t) => !named.has(t));
            add(counts, 'unnamed', unnamed.length);
            if (unnamed.length) violation(scenario, `${repository} (${kind} ${tag}, ${report.status}) left [${unnamed}] differing without naming them`);
          }

          const again = await cliSync(repository, primaryProxy.url, secondaryProxy.url).done;
          add(counts, 'runs', 1);
          add(counts, 'retries', retriesLogged(again.stderr));
          bump(exitCodes, again.code);
          const [primaryEnd, secondAfter] = await Promise.all([readState(P(), repository), readState(S(), repository)]);
          const left = differences(primaryEnd, secondAfter);
          if (again.code !== 0 || differenceCount(left) > 0) {
            violation(
              scenario,
              `${repository} (${kind} ${tag}${during ? '' : ' after the run'}): the second sync exited ${again.code} leaving [${differingTags(left)}]; first run ${summary(report)}; second run ${summary(parseReport(again))}`,
            );
          }
        }
      } finally {
        await Promise.all(proxies.map((proxy) => proxy.stop()));
      }
      counts.requests = proxies.reduce((n, p) => n + p.stats.requests, 0);
      counts.size = `${repositories.length} × ${Math.min(...sizes)}${Math.max(...sizes) > Math.min(...sizes) ? `–${Math.max(...sizes)}` : ''}`;
      counts.changes = `${counts.changes} (${Object.entries(kinds)
        .map(([k, n]) => `${k} ×${n}`)
        .join(', ')})`;
      await finalAudit(scenario, repositories, counts);
      add(counts, 'storedThrowaways', -storedBefore);
      counts.exitCodes = tally(exitCodes);
      counts.seconds = round((Date.now() - t0) / 1000);
      result.scenarios[scenario] = counts;

      expectHeld(scenario, counts, repositories.length);
    },
    120_000 + settings.repositories * 8_000,
  );
});
