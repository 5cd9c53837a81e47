/**
 * The webhooks of registries that do not send distribution's envelope, read into the same hints
 * (`notification.ts`): Harbor's Default format, Quay's `repo_push`, GitHub's `package` and
 * `registry_package` events. Pure. Like an envelope, a payload only says where to look: the job
 * reads the configured primary, and no URL a payload carries (`resource_url`, `docker_url`,
 * `package_url`) is kept.
 */
import { z } from 'zod';
import { describeZodIssues, isValidDigest, validateRepositoryName, validateTag } from '../../engine/index.js';
import { InvalidEnvelope, type ReadNotifications } from './notification.js';

/** More resources or tags than this in one payload is not a registry talking. */
const MAX_ITEMS = 10_000;

function parsed<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const result = schema.safeParse(body);
  if (!result.success) throw new InvalidEnvelope(`not ${what}: ${describeZodIssues(result.error, 'body')}`);
  return result.data;
}

/** Adds one tag or digest of one repository to `read`, or reports it invalid; `action` as the hints know it. */
function addHint(
  read: ReadNotifications,
  index: number,
  action: 'push' | 'delete',
  repository: string,
  named: { tag: string | undefined; digest: string | undefined },
  at: number,
): void {
  const tag = named.tag || undefined;
  const digest = named.digest || undefined;
  try {
    validateRepositoryName(repository);
    if (tag !== undefined) validateTag(tag);
    else if (digest === undefined) throw new Error('no tag and no digest');
    if (digest !== undefined && !isValidDigest(digest)) throw new Error('invalid digest');
  } catch (error) {
    read.invalid.push({ index, action, reason: (error as Error).message });
    return;
  }
  if (tag === undefined) return void read.digests.push({ repository, digest: digest!, action, at });
  read.hints.push({ repository, tag, at, ...(action === 'push' && digest !== undefined ? { pushed: digest } : {}) });
  // A deleted artifact takes its manifest with it: the digest is looked at too (removed from the
  // secondary only when the primary answers 404 for it).
  if (action === 'delete' && digest !== undefined) read.digests.push({ repository, digest, action, at });
}

const empty = (): ReadNotifications => ({ hints: [], digests: [], ignored: 0, invalid: [] });

// --- Harbor ---------------------------------------------------------------------------------

/** Harbor's Default payload (goharbor.io, "Configure Webhook Notifications"): `type`, `occur_at` (epoch seconds), `event_data`. */
const HarborPayload = z.object({
  type: z.string(),
  occur_at: z.number().optional(),
  event_data: z.unknown().optional(),
});

const HarborArtifactData = z.object({
  resources: z.array(z.object({ digest: z.string().optional(), tag: z.string().optional() })).max(MAX_ITEMS),
  repository: z.object({ repo_full_name: z.string() }),
});

const HARBOR_ACTIONS: Record<string, 'push' | 'delete'> = { PUSH_ARTIFACT: 'push', DELETE_ARTIFACT: 'delete' };

/**
 * One Harbor payload: `PUSH_ARTIFACT` and `DELETE_ARTIFACT` name the project's repository
 * (`repo_full_name`, the path on the primary) and, per resource, a tag and its digest; every
 * other type (pulls, scans, quota, replication) is ignored. Harbor puts the digest in `tag` for
 * an artifact pushed by digest: a `sha256:` there is a digest, never a tag.
 */
export function readHarbor(body: unknown, receivedAt: number): ReadNotifications {
  const payload = parsed(HarborPayload, body, 'a Harbor webhook payload');
  const read = empty();
  const action = HARBOR_ACTIONS[payload.type];
  if (!action) return { ...read, ignored: 1 };
  const data = parsed(HarborArtifactData, payload.event_data, `a Harbor ${payload.type} payload`);
  const at = payload.occur_at !== undefined && Number.isFinite(payload.occur_at) ? Math.min(payload.occur_at * 1000, receivedAt) : receivedAt;
  data.resources.forEach((resource, index) => {
    // No tag holds a colon: whatever has one is a digest (and invalid when it is not one).
    const byDigest = resource.tag?.includes(':') === true;
    const named = byDigest ? { tag: undefined, digest: resource.digest || resource.tag } : { tag: resource.tag, digest: resource.digest };
    addHint(read, index, action, data.repository.repo_full_name, named, at);
  });
  return read;
}

// --- Quay -----------------------------------------------------------------------------------

/**
 * Quay's "Repository Push" notification (Red Hat Quay, "Repository Notifications"): the
 * repository as `namespace/name`, `updated_tags` a list of tags (older Quay sent an object from
 * tag to image id). Quay sends no delete event: a tag removed there is caught by the reconcile.
 */
const QuayPush = z.object({
  repository: z.string(),
  updated_tags: z.union([z.array(z.string()).max(MAX_ITEMS), z.record(z.unknown())]),
});

export function readQuay(body: unknown, receivedAt: number): ReadNotifications {
  const push = parsed(QuayPush, body, 'a Quay repo_push notification');
  const tags = Array.isArray(push.updated_tags) ? push.updated_tags : Object.keys(push.updated_tags).slice(0, MAX_ITEMS);
  const read = empty();
  // Quay's payload carries no time of its own: the lag is measured from its arrival.
  tags.forEach((tag, index) => addHint(read, index, 'push', push.repository, { tag, digest: undefined }, receivedAt));
  return read;
}

// --- GitHub ---------------------------------------------------------------------------------

