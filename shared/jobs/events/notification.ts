/**
 * The body of a registry notification (CNCF distribution's `notifications.endpoints`), read as
 * hints: which tag of which repository may have changed. Pure; the request around it (token,
 * headers, size) is the webhook door's, `webhook.ts`. An event never says what a tag holds: the job
 * reads the configured primary, and never the event's `url`, which is not even kept.
 */
import { z } from 'zod';
import { isValidDigest, validateRepositoryName, validateTag } from '../../engine/index.js';

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

/** An event left out, and why, for the log (no field of the event beyond these is echoed). */
export interface SkippedEvent {
  index: number;
  action: string;
  reason: string;
}

export interface ReadNotifications {
  hints: TagHint[];
  /** Events that carry no work by design: pulls, mounts, blobs, digest-only deletes, unknown actions. */
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

/** Actions that can change a tag. Pulls (our own reads raise them) and mounts never do. */
const TAG_ACTIONS = new Set(['push', 'delete']);

export class InvalidEnvelope extends Error {}

/**
 * The tag hints in one notification body (already parsed JSON). A push or delete naming a tag is
 * a hint for that tag; a digest-only delete is not (registry 2.8 follows it with one tag delete
 * per tag it removed); pulls, mounts, blob events and unknown actions are ignored; an event with
 * an invalid repository or tag is reported in `invalid` and the rest are still read. Throws
 * InvalidEnvelope when the body is not `{"events": [...]}`.
 */
export function readNotifications(body: unknown, receivedAt: number): ReadNotifications {
  const envelope = Envelope.safeParse(body);
  if (!envelope.success)
    throw new InvalidEnvelope(`not a notification envelope: ${envelope.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`);
  const result: ReadNotifications = { hints: [], ignored: 0, invalid: [] };
  envelope.data.events.forEach((raw, index) => {
    const action = typeof (raw as { action?: unknown } | null)?.action === 'string' ? String((raw as { action: string }).action).slice(0, 32) : '?';
    if (!TAG_ACTIONS.has(action)) return void result.ignored++;
    const event = Event.safeParse(raw);
    if (!event.success)
      return void result.invalid.push({ index, action, reason: `malformed event: ${event.error.issues.map((i) => i.path.join('.')).join(', ')}` });
    const { target } = event.data;
    const isBlob = target.mediaType !== undefined && target.mediaType !== '' && !MANIFEST_MEDIA_TYPES.has(target.mediaType);
    if (isBlob || target.tag === undefined || target.tag === '') return void result.ignored++;
    try {
      validateRepositoryName(target.repository);
      validateTag(target.tag);
    } catch (error) {
      return void result.invalid.push({ index, action, reason: (error as Error).message });
    }
    const pushed = event.data.action === 'push' && target.digest !== undefined && isValidDigest(target.digest) ? { pushed: target.digest } : {};
    result.hints.push({ repository: target.repository, tag: target.tag, at: eventTime(event.data.timestamp, receivedAt), ...pushed });
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
