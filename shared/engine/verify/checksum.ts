import { createHash } from 'node:crypto';
import { byteOrder, type TagMap } from '../sync/planner.js';
import type { ReferrerEdge } from '../referrers/index.js';

export const CHECKSUM_KINDS = ['full', 'canonical', 'gitlab'] as const;
export type ChecksumKind = (typeof CHECKSUM_KINDS)[number];

/**
 * The one checksum over what a client reads of a repository; verifyRepository reports it for each side.
 * full: SHA-256 hex over the canonical lines, then one line `referrer\t<subject>\t<digest>\t<artifactType>\n`
 *   per referrer in byte order of subject, then digest (an artifactType holding a tab or a newline
 *   is JSON-quoted). Tag lines have two fields, referrer lines four, so neither reads as the other;
 *   with no referrers it equals canonical.
 * canonical: SHA-256 hex over `tag\tdigest\n` lines in byte order of tags (unambiguous).
 * gitlab: SHA-256 hex over `tag+digest` concatenated in tag order, as GitLab Geo computes it.
 * Under a tag scope (`scopeHash`, the hash of its text) full starts with one line `scope\t<hash>\n`,
 * so that two full checksums under different scopes never read as equal; canonical and gitlab stay
 * the formulas others compute, and the report beside them names the scope.
 */
export function tagChecksum(tags: TagMap, kind: ChecksumKind = 'canonical', referrers: readonly ReferrerEdge[] = [], scopeHash?: string): string {
  const names = [...tags.keys()].sort(byteOrder);
  const hash = createHash('sha256');
  if (kind === 'full' && scopeHash !== undefined) hash.update(`scope\t${scopeHash}\n`);
  for (const name of names) hash.update(kind === 'gitlab' ? `${name}${tags.get(name)}` : `${name}\t${tags.get(name)}\n`);
  if (kind === 'full') {
    const edges = [...referrers].sort((a, b) => byteOrder(a.subject, b.subject) || byteOrder(a.digest, b.digest));
    for (const edge of edges)
      hash.update(`referrer\t${edge.subject}\t${edge.digest}\t${/[\t\n]/.test(edge.artifactType) ? JSON.stringify(edge.artifactType) : edge.artifactType}\n`);
  }
  return hash.digest('hex');
}
