// AWS CloudFormation Guard with the AWS Control Tower proactive-control rules, both shipped by the
// npm package @cdklabs/cdk-validator-cfnguard: the binary for this machine, a run over one
// template, its JSON output reduced to one entry per failing rule, and the suppressions check.
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const PACKAGE_DIR = dirname(dirname(createRequire(import.meta.url).resolve('@cdklabs/cdk-validator-cfnguard')));
export const CONTROL_TOWER_RULES = join(PACKAGE_DIR, 'rules', 'control-tower', 'cfn-guard');

/** The packaged binary for this platform and architecture (the same choice the package makes). */
export function cfnGuardBinary(platform: string = process.platform, arch: string = process.arch): string {
  const os = { linux: 'ubuntu', darwin: 'macos' }[platform];
  const cpu = { x64: 'x86_64', arm64: 'aarch64' }[arch];
  if (!os || !cpu) throw new Error(`@cdklabs/cdk-validator-cfnguard ships cfn-guard for linux and macOS on x64 and arm64, not ${platform}/${arch}`);
  return join(PACKAGE_DIR, 'bin', os, cpu, 'cfn-guard');
}

/** Every rule name the Control Tower rule files define (`rule <name> when ...`). */
export function controlTowerRuleNames(dir: string = CONTROL_TOWER_RULES): Set<string> {
  const names = new Set<string>();
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.guard')) continue;
    for (const [, name] of readFileSync(join(entry.parentPath ?? (entry as { path?: string }).path ?? dir, entry.name), 'utf8').matchAll(
      /^rule\s+(\w+)\s+when\b/gm,
    ))
      names.add(name!);
  }
  return names;
}

export interface RuleFailure {
  rule: string;
  /** The control's identifier, e.g. CT.SQS.PR.2, when the rule's message gives one. */
  control?: string;
  description?: string;
  fix?: string;
  /** Logical id of each failing resource, with why it fails (cfn-guard's messages, shortened). */
  resources: Record<string, string[]>;
}

export interface GuardReport {
  failing: RuleFailure[];
  /** Rules that passed on at least one resource and failed on none. */
  passing: string[];
  /** Rules that found nothing to check in the template. */
  notApplicable: string[];
}

/** Runs `cfn-guard validate` over one template with the given rules (a file or a folder). */
export async function runCfnGuard(template: string, rules: string = CONTROL_TOWER_RULES, binary: string = cfnGuardBinary()): Promise<GuardReport> {
  const args = ['validate', '--rules', rules, '--data', template, '--output-format', 'json', '--show-summary', 'none', '--structured'];
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = execFile(binary, args, { maxBuffer: 256 * 1024 * 1024, timeout: 120_000 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') reject(new Error(`${binary} could not run: ${error.message}\n${stderr}`));
      else resolve({ code: child.exitCode, stdout, stderr });
    });
  });
  // 0: every rule passed or was skipped; 19 (and 5 in some versions): some rule failed. Anything else is an error.
  if (code !== 0 && code !== 5 && code !== 19) throw new Error(`cfn-guard exited with ${code}: ${stderr || stdout}`);
  return parseGuardOutput(stdout, template);
}

/**
 * Reduces cfn-guard's `--output-format json --structured` output for one data file. Its schema
 * is not fixed: a non-compliant rule may come wrapped as {Rule: ...} or {Clause: ...} with nested
 * checks of varying shape, so this reads only what is stable: the rule's `name`, every `path`
 * under /Resources/<logical id>/, every `custom_message` (the control's "[CT.X.PR.n]: ..." and
 * "[FIX]: ..." lines) and every `error_message` (why a resource failed).
 */
export function parseGuardOutput(stdout: string, template?: string): GuardReport {
  const trimmed = stdout.trim();
  let reports: unknown;
  try {
    reports = trimmed === '' ? [] : JSON.parse(trimmed);
  } catch {
    throw new Error(`cfn-guard printed no JSON: ${trimmed.slice(0, 500)}`);
  }
  const list = (Array.isArray(reports) ? reports : [reports]) as Record<string, unknown>[];
  const report = template === undefined ? list[0] : (list.find((r) => r?.name === template) ?? (list.length === 1 ? list[0] : undefined));
  if (!report) throw new Error(`cfn-guard reported nothing for ${template ?? 'the template'}`);

  const byRule = new Map<string, RuleFailure>();
  for (const entry of asArray(report.not_compliant)) {
    const body = unwrap(entry);
    const rule = typeof body?.name === 'string' ? body.name : undefined;
    if (!rule) throw new Error(`cfn-guard reported a failing rule without a name: ${JSON.stringify(entry).slice(0, 500)}`);
    const failure = byRule.get(rule) ?? { rule, resources: {} };
    byRule.set(rule, failure);
    collect(body, failure, undefined);
  }
  const failing = [...byRule.values()].sort((a, b) => a.rule.localeCompare(b.rule));
  const failed = new Set(byRule.keys());
  const passing = [...new Set(asArray(report.compliant).filter((n): n is string => typeof n === 'string' && !failed.has(n)))].sort();
  const notApplicable = [
    ...new Set(asArray(report.not_applicable).filter((n): n is string => typeof n === 'string' && !failed.has(n) && !passing.includes(n))),
  ].sort();
  return { failing, passing, notApplicable };
}

