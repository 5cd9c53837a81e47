/** Tag -> manifest digest, as read from one registry. */
export type TagMap = ReadonlyMap<string, string>;

/**
 * The primary's tags for a sync: a digest may be left unread (undefined) for a tag the secondary
 * lacks, since copying it fetches the manifest, and so its digest, anyway.
 */
export type PrimaryTagMap = ReadonlyMap<string, string | undefined>;

export interface TagChange {
  tag: string;
  /** The primary's digest (copy, repair). */
  primary?: string;
  /** The secondary's digest (repair, remove). */
  secondary?: string;
}

/** What it takes to make the secondary hold exactly the primary's (tag, digest) pairs. */
export interface Plan {
  /** Tags only on the primary. */
  copy: TagChange[];
  /** Tags on both, at another digest on the secondary. */
  repair: TagChange[];
  /** Tags only on the secondary. */
  remove: TagChange[];
}

/** Pure: the difference between two tag maps, each list in byte order of tag names. */
export function planRepository(primary: PrimaryTagMap, secondary: TagMap): Plan {
  const plan: Plan = { copy: [], repair: [], remove: [] };
  for (const [tag, digest] of primary) {
    const current = secondary.get(tag);
    if (current === undefined) plan.copy.push(digest === undefined ? { tag } : { tag, primary: digest });
    else if (digest === undefined) throw new Error(`planner: the primary's digest of ${tag} was not read, yet the secondary has the tag`);
    else if (current !== digest) plan.repair.push({ tag, primary: digest, secondary: current });
  }
  for (const [tag, digest] of secondary) {
    if (!primary.has(tag)) plan.remove.push({ tag, secondary: digest });
  }
  for (const list of [plan.copy, plan.repair, plan.remove]) list.sort((a, b) => byteOrder(a.tag, b.tag));
  return plan;
}

export function isEmptyPlan(plan: Plan): boolean {
  return plan.copy.length === 0 && plan.repair.length === 0 && plan.remove.length === 0;
}

/** The prune limit when none is given. */
export const DEFAULT_MAX_PRUNE = 0.5;

/**
 * The prune guard. Removals are measured against the tags both sides hold together (the
 * secondary's tags plus those only the primary has): a run that would remove more than
 * `maxFraction` of those removes none. A primary listing that comes back empty or truncated
 * would remove most of them, and holds; a secondary with a few stray tags beside a primary with
 * many does not (1 stray tag beside 5 on the primary is 1 of 6). When the secondary already
 * holds every tag of the primary, this is a fraction of the secondary's tags. At 1 the guard
 * never holds; at 0 any removal holds it. The reason names no option: each door says how to
 * raise the limit its own way.
 */
export function pruneGuard(plan: Plan, secondaryTagCount: number, maxFraction: number): string | undefined {
  return pruneGuardOver({ removals: plan.remove.length, onSecondary: secondaryTagCount, copies: plan.copy.length, what: 'tags' }, maxFraction);
}

/**
 * The prune guard over any objects removed like tags (tags, and tags with referrers): `removals`
 * of the `onSecondary` held there, beside `copies` only the primary has.
 */
export function pruneGuardOver(count: { removals: number; onSecondary: number; copies: number; what: string }, maxFraction: number): string | undefined {
  const { removals, onSecondary, copies, what } = count;
  if (removals === 0) return undefined;
  // Those only on the primary are the copies: with the secondary's own, every one on either side.
  const together = onSecondary + copies;
  if (removals <= maxFraction * together) return undefined;
  return `would remove ${removals} of ${onSecondary} ${what} on the secondary, more than the prune limit ${maxFraction} of the ${together} ${what} both sides hold together; removed none`;
}

export function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
