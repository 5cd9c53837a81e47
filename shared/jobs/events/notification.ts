/**
 * The body of a registry notification (CNCF distribution's `notifications.endpoints`), read as
 * hints: which tag, or which manifest pushed or deleted by digest, of which repository may have
 * changed. Pure; the request around it (token, headers, size) is the webhook door's, `webhook.ts`.
 * An event never says what a tag or a digest holds: the job reads the configured primary, and
 * never the event's `url`, which is not even kept.
 */
import { z } from 'zod';
import { describeZodIssues, isValidDigest, validateRepositoryName, validateTag, zodIssuePaths } from '../../engine/index.js';

/** The envelope's content type as registry 2.8 sends it. */
export const NOTIFICATION_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v1+json';
/** More events than this in one envelope is not a registry talking (2.8 sends one per request). */
const MAX_EVENTS = 10_000;

/** A tag that may have changed, and when the registry says it did (epoch ms). */
export interface TagHint {
  repository: string;
  tag: string;
  at: number;
  /**
   * For a push, the digest the event announces. Never copied: registry 2.8 sends the event before
   * it moves the tag, so the job looks again until the primary shows it (or gives up and trusts the primary).
   */
  pushed?: string;
}

/**
 * A manifest pushed or deleted by digest, with no tag: how cosign, notation and oras push a
 * referrer (a signature, an SBOM, an attestation) where the registry serves the referrers API.
 * Like a tag hint it says only where to look: the job makes the digest as the primary holds it now.
 */
export interface DigestHint {
  repository: string;
  digest: string;
  action: 'push' | 'delete';
  at: number;
}

/** An event left out, and why, for the log (no field of the event beyond these is echoed). */
export interface SkippedEvent {
  index: number;
  action: string;
  reason: string;
}

export interface ReadNotifications {
  hints: TagHint[];
  /** Manifests pushed or deleted by digest alone. */
  digests: DigestHint[];
  /** Events that carry no work by design: pulls, mounts, blobs, unknown actions. */
  ignored: number;
  /** Events that should carry work but could not be read: invalid names, malformed targets. */
  invalid: SkippedEvent[];
}

const Envelope = z.object({ events: z.array(z.unknown()).max(MAX_EVENTS) });

const Event = z.object({
  action: z.string(),
  timestamp: z.string().optional(),
  target: z.object({
    mediaType: z.string().optional(),
    repository: z.string(),
    tag: z.string().optional(),
    digest: z.string().optional(),
  }),
});

/** Media types of manifests: an event about anything else (a layer, a config) is about a blob. */
const MANIFEST_MEDIA_TYPES = new Set([
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
  'application/json',
]);

/** Actions that can change a tag or a manifest. Pulls (our own reads raise them) and mounts never do. */
const TAG_ACTIONS = new Set(['push', 'delete']);

/** The hints a server hands on: where to look, for tags and for digests. */
export type EventHints = Pick<ReadNotifications, 'hints' | 'digests'>;

export class InvalidEnvelope extends Error {}

/**
 * The hints in one notification body (already parsed JSON). A push or delete naming a tag is a
 * hint for that tag (a digest it carries is at most the push's `pushed`); a manifest push or delete
 * naming only a digest is a digest hint (registry 2.8 follows a digest delete with one tag delete
 * per tag it removed, which stay tag hints); pulls, mounts, blob events and unknown actions are
 * ignored; an event with an invalid repository, tag or digest is reported in `invalid` and the
 * rest are still read. Throws InvalidEnvelope when the body is not `{"events": [...]}`.
 */
export function readNotifications(body: unknown, receivedAt: number): ReadNotifications {
  const envelope = Envelope.safeParse(body);
  if (!envelope.success) throw new InvalidEnvelope(`not a notification envelope: ${describeZodIssues(envelope.error, 'body')}`);
  const result: ReadNotifications = { hints: [], digests: [], ignored: 0, invalid: [] };
  envelope.data.events.forEach((raw, index) => {
    const action = typeof (raw as { action?: unknown } | null)?.action === 'string' ? String((raw as { action: string }).action).slice(0, 32) : '?';
    if (!TAG_ACTIONS.has(action)) return void result.ignored++;
    const event = Event.safeParse(raw);
    if (!event.success) return void result.invalid.push({ index, action, reason: `malformed event: ${zodIssuePaths(event.error)}` });
    const { target } = event.data;
    const mediaType = target.mediaType === '' ? undefined : target.mediaType;
    if (mediaType !== undefined && !MANIFEST_MEDIA_TYPES.has(mediaType)) return void result.ignored++;
    const tag = target.tag === '' ? undefined : target.tag;
    // By digest alone, registry 2.8 sends a manifest's delete without a media type (a blob's delete
    // looks the same, and its job finds no manifest there); a push without one is a blob's.
    if (tag === undefined && mediaType === undefined && action === 'push') return void result.ignored++;
    try {
      validateRepositoryName(target.repository);
      if (tag !== undefined) validateTag(tag);
      else if (target.digest === undefined || !isValidDigest(target.digest))
        throw new Error(target.digest === undefined ? 'no tag and no digest' : 'invalid digest');
    } catch (error) {
      return void result.invalid.push({ index, action, reason: (error as Error).message });
    }
    const at = eventTime(event.data.timestamp, receivedAt);
    if (tag === undefined)
      return void result.digests.push({ repository: target.repository, digest: target.digest!, action: action as DigestHint['action'], at });
    const pushed = action === 'push' && target.digest !== undefined && isValidDigest(target.digest) ? { pushed: target.digest } : {};
    result.hints.push({ repository: target.repository, tag, at, ...pushed });
  });
  return result;
}

/**
 * The registry's time for the event (RFC 3339, nanoseconds allowed), or when we received it if
 * absent or not a date. Never later than `receivedAt`: a registry clock ahead of ours does not
 * make a negative lag.
 */
function eventTime(timestamp: string | undefined, receivedAt: number): number {
  const parsed = timestamp === undefined ? NaN : Date.parse(timestamp);
  return Number.isFinite(parsed) ? Math.min(parsed, receivedAt) : receivedAt;
}
