// The docs as a newcomer walks them: README.md and docs/*.md. Every relative link reaches a file
// (and, with `#anchor`, a heading of it, by GitHub's slug rules); every `npm run X` is a script of
// package.json; every `geo-sync <command>` and each of its `--options` written in code is one the
// CLI has (read from its --help); every GEO_SYNC_* variable named is one the code reads; every
// repository path written in code exists; performance.md's tables are what bench/results.json gives.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DOCS = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
];

interface Doc {
  path: string;
  /** The text outside fenced code blocks, inline code removed. */
  prose: string;
  /** Each fenced block's text and every inline code span. */
  code: string[];
  headings: string[];
}

function readDoc(path: string): Doc {
  const lines = readFileSync(join(ROOT, path), 'utf8').split('\n');
  const prose: string[] = [];
  const code: string[] = [];
  const headings: string[] = [];
  let fence: string[] | undefined;
  for (const line of lines) {
    if (/^\s*```/.test(line)) {
      if (fence) code.push(fence.join('\n'));
      fence = fence ? undefined : [];
    } else if (fence) {
      fence.push(line);
    } else {
      const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
      if (heading) headings.push(heading[1]!);
      for (const span of line.matchAll(/`([^`]+)`/g)) code.push(span[1]!);
      prose.push(line.replace(/`[^`]*`/g, ''));
    }
  }
  return { path, prose: prose.join('\n'), code, headings };
}

/** GitHub's anchor for a heading: its rendered text, lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  const text = heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/`/g, '');
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor of a document, repeated headings numbered as GitHub numbers them (`-1`, `-2`). */
function anchors(doc: Doc): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const heading of doc.headings) {
    const base = slug(heading);
    const count = seen.get(base) ?? 0;
    result.add(count === 0 ? base : `${base}-${count}`);
    seen.set(base, count + 1);
  }
  return result;
}

const docs = new Map(DOCS.map((path) => [path, readDoc(path)]));

function brokenLinks(doc: Doc): string[] {
  const broken: string[] = [];
  for (const match of doc.prose.matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = match[1]!;
    if (/^[a-z]+:/i.test(target)) continue;
    const [file, anchor] = target.split('#') as [string, string | undefined];
    const path = file === '' ? doc.path : relative(ROOT, join(ROOT, dirname(doc.path), file));
    if (!existsSync(join(ROOT, path))) {
      broken.push(`${doc.path}: ${target} (no file ${path})`);
      continue;
    }
    if (anchor === undefined) continue;
    const linked = docs.get(path) ?? (path.endsWith('.md') ? readDoc(path) : undefined);
    if (!linked || !anchors(linked).has(anchor)) broken.push(`${doc.path}: ${target} (no heading #${anchor} in ${path})`);
  }
  return broken;
}

/** The CLI's commands, each with its options, read from the built binary's --help. */
function cliCommands(): Map<string, Set<string>> {
  const help = (args: string[]) => execFileSync(process.execPath, [join(ROOT, 'dist', 'cli.mjs'), ...args, '--help'], { encoding: 'utf8' });
  const commandsPart = help([]).split(/^Commands:$/m)[1] ?? '';
  const names = [...commandsPart.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]!).filter((name) => name !== 'help');
  return new Map(names.map((name) => [name, new Set([...help([name]).matchAll(/--[a-z][a-z0-9-]*/g)].map((m) => m[0]))]));
}

