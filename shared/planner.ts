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

/** The prune guard: removing more than `maxFraction` of the secondary's tags needs a human. */
export function pruneGuard(plan: Plan, secondaryTagCount: number, maxFraction: number): string | undefined {
  if (plan.remove.length === 0) return undefined;
  if (plan.remove.length <= maxFraction * secondaryTagCount) return undefined;
  return `would remove ${plan.remove.length} of ${secondaryTagCount} tags on the secondary (more than --max-prune ${maxFraction}); removed none. Check the primary, then rerun with a higher --max-prune if this is intended`;
}

export function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