/**
 * GitHub's `package` and `registry_package` events ("Webhook events and payloads", GitHub Docs):
 * a published or updated package version. For a container, the repository on ghcr.io is
 * `<owner>/<package name>` (lower case), and `container_metadata.tag` names the tag and its
 * digest (an empty tag name: pushed by digest alone). GitHub sends no event for a deleted version.
 */
const GitHubPackage = z.object({
  name: z.string(),
  namespace: z.string().optional(),
  package_type: z.string().optional(),
  ecosystem: z.string().optional(),
  owner: z.object({ login: z.string() }).optional(),
  package_version: z
    .object({
      version: z.string().optional(),
      container_metadata: z.object({ tag: z.object({ name: z.string().optional(), digest: z.string().optional() }).optional() }).nullish(),
    })
    .optional(),
});

const GitHubEvent = z.object({ action: z.string(), package: GitHubPackage.optional(), registry_package: GitHubPackage.optional() });

/** The GitHub events that carry work; any other (`ping` when the hook is made, pushes, issues) is ignored. */
export const GITHUB_PACKAGE_EVENTS = new Set(['package', 'registry_package']);

export function readGitHub(event: string | undefined, body: unknown, receivedAt: number): ReadNotifications {
  const read = empty();
  if (event === undefined || !GITHUB_PACKAGE_EVENTS.has(event)) return { ...read, ignored: 1 };
  const payload = parsed(GitHubEvent, body, `a GitHub ${event} event`);
  const pkg = event === 'package' ? payload.package : payload.registry_package;
  if (!pkg) throw new InvalidEnvelope(`not a GitHub ${event} event: ${event} missing`);
  const type = (pkg.package_type ?? pkg.ecosystem ?? '').toLowerCase();
  if ((payload.action !== 'published' && payload.action !== 'updated') || type !== 'container') return { ...read, ignored: 1 };
  const owner = pkg.namespace ?? pkg.owner?.login;
  if (owner === undefined) return { ...read, invalid: [{ index: 0, action: 'push', reason: 'no owner or namespace' }] };
  const tag = pkg.package_version?.container_metadata?.tag;
  // A container version's `version` is its digest too, when the tag says none.
  const version = pkg.package_version?.version;
  const named = { tag: tag?.name, digest: tag?.digest || (version !== undefined && isValidDigest(version) ? version : undefined) };
  addHint(read, 0, 'push', `${owner}/${pkg.name}`.toLowerCase(), named, receivedAt);
  return read;
}

// --- Amazon ECR, through EventBridge -----------------------------------------------------------

/**
 * EventBridge's `ECR Image Action` event (Amazon ECR User Guide, "Amazon ECR events and
 * EventBridge"): `account` and `region` name the registry; `detail` the repository, the image's
 * digest, `action-type` PUSH or DELETE, and the tag (absent for an image pushed or deleted by
 * digest alone). Events are emitted on a best-effort basis: the reconcile catches what is lost.
 */
const EcrImageAction = z.object({
  source: z.literal('aws.ecr'),
  'detail-type': z.literal('ECR Image Action'),
  account: z.string(),
  region: z.string(),
  time: z.string().optional(),
  detail: z.object({
    result: z.string(),
    'repository-name': z.string(),
    'action-type': z.string(),
    'image-digest': z.string().optional(),
    'image-tag': z.string().optional(),
  }),
});

const ECR_ACTIONS: Record<string, 'push' | 'delete'> = { PUSH: 'push', DELETE: 'delete' };

/** Whether an invocation's event is EventBridge's ECR Image Action (and not a function URL request). */
export function isEcrImageAction(event: unknown): boolean {
  const fields = event as { source?: unknown; 'detail-type'?: unknown } | null;
  return typeof fields === 'object' && fields !== null && fields.source === 'aws.ecr' && fields['detail-type'] === 'ECR Image Action';
}

/** The ECR registry whose events carry work: the primary's account (registry id) and region, each where known. */
export interface EcrRegistryId {
  account?: string;
  region?: string;
}

/**
 * One ECR Image Action event as hints: a successful PUSH or DELETE of the primary's registry, as a
 * push or delete notification of that tag (or digest) would be. A failed action carries no work
 * (ignored); an event of another registry, or any event when the primary is not ECR (`primary`
 * undefined), is reported invalid: the rule sends only the primary's events, so one from elsewhere is
 * a misconfiguration to see, never work to do.
 */
export function readEcrImageAction(event: unknown, primary: EcrRegistryId | undefined, receivedAt: number): ReadNotifications {
  const payload = parsed(EcrImageAction, event, 'an ECR Image Action event');
  const read = empty();
  const action = ECR_ACTIONS[payload.detail['action-type']];
  if (payload.detail.result !== 'SUCCESS' || !action) return { ...read, ignored: 1 };
  const from = `registry ${payload.account} in ${payload.region}`;
  if (primary === undefined) return { ...read, invalid: [{ index: 0, action, reason: `an ECR event (${from}), but the primary is not an ECR registry` }] };
  const other = (primary.account !== undefined && payload.account !== primary.account) || (primary.region !== undefined && payload.region !== primary.region);
  if (other) {
    const expected = `${primary.account ?? 'any account'} in ${primary.region ?? 'any region'}`;
    return { ...read, invalid: [{ index: 0, action, reason: `an event of ${from}, not of the primary (${expected})` }] };
  }
  const time = payload.time === undefined ? NaN : Date.parse(payload.time);
  const at = Number.isFinite(time) ? Math.min(time, receivedAt) : receivedAt;
  addHint(read, 0, action, payload.detail['repository-name'], { tag: payload.detail['image-tag'], digest: payload.detail['image-digest'] }, at);
  return read;
}
