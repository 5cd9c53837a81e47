// The stack's parameters for where the fan-out lists repositories (repositories, gitlabUrl,
// gitlabGroups, gitlabProjects) and for KMS-encrypted ECR repositories (ecrKmsKeyArns), read from
// templates `osls package` builds with and without them, as CloudFormation would resolve their
// conditions; the fan-out's resolved environment is then read by the code the function runs.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lambdaRepositorySource } from '../../shared/aws/credentials.js';
import { checkSuppressions, formatFailure, runCfnGuard, type Suppression } from './support/cfn-guard.js';
import { conditionHolds, resolveIfs } from './support/conditions.js';
import { packageService, type PackagedService } from './support/package.js';

const KEYS = [
  'arn:aws:kms:eu-west-1:123456789012:key/1111aaaa-0000-4000-8000-000000000001',
  'arn:aws:kms:us-east-1:123456789012:key/2222bbbb-0000-4000-8000-000000000002',
];
const ECR_SECONDARIES = 'arn:aws:ecr:eu-west-1:123456789012:repository/*';

let plain: PackagedService;
let named: PackagedService;
let gitlab: PackagedService;

beforeAll(async () => {
  plain = await packageService();
  // Keys without an ECR secondary: nothing would create a repository with them.
  named = await packageService(['--param=repositories=team/api,team/web', `--param=ecrKmsKeyArns=${KEYS.join(',')}`]);
  gitlab = await packageService([
    '--param=gitlabUrl=https://gitlab.example.com',
    '--param=gitlabGroups=team,platform/images',
    '--param=gitlabProjects=tools/cli',
    `--param=ecrSecondaryRepositories=${ECR_SECONDARIES}`,
    `--param=ecrKmsKeyArns=${KEYS.join(',')}`,
  ]);
}, 450_000);

afterAll(() => [plain, named, gitlab].forEach((service) => service?.remove()));

const FUNCTION_IDS = ['FanOutLambdaFunction', 'SyncLambdaFunction', 'VerifyLambdaFunction', 'NotifyLambdaFunction'];
const SOURCE_VARIABLES = ['GEO_SYNC_GITLAB_GROUPS', 'GEO_SYNC_GITLAB_PROJECTS', 'GEO_SYNC_GITLAB_URL', 'GEO_SYNC_REPOSITORIES'];

/** A function's environment as deployed: conditions decided, only the plain strings (no Ref or GetAtt). */
function deployedEnvironment(service: PackagedService, id: string): Record<string, string> {
  const variables = resolveIfs(service.template, service.template.Resources[id]!.Properties.Environment.Variables) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(variables).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
}

/** The resources CloudFormation would create: those without a condition, or whose condition holds. */
function deployed(service: PackagedService): Record<string, { Type: string; Properties: Record<string, any> }> {
  return Object.fromEntries(Object.entries(service.template.Resources).filter(([, r]) => !r.Condition || conditionHolds(service.template, r.Condition)));
}

const kmsGrants = (service: PackagedService) =>
  Object.entries(deployed(service)).flatMap(([id, r]) => {
    const statements: any[] =
      r.Type === 'AWS::IAM::Policy'
        ? r.Properties.PolicyDocument.Statement
        : r.Type === 'AWS::IAM::Role'
          ? r.Properties.Policies.flatMap((p: any) => p.PolicyDocument.Statement)
          : [];
    return (resolveIfs(service.template, statements) as any[])
      .filter((s) => [s.Action].flat().some((action: string) => action.startsWith('kms:')))
      .map((s) => ({ id, roles: r.Properties.Roles, effect: s.Effect, actions: [s.Action].flat().sort(), resource: s.Resource, condition: s.Condition }));
  });

describe('repository sources as stack parameters', () => {
  it('by default no function is given a source: the fan-out lists the primary itself (_catalog, or DescribeRepositories)', () => {
    for (const id of FUNCTION_IDS)
      expect(
        Object.keys(deployedEnvironment(plain, id)).filter((v) => SOURCE_VARIABLES.includes(v)),
        id,
      ).toEqual([]);
    expect(lambdaRepositorySource(deployedEnvironment(plain, 'FanOutLambdaFunction'))).toEqual({ kind: 'catalog' });
  });

  it('`repositories` reaches the fan-out alone, as the fixed list it reads', () => {
    expect(deployedEnvironment(named, 'FanOutLambdaFunction').GEO_SYNC_REPOSITORIES).toBe('team/api,team/web');
    for (const id of FUNCTION_IDS.slice(1)) expect(deployedEnvironment(named, id).GEO_SYNC_REPOSITORIES, id).toBeUndefined();
    expect(lambdaRepositorySource(deployedEnvironment(named, 'FanOutLambdaFunction'))).toEqual({ kind: 'list', names: ['team/api', 'team/web'] });
  });

  it("gitlabUrl, gitlabGroups and gitlabProjects reach the fan-out as its GitLab source, with no token (that is the secret's)", () => {
    const environment = deployedEnvironment(gitlab, 'FanOutLambdaFunction');
    expect(environment).toMatchObject({
      GEO_SYNC_GITLAB_URL: 'https://gitlab.example.com',
      GEO_SYNC_GITLAB_GROUPS: 'team,platform/images',
      GEO_SYNC_GITLAB_PROJECTS: 'tools/cli',
    });
    expect(Object.keys(environment).filter((v) => /TOKEN|PASSWORD/.test(v))).toEqual([]);
    expect(lambdaRepositorySource(environment)).toEqual({
      kind: 'gitlab',
      url: 'https://gitlab.example.com',
      groups: ['team', 'platform/images'],
      projects: ['tools/cli'],
    });
    for (const id of FUNCTION_IDS.slice(1))
      expect(
        Object.keys(deployedEnvironment(gitlab, id)).filter((v) => SOURCE_VARIABLES.includes(v)),
        id,
      ).toEqual([]);
  });
});

describe('KMS grants for the ECR repositories the sync role creates', () => {
  it('none by default, and none with keys but no ECR secondary (nothing would create a repository)', () => {
    expect(kmsGrants(plain)).toEqual([]);
    expect(kmsGrants(named)).toEqual([]);
  });

  it('with keys and ECR secondaries: exactly kms:CreateGrant, kms:RetireGrant and kms:DescribeKey on those keys, for the sync role alone', () => {
    expect(kmsGrants(gitlab)).toEqual([
      {
        id: 'SyncEcrKmsPolicy',
        roles: [{ Ref: 'SyncRole' }],
        effect: 'Allow',
        actions: ['kms:CreateGrant', 'kms:DescribeKey', 'kms:RetireGrant'],
        resource: { 'Fn::Split': [',', KEYS.join(',')] },
        condition: undefined,
      },
    ]);
  });

  it("cfn-guard's Control Tower rules still pass on that template (only the listed suppressions fail)", async () => {
    const suppressions = (JSON.parse(readFileSync('test/aws/cfn-guard-suppressions.json', 'utf8')) as { suppressions: Suppression[] }).suppressions;
    const report = await runCfnGuard(gitlab.templatePath);
    expect(checkSuppressions(report.failing, suppressions).unsuppressed.map(formatFailure)).toEqual([]);
    expect(report.passing).toEqual(
      expect.arrayContaining(['iam_inline_policy_no_statements_with_admin_access_check', 'iam_inline_policy_no_statements_with_full_access_check']),
    );
  }, 150_000);
});
