/** Referrers, planned: the pure difference of both sides' graphs, and what a run did with it. */
import type { Referrer } from '../registry/registry.js';
import type { ReferrerEdge, ReferrerGraph, ReferrerStore } from './graph.js';

/** An edge with the referrer's descriptor as its side lists it. */
export type PlannedEdge = ReferrerEdge & { referrer: Referrer };

/** What makes the secondary's referrers the primary's. */
export interface ReferrerPlan {
  /** Referrers the secondary lacks, level by level: a subject's referrers before theirs. */
  copy: PlannedEdge[][];
  /** Referrers only on the secondary, none of which a tag points at. */
  remove: PlannedEdge[];
  /** Extra referrers left because a tag on the secondary points at them (a tag's removal is the tag plan's). */
  tagged: PlannedEdge[];
  /** The same referrer with another artifactType on each side. */
  mismatched: (ReferrerEdge & { secondaryArtifactType: string })[];
  /** On a tag-schema secondary: subjects whose index must be written, with what it must list. */
  indexes: { subject: string; referrers: Referrer[] }[];
  /** Referrers the secondary holds (distinct digests read): what the prune guard measures removals against. */
  onSecondary: number;
}

/** Pure: the difference of two graphs read over the same roots. */
export function planReferrers(primary: ReferrerGraph, secondary: ReferrerGraph, store: ReferrerStore, taggedOnSecondary: ReadonlySet<string>): ReferrerPlan {
  const held = new Set([...secondary.values()].flatMap((referrers) => referrers.map((r) => r.digest)));
  const plan: ReferrerPlan = { copy: [], remove: [], tagged: [], mismatched: [], indexes: [], onSecondary: held.size };
  const depthOf = new Map<string, number>();
  for (const [subject, referrers] of primary) {
    const depth = depthOf.get(subject) ?? 0;
    const onSecondary = new Map((secondary.get(subject) ?? []).map((r) => [r.digest, r]));
    for (const referrer of referrers) {
      depthOf.set(referrer.digest, Math.min(depthOf.get(referrer.digest) ?? Infinity, depth + 1));
      const there = onSecondary.get(referrer.digest);
      const edge = { subject, digest: referrer.digest, artifactType: referrer.artifactType };
      if (!there) (plan.copy[depth] ??= []).push({ ...edge, referrer });
      else if (there.artifactType !== referrer.artifactType) plan.mismatched.push({ ...edge, secondaryArtifactType: there.artifactType });
    }
    if (store === 'tag-schema' && !sameReferrers(referrers, secondary.get(subject) ?? [])) plan.indexes.push({ subject, referrers });
  }
  const wanted = new Set([...primary.values()].flatMap((referrers) => referrers.map((r) => r.digest)));
  for (const [subject, referrers] of secondary) {
    for (const r of referrers) {
      if (wanted.has(r.digest)) continue;
      const edge = { subject, digest: r.digest, artifactType: r.artifactType, referrer: r };
      (taggedOnSecondary.has(r.digest) ? plan.tagged : plan.remove).push(edge);
    }
    if (store === 'tag-schema' && !primary.has(subject) && referrers.length > 0) plan.indexes.push({ subject, referrers: [] });
  }
  plan.copy = plan.copy.filter((level) => level !== undefined);
  plan.remove = dedupe(plan.remove);
  return plan;
}

function sameReferrers(a: readonly Referrer[], b: readonly Referrer[]): boolean {
  const key = (list: readonly Referrer[]) =>
    list
      .map((r) => `${r.digest} ${r.artifactType}`)
      .sort()
      .join('\n');
  return key(a) === key(b);
}

function dedupe(edges: PlannedEdge[]): PlannedEdge[] {
  const seen = new Set<string>();
  return edges.filter((edge) => !seen.has(edge.digest) && (seen.add(edge.digest), true));
}

/** The referrers part of a run, where the primary serves the API. */
export interface ReferrersDone {
  /** Where the secondary keeps them: its own API, or the tag schema (index tags this run keeps). */
  secondary: 'api' | 'tag-schema';
  plan: { copy: ReferrerEdge[]; remove: ReferrerEdge[]; mismatched: ReferrerPlan['mismatched']; indexes: string[] };
  done: ReferrerOutcome;
}

/** What applying a referrer plan did. */
export interface ReferrerOutcome {
  copied: ReferrerEdge[];
  removed: ReferrerEdge[];
  /** Tag-schema indexes written (their subjects). */
  indexes: string[];
  /** Extra referrers kept: the primary still holds them, a tag points at them, or the secondary refuses deletes. */
  kept: (ReferrerEdge & { reason: string })[];
  failed: (ReferrerEdge & { error: string })[];
}

export function emptyReferrerOutcome(): ReferrerOutcome {
  return { copied: [], removed: [], indexes: [], kept: [], failed: [] };
}
