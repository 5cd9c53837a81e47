import type { OciErrorCode } from '../base/errors.js';
import { parseRegistryErrors } from './responses.js';

/**
 * What a 404 is asked to prove absent:
 * - `repository`: the repository. Only NAME_UNKNOWN proves it: registry 2.8 answers
 *   MANIFEST_UNKNOWN for a tag of a repository it does not have, so an answer about a manifest
 *   never proves its repository absent; and a router's plain 404 (distribution 2.8 and 3.0 on the
 *   referrers path it does not serve) is not about the repository at all.
 * - `manifest`: a manifest (by tag or digest). MANIFEST_UNKNOWN proves it, and NAME_UNKNOWN too:
 *   a repository that does not exist holds no manifest.
 * - `tag list`: the repository, asked through its whole tag listing: the listing is about nothing
 *   else, so any error of the registry's own proves it, whatever the registry calls it.
 */
export type AbsenceQuestion = 'repository' | 'manifest' | 'tag list';

const PROVING: Record<Exclude<AbsenceQuestion, 'tag list'>, readonly OciErrorCode[]> = {
  repository: ['NAME_UNKNOWN'],
  manifest: ['MANIFEST_UNKNOWN', 'NAME_UNKNOWN'],
};

/**
 * The one rule for "proven absent": a 404 carrying the registry's own error that answers the
 * question asked. Anything else proves nothing: a 404 without a registry error body (a proxy's
 * page, a wrong path, a HEAD, which has no body) nor any other status. What proves nothing the
 * caller reads its own way: an error, "no API", "cannot delete by tag".
 */
export function provenAbsent(answer: { status: number; body: Buffer }, question: AbsenceQuestion): boolean {
  if (answer.status !== 404) return false;
  const codes = parseRegistryErrors(answer.body).map((d) => d.code);
  if (question === 'tag list') return codes.length > 0;
  const proving = PROVING[question] as readonly string[];
  return codes.length > 0 && proving.includes(codes[0]!);
}
