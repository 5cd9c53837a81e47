// An ECR entry with a roleArn (a registry in another account), against the STS stand-in
// (test/support/sts-stand-in.ts: AssumeRole) and the ECR stand-in serving only the role's credentials,
// with a real docker-registry as the primary: through the engine and through the real CLI.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointsFromEnv, openRegistry, syncRepository, validateRepositoryName } from '../shared/engine/index.js';
import { runGeoSync } from './support/cli.js';
import { startEcrStandIn, type EcrStandIn } from './support/ecr-stand-in.js';
import { startStsStandIn, type StsStandIn } from './support/sts-stand-in.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { pushImage, readTags } from './support/seed.js';

const BASE_ACCESS_KEY_ID = 'AKIDBASECALLER';
const BASE_SECRET = 'base-caller-secret';
const ROLE = 'arn:aws:iam::210987654321:role/geo-sync-writer';
const REFUSED_ROLE = 'arn:aws:iam::210987654321:role/geo-sync-not-trusted';

let ecr: EcrStandIn;
let sts: StsStandIn;
let plain: TestRegistry;

/** The SDK's own variables: ECR and STS at the stand-ins, the base (dummy) credentials, no instance metadata. */
const awsEnv = (): Record<string, string> => ({
  AWS_ENDPOINT_URL_ECR: ecr.apiUrl,
  AWS_ENDPOINT_URL_STS: sts.url,
  AWS_REGION: ecr.region,
  AWS_ACCESS_KEY_ID: BASE_ACCESS_KEY_ID,
  AWS_SECRET_ACCESS_KEY: BASE_SECRET,
  AWS_EC2_METADATA_DISABLED: 'true',
});
/** The ECR stand-in as the secondary, in another account, reached through `roleArn`. */
const ecrSecondary = (roleArn: string) => ({
  GEO_SYNC_PRIMARY_URL: plain.url,
  GEO_SYNC_SECONDARY_URL: ecr.registryUrl,
  GEO_SYNC_SECONDARY_TYPE: 'ecr',
  GEO_SYNC_SECONDARY_REGION: ecr.region,
  GEO_SYNC_SECONDARY_REGISTRY_ID: ecr.registryId,
  GEO_SYNC_SECONDARY_ROLE_ARN: roleArn,
});

beforeAll(async () => {
  [ecr, sts, plain] = await Promise.all([startEcrStandIn({ registryId: '210987654321' }), startStsStandIn(), startRegistry()]);
  // The other account's registry answers only the role's credentials, never the base caller's.
  ecr.requireAccessKey(sts.credentialsFor(ROLE).accessKeyId);
  Object.assign(process.env, awsEnv());
}, 60_000);
afterAll(async () => {
  await Promise.all([ecr?.stop(), sts?.stop(), plain?.stop()]);
});

describe('ECR in another account through roleArn', () => {
  it('assumes the role once (session geo-registry-sync, signed by the base credentials) and signs every ECR call with the role', async () => {
    const repo = 'cross-account/app';
    await pushImage(plain.url, repo, 'v1');
    await pushImage(plain.url, repo, 'v2', { seed: 'v2' });
    const endpoints = endpointsFromEnv(ecrSecondary(ROLE));
    const primary = openRegistry(endpoints.primary);
    const secondary = openRegistry(endpoints.secondaries[0]!.endpoint);
    const report = await syncRepository(primary, secondary, validateRepositoryName(repo));
    await Promise.all([primary.close(), secondary.close()]);

    expect(report.status, JSON.stringify(report.failed)).toBe('synced');
    expect(report.done.copied).toEqual(['v1', 'v2']);
    expect(await readTags(ecr.backingRegistryUrl, repo)).toEqual(await readTags(plain.url, repo));
    expect(sts.calls).toEqual([{ roleArn: ROLE, roleSessionName: 'geo-registry-sync', callerAccessKeyId: BASE_ACCESS_KEY_ID }]);
    const assumed = sts.credentialsFor(ROLE).accessKeyId;
    expect(ecr.apiCalls.map((call) => call.operation)).toEqual(expect.arrayContaining(['GetAuthorizationToken', 'CreateRepository']));
    expect(ecr.apiCalls.filter((call) => call.accessKeyId !== assumed)).toEqual([]);
    // Every call carried the registry id of the other account.
    expect(ecr.apiCalls.filter((call) => call.operation !== 'GetAuthorizationToken').every((call) => call.input.registryId === ecr.registryId)).toBe(true);
  });

  it('`geo-sync sync`: a refused AssumeRole fails the run, naming the role and the registry, and prints no secret', async () => {
    sts.refuse(REFUSED_ROLE);
    const repo = 'cross-account/refused';
    await pushImage(plain.url, repo, 'v1');
    const stsBefore = sts.calls.length;
    const apiBefore = ecr.apiCalls.length;
    const result = await runGeoSync(['sync', repo, '--json'], { ...awsEnv(), ...ecrSecondary(REFUSED_ROLE) });
    const output = result.stdout + result.stderr;

    expect(result.code, output).not.toBe(0);
    expect(sts.calls.slice(stsBefore).map((call) => call.roleArn)).toContain(REFUSED_ROLE);
    expect(JSON.parse(result.stdout).error).toMatchObject({ code: 'ECR_API_FAILED' });
    expect(output).toContain(`STS refused to assume role ${REFUSED_ROLE} for ${ecr.registryHost}`);
    // Nothing reached ECR: the SDK signs no call without the role's credentials.
    expect(ecr.apiCalls.slice(apiBefore)).toEqual([]);
    const granted = sts.credentialsFor(ROLE);
    for (const secret of [BASE_SECRET, granted.secretAccessKey, granted.sessionToken]) expect(output).not.toContain(secret);
    expect(await readTags(ecr.backingRegistryUrl, repo)).toEqual({});
  });
});