/** An object that is one key around the real body ({Rule: {...}}, {Clause: {...}}) is unwrapped. */
function unwrap(value: unknown): Record<string, unknown> | undefined {
  let current = value;
  while (current && typeof current === 'object' && !Array.isArray(current) && !('name' in current)) {
    const values = Object.values(current);
    if (values.length !== 1) break;
    current = values[0];
  }
  return current && typeof current === 'object' ? (current as Record<string, unknown>) : undefined;
}

const asArray = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

function collect(node: unknown, failure: RuleFailure, resource: string | undefined): void {
  if (Array.isArray(node)) {
    for (const item of node) collect(item, failure, resource);
    return;
  }
  if (!node || typeof node !== 'object') return;
  const object = node as Record<string, unknown>;
  // The resource a subtree is about: the first /Resources/<id>/ path found directly in it, or its parent's.
  const here = resourceOf(object) ?? resource;
  if (here && !failure.resources[here]) failure.resources[here] = [];
  const messages = object.messages as { custom_message?: unknown; error_message?: unknown } | undefined;
  if (messages && typeof messages === 'object') {
    if (typeof messages.custom_message === 'string') readCustomMessage(messages.custom_message, failure);
    if (typeof messages.error_message === 'string' && here) {
      const why = shorten(messages.error_message);
      const reasons = failure.resources[here]!;
      if (why && !reasons.includes(why)) reasons.push(why);
    }
  }
  for (const [key, value] of Object.entries(object)) if (key !== 'messages') collect(value, failure, here);
}

function resourceOf(object: Record<string, unknown>): string | undefined {
  const paths: string[] = [];
  const look = (value: unknown, depth: number) => {
    if (depth > 6 || !value || typeof value !== 'object') return;
    for (const [key, inner] of Object.entries(value)) {
      if (key === 'path' && typeof inner === 'string') paths.push(inner);
      else if (key !== 'checks' && key !== 'messages') look(inner, depth + 1);
    }
  };
  look(object, 0);
  for (const path of paths) {
    const match = /^\/Resources\/([^/[]+)/.exec(path);
    if (match) return match[1];
  }
  return undefined;
}

function readCustomMessage(message: string, failure: RuleFailure): void {
  for (const raw of message.split('\n')) {
    const line = raw.trim();
    const fix = /^\[FIX\]:?\s*(.*)$/.exec(line);
    const control = /^\[(CT\.[^\]]+)\]:?\s*(.*)$/.exec(line);
    if (fix) failure.fix ??= fix[1];
    else if (control) {
      failure.control ??= control[1];
      failure.description ??= control[2];
    }
  }
}

/** cfn-guard's messages embed line/column marks and whole property values: keep the sentence. */
function shorten(message: string): string {
  return message
    .replace(/\[L:\d+,C:\d+\]/g, '')
    .replace(/\s*Value traversed to \[.*$/s, '')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 240);
}

export interface Suppression {
  rule: string;
  control?: string;
  /** When given, only these logical ids may fail the rule; others still fail the check. */
  resources?: string[];
  reason: string;
}

export interface SuppressionCheck {
  /** Failing rules (or resources) that no suppression covers. */
  unsuppressed: RuleFailure[];
  /** Suppressions (or suppressed resources) that no longer fail: remove them from the list. */
  stale: string[];
}

export function checkSuppressions(failing: RuleFailure[], suppressions: Suppression[]): SuppressionCheck {
  const unsuppressed: RuleFailure[] = [];
  const stale: string[] = [];
  const byRule = new Map(failing.map((f) => [f.rule, f]));
  for (const failure of failing) {
    const suppression = suppressions.find((s) => s.rule === failure.rule);
    if (!suppression) {
      unsuppressed.push(failure);
      continue;
    }
    if (!suppression.resources) continue;
    const others = Object.entries(failure.resources).filter(([id]) => !suppression.resources!.includes(id));
    if (others.length > 0) unsuppressed.push({ ...failure, resources: Object.fromEntries(others) });
  }
  for (const suppression of suppressions) {
    const failure = byRule.get(suppression.rule);
    if (!failure) stale.push(`${suppression.rule}: suppressed, but it no longer fails`);
    else
      for (const id of suppression.resources ?? [])
        if (!(id in failure.resources)) stale.push(`${suppression.rule}: suppressed for ${id}, which no longer fails it`);
  }
  return { unsuppressed, stale };
}

/** One readable block per failing rule: the rule, the control, each resource with why, and the fix. */
export function formatFailure(failure: RuleFailure): string {
  const lines = [`${failure.rule}${failure.control ? ` [${failure.control}]` : ''}${failure.description ? `: ${failure.description}` : ''}`];
  for (const [id, reasons] of Object.entries(failure.resources)) {
    const shown = reasons.slice(0, 3).join(' | ') || 'fails';
    lines.push(`  ${id}: ${shown}${reasons.length > 3 ? ` (and ${reasons.length - 3} more)` : ''}`);
  }
  if (failure.fix) lines.push(`  fix: ${failure.fix}`);
  return lines.join('\n');
}
