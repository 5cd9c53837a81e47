// Amazon ECR as a side (issue 29): what a no-op sync and a verify cost the ECR side, read through
// ECR's API (tags and digests from ListImages) against the same registry read as a plain one (the
// token pasted as a password: one HEAD per tag, as before ECR was a registry type). ECR cannot run
// here: the side is the stand-in of test/support/ecr-stand-in.ts, which records every registry
// request and every ECR API call it receives. Four pairs: ECR as the secondary of a docker-registry,
// then the same repository with ECR as the primary; ECR to ECR (bench/ecr-to-ecr.ts); and ECR as the
// secondary of a registry serving the referrers API with signed images (bench/ecr-signed.ts). The CLI
// runs as a process.
import { performance } from 'node:perf_hooks';
import { startEcrStandIn, type EcrStandIn } from '../test/support/ecr-stand-in.js';
import { readTags } from '../test/support/seed.js';
import {
  GOAL_PER_TAG,
  READING_LABEL,
  awsEnv,
  commandArgs,
  costOf,
  describeCost,
  listed,
  recordRun,
  registryPassword,
  total,
  type Command,
  type Reading,
  type Referrers,
  type SideCost,
} from './ecr-cost.js';
import { benchEcrToEcr } from './ecr-to-ecr.js';
import { SIGNED_REPOSITORY, checkSignedCopy, startSignedPrimary } from './ecr-signed.js';
import { expectOk, expectSame, int, log, registry, runOurs, seconds } from './harness.js';
import type { Row } from './report.js';
import { pushBaseLayer, seedRepository } from './seed.js';

const REPOSITORY = 'bench/ecr';
/** BENCH_ECR_TAGS: tags seeded on the docker-registry and copied once to the ECR side. */
const DEFAULT_TAGS = 200;
const BASE_LAYER_BYTES = 64 * 1024;

type Role = 'secondary' | 'primary';

interface Scenario {
  /** Which pair: `ECR secondary`, `ECR primary`, `ECR secondary of a referrers-API primary`. */
  label: string;
  command: Command;
  costs: Record<Referrers, Record<Reading, SideCost>>;
}

/** One ECR side of a pair: its role, the repository, the other side (a registry without ECR's API). */
interface OneSide {
  label: string;
  role: Role;
  repository: string;
  otherUrl: string;
  tags: number;
}

/**
 * The ECR rows: the bench repository seeded on a docker-registry and copied once to the ECR side, then
 * each command read both ways with ECR as its secondary and as its primary; the same repository ECR to
 * ECR (bench/ecr-to-ecr.ts); and an ECR secondary of a primary that serves the referrers API, some of
 * its images signed (bench/ecr-signed.ts).
 */
export async function benchEcr(): Promise<{ rows: Row[]; details: Record<string, unknown> }> {
  const tags = int(process.env.BENCH_ECR_TAGS, DEFAULT_TAGS);
  if (tags === 0) throw new Error('BENCH_ECR_TAGS must be at least 1');
  log(`== ECR: ${tags} tags, a docker-registry and the ECR stand-in (ECR API + registry API in front of go-containerregistry's registry) ==`);
  const [ecr, plain] = await Promise.all([startEcrStandIn(), registry()]);
  try {
    const t = performance.now();
    await seedRepository(plain.url, REPOSITORY, tags, await pushBaseLayer(plain.url, REPOSITORY, BASE_LAYER_BYTES));
    const truth = await readTags(plain.url, REPOSITORY);
    log(`ECR: seeded ${Object.keys(truth).length} tags on the docker-registry in ${seconds(performance.now() - t)}`);

    const password = await registryPassword(ecr);
    const pair = (role: Role): OneSide => ({ label: `ECR ${role}`, role, repository: REPOSITORY, otherUrl: plain.url, tags });
    const initialMs = await initialCopy(ecr, pair('secondary'), truth);
    const scenarios = [...(await measureOneSide(ecr, password, pair('secondary'))), ...(await measureOneSide(ecr, password, pair('primary')))];
    await expectSame(plain.url, truth, 'the docker-registry after the runs', REPOSITORY);
    await expectSame(ecr.backingRegistryUrl, truth, 'the ECR side after the runs', REPOSITORY);

    const ecrToEcr = await benchEcrToEcr(ecr, password, REPOSITORY, truth);
    const signed = await benchSignedPrimary(ecr, password, tags);
    return {
      rows: [...scenarios.flatMap((scenario) => rowsOf(scenario, tags)), ...ecrToEcr.rows, ...signed.rows],
      details: { tags, repository: REPOSITORY, initialSyncMs: initialMs, scenarios, ecrToEcr: ecrToEcr.details, signedPrimary: signed.details },
    };
  } finally {
    await Promise.all([ecr.stop(), plain.stop()]);
  }
}

