// ECR to ECR: both sides of the pair ECR. One stand-in serves both, as test/ecr.test.ts's "ECR to
// ECR" cases do: the SDK finds the ECR API through one AWS_ENDPOINT_URL_ECR, so two stand-ins could
// not both be reached. The primary is the bench repository already on the stand-in (bench/ecr.ts
// copied it there); the secondary is the same registry under the prefix `dr/` (a GEO_SYNC_SECONDARIES
// entry), so each request and API call is told to a side by the repository it names. What names
// none (the registry's ping, the GitLab probe; GetAuthorizationToken) goes to neither side's API
// calls and to both sides' registry requests: two real registries would each be asked their own.
import type { EcrStandIn } from '../test/support/ecr-stand-in.js';
import {
  GOAL_PER_TAG,
  READING_LABEL,
  awsEnv,
  callRepositories,
  commandArgs,
  costOf,
  describeCost,
  listed,
  recordRun,
  requestRepository,
  total,
  type Command,
  type Reading,
  type Referrers,
  type RunRecord,
  type SideCost,
} from './ecr-cost.js';
import { expectOk, expectSame, log, runOurs, seconds } from './harness.js';
import type { Row } from './report.js';

const PREFIX = 'dr/';
const LABEL = 'ECR to ECR';

type Side = 'primary' | 'secondary';

/** One run's cost to each side, and what named no repository. */
interface PairCost {
  primary: SideCost;
  secondary: SideCost;
  neither: SideCost;
}

interface Scenario {
  command: Command;
  costs: Record<Referrers, Record<Reading, PairCost>>;
}

/** The initial copy to `dr/<repository>`, then each command, referrers on and off, both sides read through ECR's API and as plain registries. */
export async function benchEcrToEcr(
  ecr: EcrStandIn,
  password: string,
  repository: string,
  truth: Record<string, string>,
): Promise<{ rows: Row[]; details: Record<string, unknown> }> {
  const tags = Object.keys(truth).length;
  const initial = expectOk(await runOurs(['sync', repository, '--json'], { env: pairEnv(ecr, 'ecr', password) }), `geo-sync sync (initial, ${LABEL})`);
  log(`${LABEL}: initial sync to ${PREFIX}${repository} ${seconds(initial.wallMs)}`);
  await expectSame(ecr.backingRegistryUrl, truth, `the ECR secondary after the initial sync (${LABEL})`, `${PREFIX}${repository}`);

  const scenarios: Scenario[] = [];
  for (const command of ['no-op sync', 'verify'] as const) {
    const costs = { on: {}, off: {} } as Scenario['costs'];
    for (const referrers of ['on', 'off'] as const) {
      for (const reading of ['ecr', 'plain'] as const) {
        const what = `${LABEL}, ${command}${referrers === 'off' ? ' --no-referrers' : ''}, both ${READING_LABEL[reading]}`;
        const record = await recordRun(ecr, commandArgs(command, repository, referrers), pairEnv(ecr, reading, password), `geo-sync ${what}`);
        const cost = splitBySide(record, repository);
        costs[referrers][reading] = cost;
        log(
          `${what}: ${seconds(record.wallMs)}; primary ${describeCost(cost.primary)} | secondary ${describeCost(cost.secondary)} | neither ${describeCost(cost.neither)}`,
        );
      }
    }
    scenarios.push({ command, costs });
  }
  await expectSame(ecr.backingRegistryUrl, truth, `the ECR primary after the runs (${LABEL})`, repository);
  await expectSame(ecr.backingRegistryUrl, truth, `the ECR secondary after the runs (${LABEL})`, `${PREFIX}${repository}`);
  return {
    rows: scenarios.flatMap((scenario) => rowsOf(scenario, tags)),
    details: { tags, primaryRepository: repository, secondaryRepository: `${PREFIX}${repository}`, initialSyncMs: initial.wallMs, scenarios },
  };
}

/** Both sides of the stand-in: declared ECR (ours), or plain registries with the token as their password (before). */
function pairEnv(ecr: EcrStandIn, reading: Reading, password: string): Record<string, string> {
  const plain = { username: 'AWS', password };
  const declared = { type: 'ecr', region: ecr.region };
  const secondary = { name: 'dr', url: ecr.registryUrl, prefix: PREFIX, ...(reading === 'ecr' ? declared : plain) };
  const primary: Record<string, string> =
    reading === 'ecr'
      ? { GEO_SYNC_PRIMARY_TYPE: 'ecr', GEO_SYNC_PRIMARY_REGION: ecr.region }
      : { GEO_SYNC_PRIMARY_USERNAME: 'AWS', GEO_SYNC_PRIMARY_PASSWORD: password };
  return { ...awsEnv(ecr), GEO_SYNC_PRIMARY_URL: ecr.registryUrl, ...primary, GEO_SYNC_SECONDARIES: JSON.stringify([secondary]) };
}

function splitBySide(record: RunRecord, repository: string): PairCost {
  const side = (name: string) => costOf(record, { request: (r) => requestRepository(r) === name, call: (c) => callRepositories(c).includes(name) });
  return {
    primary: side(repository),
    secondary: side(`${PREFIX}${repository}`),
    neither: costOf(record, { request: (r) => requestRepository(r) === undefined, call: (c) => callRepositories(c).length === 0 }),
  };
}

function rowsOf({ command, costs }: Scenario, tags: number): Row[] {
  const flag = (referrers: Referrers) => `${command}${referrers === 'off' ? ' --no-referrers' : ''}`;
  const requestsRow = (side: Side, referrers: Referrers): Row => {
    const { ecr: ours, plain: before } = costs[referrers];
    const oursCount = ours[side].registryRequests + ours.neither.registryRequests;
    const beforeCount = before[side].registryRequests + before.neither.registryRequests;
    const neither = ours.neither.registryRequests > 0 ? `; and naming no repository: ${listed(ours.neither.byKind)}` : '';
    return {
      size: tags,
      measure: `${LABEL}: ${flag(referrers)}, registry requests to the ${side} per tag (${listed(ours[side].byKind)}${neither})`,
      unit: 'req/tag',
      ours: oursCount / tags,
      peer: beforeCount / tags,
      peerName: 'plain registries',
      ...(beforeCount > 0 && { ratio: oursCount / beforeCount }),
      target: `<= ${GOAL_PER_TAG}`,
      meets: oursCount / tags <= GOAL_PER_TAG,
    };
  };
  const callsRow = (side: Side, referrers: Referrers): Row => {
    const { ecr: ours, plain: before } = costs[referrers];
    const neither = total(ours.neither.apiCalls) > 0 ? `; and naming no repository: ${listed(ours.neither.apiCalls)}` : '';
    return {
      size: tags,
      measure: `${LABEL}: ${flag(referrers)}, ECR API calls per run to the ${side} (${listed(ours[side].apiCalls)}${neither})`,
      unit: 'calls',
      ours: total(ours[side].apiCalls),
      peer: total(before[side].apiCalls),
      peerName: 'plain registries',
      target: '-',
    };
  };
  const sameCalls = (side: Side) => listed(costs.on.ecr[side].apiCalls) === listed(costs.off.ecr[side].apiCalls);
  return (['primary', 'secondary'] as const).flatMap((side) => [
    requestsRow(side, 'on'),
    requestsRow(side, 'off'),
    callsRow(side, 'on'),
    ...(sameCalls(side) ? [] : [callsRow(side, 'off')]),
  ]);
}
