/**
 * What one secondary replicates: the primary's repositories it keeps (globs), the tags it keeps
 * of each (regular expressions), and the prefix its copies live under. Everything outside is
 * never read, copied, repaired or removed there. Absent parts mean everything and no prefix.
 */
import { createHash } from 'node:crypto';
import { invalidInput } from '../base/errors.js';
import { validateRepositoryName } from '../base/oci.js';

/** A scope as configured (GEO_SYNC_SECONDARIES, --config): every part optional. */
export interface ScopeConfig {
  repositories?: { include?: string[]; exclude?: string[] };
  tags?: { include?: string[]; exclude?: string[] };
  prefix?: string;
}

/** The tags kept of each repository; its text and hash go with every checksum computed under it. */
export interface TagScope {
  has(tag: string): boolean;
  /** Whether every tag is kept (no tag patterns). */
  readonly all: boolean;
  /** The tag patterns in words, as verify and status show them. */
  readonly text: string;
  /** SHA-256 hex of `text`: two checksums are comparable only under the same hash. */
  readonly hash: string;
}

export interface Scope {
  hasRepository(repository: string): boolean;
  readonly tags: TagScope;
  /** Put before each primary repository name on this secondary; '' for none. */
  readonly prefix: string;
  /** Whether every repository is kept (no repository patterns). */
  readonly allRepositories: boolean;
  /** The whole scope in words, for logs and status. */
  readonly text: string;
}

export const EVERY_TAG: TagScope = tagScope(undefined, 'tags');
export const EVERYTHING: Scope = compileScope({}, 'scope');

/**
 * Compiles a configured scope; `where` names the entry (`GEO_SYNC_SECONDARIES[1] (dr)`) in every
 * error, with the field at fault. Shapes are checked by the caller's schema; patterns here.
 */
export function compileScope(config: ScopeConfig, where: string): Scope {
  const include = patternList(config.repositories?.include, `${where}: repositories.include`, globToRegExp);
  const exclude = patternList(config.repositories?.exclude, `${where}: repositories.exclude`, globToRegExp) ?? [];
  const prefix = config.prefix === undefined ? '' : checkedPrefix(config.prefix, `${where}: prefix`);
  const tags = tagScope(config.tags, `${where}: tags`);
  const allRepositories = include === undefined && exclude.length === 0;
  const parts = [
    allRepositories ? 'every repository' : `repositories ${patternText(config.repositories?.include, config.repositories?.exclude)}`,
    tags.text,
    ...(prefix ? [`under ${prefix}`] : []),
  ];
  return {
    hasRepository: (repository) => (include === undefined || include.some((p) => p.test(repository))) && !exclude.some((p) => p.test(repository)),
    tags,
    prefix,
    allRepositories,
    text: parts.join('; '),
  };
}

function tagScope(config: ScopeConfig['tags'], where: string): TagScope {
  const include = patternList(config?.include, `${where}.include`, tagRegExp);
  const exclude = patternList(config?.exclude, `${where}.exclude`, tagRegExp) ?? [];
  const all = include === undefined && exclude.length === 0;
  const text = all ? 'every tag' : `tags ${patternText(config?.include, config?.exclude)}`;
  return {
    has: (tag) => (include === undefined || include.some((p) => p.test(tag))) && !exclude.some((p) => p.test(tag)),
    all,
    text,
    hash: createHash('sha256').update(text).digest('hex'),
  };
}

/** `include […] exclude […]`, each pattern JSON-quoted so that no two lists read alike. */
function patternText(include: string[] | undefined, exclude: string[] | undefined): string {
  const list = (patterns: string[]) => patterns.map((p) => JSON.stringify(p)).join(' ');
  return [include ? `include ${list(include)}` : 'include all', ...(exclude?.length ? [`exclude ${list(exclude)}`] : [])].join(' ');
}

function patternList(patterns: string[] | undefined, where: string, compile: (pattern: string, where: string) => RegExp): RegExp[] | undefined {
  if (patterns === undefined) return undefined;
  // An empty include would keep nothing: almost surely a mistake, and never a match-all.
  if (patterns.length === 0 && where.endsWith('.include')) throw invalidInput('INVALID_CONFIG', `${where} is empty: leave it out to keep everything`);
  return patterns.map((pattern, index) => compile(pattern, `${where}[${index}]`));
}

/** A tag pattern is a regular expression the user anchors (`^v1\.` is not `v1\.`). */
function tagRegExp(pattern: string, where: string): RegExp {
  if (pattern === '') throw invalidInput('INVALID_CONFIG', `${where} is empty`);
  try {
    return new RegExp(pattern, 'u');
  } catch (error) {
    throw invalidInput('INVALID_CONFIG', `${where} is not a valid regular expression ${JSON.stringify(pattern)}: ${(error as Error).message}`);
  }
}

/**
 * A repository glob: `*` within one path segment, `**` across segments (`prod/**` is everything
 * under prod/, `**\/app` every app at any depth). Only name characters and `*` are allowed, so a
 * character meant for another glob dialect (`?`, `[`, `{`) is an error, not a silent literal.
 */
function globToRegExp(pattern: string, where: string): RegExp {
  if (!/^[a-z0-9._/*-]+$/.test(pattern)) {
    throw invalidInput('INVALID_CONFIG', `${where} ${JSON.stringify(pattern)}: a repository glob holds lowercase letters, digits, . _ - / and * or ** only`);
  }
  if (/\*{3,}/.test(pattern)) throw invalidInput('INVALID_CONFIG', `${where} ${JSON.stringify(pattern)}: use * (one segment) or ** (any segments), not ***`);
  let source = '';
  for (let i = 0; i < pattern.length;) {
    if (pattern.startsWith('**/', i)) {
      source += '(?:.*/)?';
      i += 3;
    } else if (pattern.startsWith('/**', i) && i + 3 === pattern.length) {
      source += '/.+';
      i += 3;
    } else if (pattern.startsWith('**', i)) {
      source += '.*';
      i += 2;
    } else if (pattern[i] === '*') {
      source += '[^/]*';
      i += 1;
    } else {
      source += pattern[i]!.replace(/[.]/g, '\\.');
      i += 1;
    }
  }
  return new RegExp(`^${source}$`);
}

/** `dr/` or `dr/eu/`: path segments a repository name may hold, ending with `/`. */
function checkedPrefix(prefix: string, where: string): string {
  if (!prefix.endsWith('/'))
    throw invalidInput('INVALID_CONFIG', `${where} ${JSON.stringify(prefix)} must end with "/" (as "dr/"), so that it is a path of its own`);
  try {
    validateRepositoryName(`${prefix}x`);
  } catch (error) {
    throw invalidInput('INVALID_CONFIG', `${where} ${JSON.stringify(prefix)} is not a repository path: ${(error as Error).message}`);
  }
  return prefix;
}
