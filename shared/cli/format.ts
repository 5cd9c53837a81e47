import type { SyncReport, VerifyReport } from '../engine/index.js';

/** The held guard as the CLI says it: the engine's reason, and the option that raises the limit. */
export function guardLine(reason: string): string {
  return `  guard: ${reason}. Check the primary's tag listing, then raise the limit with --max-prune if this is intended`;
}

/** `app`, or `app -> dr/app` where the secondary's prefix places the copy elsewhere. */
const names = (report: { repository: string; secondaryRepository?: string }) =>
  report.secondaryRepository ? `${report.repository} -> ${report.secondaryRepository}` : report.repository;

const short = (digest: string | undefined) => (digest ? digest.replace(/^(sha\d+:)(.{12}).*$/, '$1$2') : '-');
const list = (tags: string[], max = 10) => (tags.length > max ? `${tags.slice(0, max).join(', ')}, … (+${tags.length - max})` : tags.join(', '));

export function formatPlan(report: SyncReport): string {
  const { plan } = report;
  const lines = [
    `${names(report)}: ${plan.copy.length} to copy, ${plan.repair.length} to repair, ${plan.remove.length} to remove (primary ${report.primaryTags} tags, secondary ${report.secondaryTags})`,
  ];
  for (const c of plan.copy) lines.push(`  copy    ${c.tag}  ${short(c.primary)}`);
  for (const c of plan.repair) lines.push(`  repair  ${c.tag}  ${short(c.secondary)} -> ${short(c.primary)}`);
  for (const c of plan.remove) lines.push(`  remove  ${c.tag}  ${short(c.secondary)}`);
  const r = report.referrers;
  if (r) {
    lines.push(
      `  referrers: ${r.plan.copy.length} to copy, ${r.plan.remove.length} to remove${r.secondary === 'tag-schema' ? `, ${r.plan.indexes.length} tag-schema index(es) to write (the secondary has no referrers API)` : ''}`,
    );
    for (const e of r.plan.copy) lines.push(`  copy    referrer ${short(e.digest)} of ${short(e.subject)}  ${e.artifactType}`);
    for (const e of r.plan.remove) lines.push(`  remove  referrer ${short(e.digest)} of ${short(e.subject)}  ${e.artifactType}`);
  }
  if (report.guard) lines.push(guardLine(report.guard.reason));
  lines.push(...removalRefused(report));
  for (const m of report.deep?.missing ?? []) lines.push(`  missing ${m.kind} ${short(m.digest)} (referenced by ${short(m.referencedBy)})`);
  return lines.join('\n');
}

export function formatSync(report: SyncReport): string {
  const { done } = report;
  const seconds = (report.durationMs / 1000).toFixed(1);
  const lines = [
    `${names(report)}: ${report.status} (copied ${done.copied.length}, repaired ${done.repaired.length}, removed ${done.removed.length}; ${formatBytes(report.bytesCopied)} in ${report.blobsCopied} blobs, ${report.blobsMounted} mounted; ${seconds} s)`,
  ];
  if (report.guard) lines.push(guardLine(report.guard.reason));
  lines.push(...removalRefused(report));
  for (const f of report.failed) lines.push(`  failed  ${f.tag}: ${f.error}`);
  for (const s of report.skipped) lines.push(`  skipped ${s.tag}: ${s.reason}`);
  if (report.deep) lines.push(`  deep: ${report.deep.missing.length} missing objects found and repaired`);
  const r = report.referrers?.done;
  if (r) {
    const indexes = report.referrers!.secondary === 'tag-schema' ? `, ${r.indexes.length} tag-schema index(es) written` : '';
    lines.push(`  referrers: copied ${r.copied.length}, removed ${r.removed.length}${indexes}`);
    for (const k of r.kept) lines.push(`  kept    referrer ${short(k.digest)} of ${short(k.subject)}: ${k.reason}`);
    for (const f of r.failed) lines.push(`  failed  referrer ${short(f.digest)} of ${short(f.subject)}: ${f.error}`);
  }
  if (report.status === 'incomplete') lines.push('  stopped at the deadline; run again to continue');
  return lines.join('\n');
}

function removalRefused(report: SyncReport): string[] {
  if (!report.removalRefused) return [];
  const { reason, tags } = report.removalRefused;
  return [`  not removed: ${tags.join(', ')}`, `    ${reason}; a sync removes them once the secondary accepts deletes`];
}

export function formatVerify(report: VerifyReport): string {
  const lines = [
    `${names(report)}: ${report.status}`,
    `  primary    ${report.primaryChecksum}  (${report.primaryTags} tags, ${report.checksum})`,
    `  secondary  ${report.secondaryChecksum}  (${report.secondaryTags} tags)`,
  ];
  // Checksums are comparable only under the same scope: its hash is shown with them.
  if (report.scope.tags !== 'every tag') lines.push(`  scope      ${report.scope.tags}  (scope ${report.scope.hash.slice(0, 12)})`);
  if (report.missing.length) lines.push(`  missing:    ${list(report.missing)}`);
  if (report.extra.length) lines.push(`  extra:      ${list(report.extra)}`);
  for (const m of report.mismatched.slice(0, 10)) lines.push(`  mismatched: ${m.tag}  primary ${short(m.primary)}, secondary ${short(m.secondary)}`);
  if (report.mismatched.length > 10) lines.push(`  mismatched: … (+${report.mismatched.length - 10})`);
  const r = report.referrers;
  if (r) {
    const where = r.secondary === 'tag-schema' ? ', read from the tag schema' : '';
    lines.push(`  referrers  primary ${r.primaryReferrers}, secondary ${r.secondaryReferrers}${where}`);
    for (const e of r.missing) lines.push(`  missing referrer:    ${e.digest} of ${short(e.subject)}  ${e.artifactType}`);
    for (const e of r.extra) lines.push(`  extra referrer:      ${e.digest} of ${short(e.subject)}  ${e.artifactType}`);
    for (const e of r.mismatched)
      lines.push(`  mismatched referrer: ${e.digest} of ${short(e.subject)}  primary ${e.artifactType}, secondary ${e.secondaryArtifactType}`);
  }
  for (const m of report.deep?.missing ?? []) lines.push(`  missing ${m.kind} ${m.digest} (referenced by ${short(m.referencedBy)})`);
  for (const f of report.deep?.failed ?? []) lines.push(`  deep check failed for ${short(f.digest)}: ${f.error}`);
  return lines.join('\n');
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** The bar of a progress line: `[####      ]`, 30 wide, full when total is 0. */
export function progressBar(done: number, total: number, width = 30): string {
  const filled = total === 0 ? width : Math.min(width, Math.round((done / total) * width));
  return `[${'#'.repeat(filled)}${' '.repeat(width - filled)}]`;
}

/** A sync's progress on a terminal, redrawn in place on stderr. */
export function syncProgress(stream: NodeJS.WriteStream): (p: { done: number; total: number; bytes: number }) => void {
  return ({ done, total, bytes }) => stream.write(`\r${progressBar(done, total)} ${done}/${total} tags, ${formatBytes(bytes)}${done === total ? '\n' : ''}`);
}
