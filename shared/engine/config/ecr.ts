/**
 * An ECR registry in the configuration: declared (`type: ecr` on a secondaries entry,
 * GEO_SYNC_<ROLE>_TYPE=ecr in the environment), or known by its URL's host. ECR signs in with IAM,
 * so an ECR entry has a region and no password; a registry in another account names its
 * `registryId` and, where the caller's role is not allowed there, a `roleArn` to assume.
 */
import { z } from 'zod';
import { invalidInput } from '../base/errors.js';
import { ENCRYPTION_TYPES, TAG_MUTABILITIES, ecrHost, ecrRegistryUrl, type EcrSettings } from '../registry/ecr/settings.js';
import { parseRegistryUrl } from '../registry/transport.js';

const REGION = /^[a-z]{2}(?:-[a-z]+)+-\d+$/;
const REGISTRY_ID = /^\d{12}$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;

/** The settings of the repositories an ECR secondary creates (defaults in registry/ecr/settings.ts). */
const repositorySettings = z.strictObject({
  tagMutability: z.enum(TAG_MUTABILITIES).optional(),
  tagMutabilityExclusions: z.array(z.string().min(1).max(128)).min(1).max(5).optional(),
  encryptionType: z.enum(ENCRYPTION_TYPES).optional(),
  kmsKey: z.string().min(1).optional(),
  scanOnPush: z.boolean().optional(),
  resourceTags: z.record(z.string().min(1).max(128), z.string().max(256)).optional(),
});

/** The fields of a secondaries entry that only an ECR entry has. */
export const ecrFields = {
  type: z.enum(['ecr', 'registry']).optional(),
  region: z.string().regex(REGION, 'an AWS region, such as eu-west-1').optional(),
  registryId: z.string().regex(REGISTRY_ID, 'an AWS account id, 12 digits').optional(),
  roleArn: z.string().regex(ROLE_ARN, 'an IAM role ARN, arn:aws:iam::<account>:role/<name>').optional(),
  repositorySettings: repositorySettings.optional(),
};

export interface EcrDeclaration {
  url?: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
  /** `registry` keeps an ECR host a plain registry (with a password); undefined: by the host. */
  type?: 'ecr' | 'registry' | undefined;
  region?: string | undefined;
  registryId?: string | undefined;
  roleArn?: string | undefined;
  repositorySettings?: z.infer<typeof repositorySettings> | undefined;
}

/**
 * The registry's URL and its ECR settings (undefined: not ECR), from what an entry or the
 * environment (`label`) declares. An ECR host with a username or password stays a plain registry
 * (a token pasted as the password), as before ECR was known.
 */
export function ecrDeclared(declared: EcrDeclaration, label: string): { url: string; ecr: EcrSettings | undefined } {
  const fromHost = declared.url !== undefined ? ecrHost(parseRegistryUrl(declared.url).host) : undefined;
  const hasCredentials = declared.username !== undefined || declared.password !== undefined;
  const isEcr = declared.type === 'ecr' || (declared.type === undefined && fromHost !== undefined && !hasCredentials);
  const ecrOnly = (['region', 'registryId', 'roleArn', 'repositorySettings'] as const).filter((field) => declared[field] !== undefined);
  if (!isEcr) {
    if (ecrOnly.length > 0) throw invalidInput('INVALID_CONFIG', `${label}: ${ecrOnly.join(', ')} only for an ECR registry (type: ecr)`);
    if (declared.url === undefined) throw invalidInput('INVALID_CONFIG', `${label}: "url" is required`);
    return { url: declared.url, ecr: undefined };
  }
  if (hasCredentials) throw invalidInput('INVALID_CONFIG', `${label}: an ECR registry signs in with IAM (GetAuthorizationToken): no username or password`);
  const region = declared.region ?? fromHost?.region;
  if (region === undefined) throw invalidInput('INVALID_CONFIG', `${label}: an ECR registry needs its region`);
  const registryId = declared.registryId ?? fromHost?.registryId;
  checkRepositorySettings(declared.repositorySettings, label);
  const url = declared.url ?? (registryId !== undefined ? ecrRegistryUrl(registryId, region) : undefined);
  if (url === undefined) throw invalidInput('INVALID_CONFIG', `${label}: an ECR registry needs its url or its registryId`);
  const ecr: EcrSettings = { region };
  if (registryId !== undefined) ecr.registryId = registryId;
  if (declared.roleArn !== undefined) ecr.roleArn = declared.roleArn;
  if (declared.repositorySettings !== undefined) ecr.repositorySettings = declared.repositorySettings;
  return { url, ecr };
}

function checkRepositorySettings(settings: EcrDeclaration['repositorySettings'], label: string): void {
  if (!settings) return;
  const withExclusions = settings.tagMutability?.endsWith('_WITH_EXCLUSION') ?? false;
  if (withExclusions !== (settings.tagMutabilityExclusions !== undefined)) {
    throw invalidInput('INVALID_CONFIG', `${label}: repositorySettings.tagMutabilityExclusions go with a tagMutability *_WITH_EXCLUSION, and only with one`);
  }
  if (settings.kmsKey !== undefined && !settings.encryptionType?.startsWith('KMS')) {
    throw invalidInput('INVALID_CONFIG', `${label}: repositorySettings.kmsKey needs encryptionType KMS or KMS_DSSE`);
  }
}

/** The environment's declaration for a role: GEO_SYNC_<ROLE>_TYPE, _REGION, _REGISTRY_ID, _ROLE_ARN. */
export function ecrFromEnv(env: Record<string, string | undefined>, role: 'PRIMARY' | 'SECONDARY'): Omit<EcrDeclaration, 'url' | 'username' | 'password'> {
  const typeVariable = `GEO_SYNC_${role}_TYPE`;
  const type = env[typeVariable] || undefined;
  if (type !== undefined && type !== 'ecr' && type !== 'registry')
    throw invalidInput('INVALID_CONFIG', `${typeVariable} is ecr or registry, not ${JSON.stringify(type)}`);
  const declared: Omit<EcrDeclaration, 'url' | 'username' | 'password'> = type !== undefined ? { type } : {};
  const variables: [keyof typeof ecrFields & ('region' | 'registryId' | 'roleArn'), string][] = [
    ['region', `GEO_SYNC_${role}_REGION`],
    ['registryId', `GEO_SYNC_${role}_REGISTRY_ID`],
    ['roleArn', `GEO_SYNC_${role}_ROLE_ARN`],
  ];
  for (const [field, variable] of variables) {
    const value = env[variable] || undefined;
    if (value === undefined) continue;
    const parsed = ecrFields[field].safeParse(value);
    if (!parsed.success) throw invalidInput('INVALID_CONFIG', `${variable}: ${parsed.error.issues[0]!.message}`);
    declared[field] = value;
  }
  return declared;
}