/** The ECR secondary of a primary serving the referrers API, some images signed: its rows as ECR secondary's. */
async function benchSignedPrimary(ecr: EcrStandIn, password: string, tags: number): Promise<{ rows: Row[]; details: Record<string, unknown> }> {
  const primary = await startSignedPrimary(tags);
  try {
    const side: OneSide = {
      label: `ECR secondary of a referrers-API primary (${primary.signed.length} manifests signed)`,
      role: 'secondary',
      repository: SIGNED_REPOSITORY,
      otherUrl: primary.url,
      tags: Object.keys(primary.truth).length,
    };
    const initialMs = await initialCopy(ecr, side, primary.truth);
    await checkSignedCopy(ecr.backingRegistryUrl, primary.signed);
    const scenarios = await measureOneSide(ecr, password, side);
    await expectSame(ecr.backingRegistryUrl, primary.truth, 'the ECR side after the runs', SIGNED_REPOSITORY);
    await checkSignedCopy(ecr.backingRegistryUrl, primary.signed);
    return {
      rows: scenarios.flatMap((scenario) => rowsOf(scenario, side.tags)),
      details: { tags: side.tags, repository: SIGNED_REPOSITORY, signed: primary.signed.length, initialSyncMs: initialMs, scenarios },
    };
  } finally {
    await primary.stop();
  }
}

/** The first sync to the ECR side (its repository created on first push), checked; its wall time. */
async function initialCopy(ecr: EcrStandIn, side: OneSide, truth: Record<string, string>): Promise<number> {
  const env = { ...awsEnv(ecr), ...sides(ecr, side.otherUrl, 'secondary', 'ecr', '') };
  const initial = expectOk(await runOurs(['sync', side.repository, '--json'], { env }), `geo-sync sync (initial, to ${side.label})`);
  log(`${side.label}: initial sync to the ECR side ${seconds(initial.wallMs)}`);
  await expectSame(ecr.backingRegistryUrl, truth, `the ECR side after the initial sync (${side.label})`, side.repository);
  return initial.wallMs;
}

/** Each command, referrers on and off, with the ECR side read through ECR's API and as a plain registry: every request to the stand-in is that side's. */
async function measureOneSide(ecr: EcrStandIn, password: string, side: OneSide): Promise<Scenario[]> {
  const scenarios: Scenario[] = [];
  for (const command of ['no-op sync', 'verify'] as const) {
    const costs = { on: {}, off: {} } as Scenario['costs'];
    for (const referrers of ['on', 'off'] as const) {
      for (const reading of ['ecr', 'plain'] as const) {
        const what = `${side.label}, ${command}${referrers === 'off' ? ' --no-referrers' : ''}, ${READING_LABEL[reading]}`;
        const env = { ...awsEnv(ecr), ...sides(ecr, side.otherUrl, side.role, reading, password) };
        const cost = costOf(await recordRun(ecr, commandArgs(command, side.repository, referrers), env, `geo-sync ${what}`));
        costs[referrers][reading] = cost;
        log(`${what}: ${seconds(cost.wallMs)}; ${describeCost(cost)}`);
      }
    }
    scenarios.push({ label: side.label, command, costs });
  }
  return scenarios;
}

/** The pair's variables: the ECR side declared ECR (ours), or a plain registry with the token as its password (before). */
function sides(ecr: EcrStandIn, otherUrl: string, role: Role, reading: Reading, password: string): Record<string, string> {
  const ecrRole = role === 'primary' ? 'PRIMARY' : 'SECONDARY';
  const otherRole = role === 'primary' ? 'SECONDARY' : 'PRIMARY';
  const ecrSide =
    reading === 'ecr'
      ? { [`GEO_SYNC_${ecrRole}_TYPE`]: 'ecr', [`GEO_SYNC_${ecrRole}_REGION`]: ecr.region }
      : { [`GEO_SYNC_${ecrRole}_USERNAME`]: 'AWS', [`GEO_SYNC_${ecrRole}_PASSWORD`]: password };
  return { [`GEO_SYNC_${ecrRole}_URL`]: ecr.registryUrl, ...ecrSide, [`GEO_SYNC_${otherRole}_URL`]: otherUrl };
}

function rowsOf({ label, command, costs }: Scenario, tags: number): Row[] {
  const requestsRow = (referrers: Referrers): Row => {
    const { ecr: ours, plain: before } = costs[referrers];
    return {
      size: tags,
      measure: `${label}: ${command}${referrers === 'off' ? ' --no-referrers' : ''}, registry requests to the ECR side per tag (${listed(ours.byKind)})`,
      unit: 'req/tag',
      ours: ours.registryRequests / tags,
      peer: before.registryRequests / tags,
      peerName: 'plain registry',
      ...(before.registryRequests > 0 && { ratio: ours.registryRequests / before.registryRequests }),
      target: `<= ${GOAL_PER_TAG}`,
      meets: ours.registryRequests / tags <= GOAL_PER_TAG,
    };
  };
  const apiCallsRow = (referrers: Referrers): Row => {
    const { ecr: ours, plain: before } = costs[referrers];
    return {
      size: tags,
      measure: `${label}: ${command}${referrers === 'off' ? ' --no-referrers' : ''}, ECR API calls per run (${listed(ours.apiCalls)})`,
      unit: 'calls',
      ours: total(ours.apiCalls),
      peer: total(before.apiCalls),
      peerName: 'plain registry',
      ...(total(before.apiCalls) > 0 && { ratio: total(ours.apiCalls) / total(before.apiCalls) }),
      target: '-',
    };
  };
  return [
    requestsRow('on'),
    requestsRow('off'),
    apiCallsRow('on'),
    ...(listed(costs.off.ecr.apiCalls) === listed(costs.on.ecr.apiCalls) ? [] : [apiCallsRow('off')]),
  ];
}
