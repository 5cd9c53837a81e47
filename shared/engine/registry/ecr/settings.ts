/**
 * What makes a registry ECR, and what an ECR registry is opened with: its region, the account
 * whose registry it is, an optional role to assume, and the settings of the repositories it creates.
 */

/** A repository's tag mutability, as CreateRepository takes it. */
export const TAG_MUTABILITIES = ['MUTABLE', 'IMMUTABLE', 'MUTABLE_WITH_EXCLUSION', 'IMMUTABLE_WITH_EXCLUSION'] as const;
/** A repository's encryption, as CreateRepository takes it. */
export const ENCRYPTION_TYPES = ['AES256', 'KMS', 'KMS_DSSE'] as const;

/**
 * The settings of a repository this registry creates on first write. Defaults: MUTABLE tags (an
 * exact copy moves a tag when the primary does), AES256 encryption, no scan on push, no resource tags.
 */
export interface EcrRepositorySettings {
  tagMutability?: (typeof TAG_MUTABILITIES)[number];
  /** Tags (wildcards) that are the exception to `tagMutability`, for the *_WITH_EXCLUSION forms. */
  tagMutabilityExclusions?: string[];
  encryptionType?: (typeof ENCRYPTION_TYPES)[number];
  /** The KMS key (ARN, id or alias) for KMS encryption; AWS's managed key when absent. */
  kmsKey?: string;
  scanOnPush?: boolean;
  /** Resource tags put on each repository created. */
  resourceTags?: Record<string, string>;
}

export interface EcrSettings {
  region: string;
  /** The account whose registry it is (12 digits); the caller's own when absent. */
  registryId?: string;
  /** A role to assume (STS AssumeRole) for a registry in another account. */
  roleArn?: string;
  repositorySettings?: EcrRepositorySettings;
}

/**
 * ECR's registry hosts: `<account>.dkr.ecr.<region>.amazonaws.com`, `.amazonaws.com.cn`, the FIPS
 * form `dkr.ecr-fips`, and the dual-stack `<account>.dkr-ecr.<region>.on.aws` (and its FIPS form).
 */
const ECR_HOST = /^(\d{12})\.(?:dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?|dkr-ecr(?:-fips)?\.([a-z0-9-]+)\.on\.aws)$/;

/** The account and region an ECR host names; undefined for any other host. */
export function ecrHost(host: string): { registryId: string; region: string } | undefined {
  const match = ECR_HOST.exec(host.toLowerCase().replace(/:443$/, ''));
  if (!match) return undefined;
  return { registryId: match[1]!, region: (match[2] ?? match[3])! };
}

/** The URL of an account's registry in a region, for an ECR entry that gives no URL. */
export function ecrRegistryUrl(registryId: string, region: string): string {
  return `https://${registryId}.dkr.ecr.${region}.amazonaws.com${region.startsWith('cn-') ? '.cn' : ''}`;
}