/** `geo-sync <command> …` as written in code: the command and the options on its line. */
function commandUses(text: string): { command: string; options: string[]; line: string }[] {
  const uses = [];
  for (const raw of text.replace(/\\\n/g, ' ').split('\n')) {
    for (const match of raw.matchAll(/(?:^|[\s$;|&(/])(?:npx[ \t]+)?geo-sync(?:\.mjs)?[ \t]+([a-z][a-z-]*)(.*)$/g)) {
      const rest = match[2]!.split(/ (?:&&|\|\|?) /)[0]!;
      uses.push({ command: match[1]!, options: [...rest.matchAll(/(?:^|[\s[])(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]!), line: raw.trim() });
    }
  }
  return uses;
}

/** The GEO_SYNC_* variables the code reads: written whole, or built from a role or a secret's name. */
function variablesRead(): Set<string> {
  const sources = ['shared', 'functions'].flatMap((dir) => listFiles(join(ROOT, dir))).filter((path) => path.endsWith('.ts'));
  const read = new Set<string>();
  for (const path of sources) {
    const text = readFileSync(path, 'utf8');
    for (const match of text.matchAll(/GEO_SYNC_[A-Z0-9_]*[A-Z0-9]/g)) read.add(match[0]);
    for (const match of text.matchAll(/`GEO_SYNC_\$\{role(?:\.toUpperCase\(\))?\}_([A-Z_]+)`/g)) {
      for (const role of ['PRIMARY', 'SECONDARY']) read.add(`GEO_SYNC_${role}_${match[1]!}`);
    }
    // optionalSecret(env, NAME, …) in shared/cli/listen.ts reads NAME or NAME_FILE.
    for (const match of text.matchAll(/optionalSecret\(env, '(GEO_SYNC_[A-Z0-9_]+)'/g)) read.add(`${match[1]!}_FILE`);
  }
  return read;
}

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? listFiles(path) : [path];
  });
}

describe('docs', () => {
  it('README.md stays a front page of about 200 lines at most', () => {
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n').length).toBeLessThanOrEqual(210);
  });

  it('every relative link reaches a file, and every #anchor a heading of it', () => {
    expect([...docs.values()].flatMap(brokenLinks)).toEqual([]);
  });

  it('every `npm run X` is a script of package.json', () => {
    const scripts = Object.keys((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts);
    const named = [...docs.values()].flatMap((doc) =>
      [...readFileSync(join(ROOT, doc.path), 'utf8').matchAll(/npm run ([A-Za-z0-9:_-]+)/g)].map((m) => ({ doc: doc.path, script: m[1]! })),
    );
    expect(named.length).toBeGreaterThan(0);
    expect(named.filter(({ script }) => !scripts.includes(script))).toEqual([]);
  });

  it('every `geo-sync <command>` written in code, and each of its options, is one the CLI has', () => {
    const cli = cliCommands();
    expect([...cli.keys()].sort()).toEqual(['listen', 'plan', 'ready', 'run', 'status', 'sync', 'verify']);
    const uses = [...docs.values()].flatMap((doc) => doc.code.flatMap((code) => commandUses(code).map((use) => ({ doc: doc.path, ...use }))));
    const unknown = uses.flatMap(({ doc, command, options, line }) => {
      const known = cli.get(command);
      if (!known) return [`${doc}: no command ${command} (${line})`];
      return options.filter((option) => !known.has(option)).map((option) => `${doc}: geo-sync ${command} has no ${option} (${line})`);
    });
    expect(unknown).toEqual([]);
    expect(new Set(uses.map((use) => use.command))).toEqual(new Set(cli.keys()));
  });

  it('every GEO_SYNC_* variable named is one the code reads', () => {
    const read = variablesRead();
    const named = new Set(
      [...docs.values()].flatMap((doc) => [...readFileSync(join(ROOT, doc.path), 'utf8').matchAll(/GEO_SYNC_[A-Z0-9_]*[A-Z0-9]/g)].map((m) => m[0])),
    );
    expect(named.size).toBeGreaterThan(10);
    expect([...named].filter((name) => !read.has(name))).toEqual([]);
  });

  it('every path of this repository written in code exists', () => {
    const paths = [...docs.values()].flatMap((doc) =>
      doc.code.filter((code) => /^(shared|functions|test|bench|scripts|bin)\/[\w./-]+$/.test(code)).map((path) => ({ doc: doc.path, path })),
    );
    expect(paths.length).toBeGreaterThan(20);
    expect(paths.filter(({ path }) => !existsSync(join(ROOT, path)))).toEqual([]);
  });

  it("performance.md's tables are the ones bench/results.json gives", () => {
    const check = spawnSync(process.execPath, [join(ROOT, 'scripts', 'performance-doc.mjs'), '--check'], { encoding: 'utf8' });
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
  });
});
