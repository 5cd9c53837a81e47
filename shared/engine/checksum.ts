import { createHash } from 'node:crypto';
import { byteOrder, type TagMap } from './planner.js';

export type ChecksumKind = 'canonical' | 'gitlab';

/**
 * The one checksum over a repository's (tag, digest) pairs; verifyRepository reports it for each side.
 * canonical: SHA-256 hex over `tag\tdigest\n` lines in byte order of tags (unambiguous).
 * gitlab: SHA-256 hex over `tag+digest` concatenated in tag order, as GitLab Geo computes it.
 */
export function tagChecksum(tags: TagMap, kind: ChecksumKind = 'canonical'): string {
  const names = [...tags.keys()].sort(byteOrder);
  const hash = createHash('sha256');
  for (const name of names) hash.update(kind === 'canonical' ? `${name}\t${tags.get(name)}\n` : `${name}${tags.get(name)}`);
  return hash.digest('hex');
}
