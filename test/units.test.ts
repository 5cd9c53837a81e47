import { describe, expect, it } from 'vitest';
import { tagChecksum } from '../shared/engine/verify/checksum.js';
import { exitCodeFor } from '../shared/cli/exit-codes.js';
import { endpointsFor } from '../shared/cli/options.js';
import { STATUSES } from '../shared/engine/base/status.js';
import { GeoSyncError, OCI_ERROR_CODES, RegistryError, invalidInput } from '../shared/engine/base/errors.js';
import { manifestReferences, validateDigest, validateRepositoryName, validateTag, MediaType, type Repository } from '../shared/engine/base/oci.js';
import { planRepository, pruneGuard } from '../shared/engine/sync/planner.js';
import { parseChallenge } from '../shared/engine/registry/auth.js';
import { provenAbsent, type AbsenceQuestion } from '../shared/engine/registry/absence.js';
import { nextLink, parseRegistryError, parseRegistryErrors, registryErrorCode } from '../shared/engine/registry/responses.js';
import { parseRegistryUrl, parseRetryAfter } from '../shared/engine/registry/transport.js';
import { AdaptiveLimit } from '../shared/engine/registry/limit.js';
import { endpointsFromEnv } from '../shared/engine/config/config.js';
import { createHash } from 'node:crypto';

const D = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;
const tags = (entries: Record<string, string>) => new Map(Object.entries(entries));

describe('planRepository (pure)', () => {
  it('sorts copy, repair and remove in byte order of tag names', () => {
    const plan = planRepository(tags({ b: D(1), a: D(2), same: D(3), moved: D(4) }), tags({ same: D(3), moved: D(5), extra: D(6), Z: D(7) }));
    expect(plan).toEqual({
      copy: [
        { tag: 'a', primary: D(2) },
        { tag: 'b', primary: D(1) },
      ],
      repair: [{ tag: 'moved', primary: D(4), secondary: D(5) }],
      remove: [
        { tag: 'Z', secondary: D(7) },
        { tag: 'extra', secondary: D(6) },
      ],
    });
  });

  it('is empty when both sides hold the same pairs', () => {
    expect(planRepository(tags({ a: D(1) }), tags({ a: D(1) }))).toEqual({ copy: [], repair: [], remove: [] });
  });

  it.each([
    [1, 4, 0.5, false],
    [2, 4, 0.5, false],
    [3, 4, 0.5, true],
    [1, 1, 0.5, true],
    [1, 1, 1, false],
    [1, 10, 0, true],
  ])('guards removing %i of %i tags at max-prune %f: %s', (removals, total, max, held) => {
    const plan = { copy: [], repair: [], remove: Array.from({ length: removals }, (_, i) => ({ tag: `t${i}` })) };
    expect(pruneGuard(plan, total, max) !== undefined).toBe(held);
  });
});

describe('pruneGuard: removals measured against the tags both sides hold together', () => {
  const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  const side = (list: string[]) => new Map(list.map((tag) => [tag, D(1)]));
  const guard = (primary: string[], secondary: string[], max: number) => pruneGuard(planRepository(side(primary), side(secondary)), secondary.length, max);

  const cases: [string, string[], string[], number, boolean][] = [
    ['1 stray tag on the secondary, 5 others on the primary (1 of 6)', names('p', 5), ['stray'], 0.5, false],
    ['3 stray tags on the secondary, 5 others on the primary (3 of 8)', names('p', 5), names('x', 3), 0.5, false],
    ['the primary lists nothing, the secondary holds 10 (10 of 10)', [], names('t', 10), 0.5, true],
    ['the primary listing is truncated to 2 of the 100 the secondary holds (98 of 100)', names('t', 2), names('t', 100), 0.5, true],
    ['the primary listing is cut to 1 of 10, with 1 missing tag to copy (9 of 11)', ['t0', 'new'], names('t', 10), 0.5, true],
    ['half of an in-sync secondary (2 of 4): the boundary passes', names('t', 2), names('t', 4), 0.5, false],
    ['3 of 4 on the secondary', names('t', 1), names('t', 4), 0.5, true],
    ['3 extra beside 3 missing (3 of 6): the boundary passes', names('p', 3), names('x', 3), 0.5, false],
    ['3 extra beside 2 missing (3 of 5)', names('p', 2), names('x', 3), 0.5, true],
    ['1 kept, 1 missing, 3 extra (3 of 5)', ['kept', 'new'], ['kept', 'x1', 'x2', 'x3'], 0.5, true],
    ['max-prune 1 never holds, even over an empty primary', [], names('t', 10), 1, false],
    ['max-prune 0 holds any removal', names('p', 5), ['stray'], 0, true],
    ['max-prune 0 with nothing to remove', names('p', 5), [], 0, false],
    ['a higher limit lets 3 of 5 go', names('p', 2), names('x', 3), 0.6, false],
  ];
  for (const [name, primary, secondary, max, held] of cases) {
    it(`${name}, at max-prune ${max}: ${held ? 'holds' : 'does not hold'}`, () => {
      expect(guard(primary, secondary, max) !== undefined).toBe(held);
    });
  }

  it('says what it measured, naming no option of any door', () => {
    expect(guard(['kept', 'new'], ['kept', 'x1', 'x2', 'x3'], 0.5)).toBe(
      'would remove 3 of 4 tags on the secondary, more than the prune limit 0.5 of the 5 tags both sides hold together; removed none',
    );
    expect(guard([], names('t', 10), 0.5)).toMatch(
      /^would remove 10 of 10 tags on the secondary, more than the prune limit 0.5 of the 10 tags both sides hold together; removed none$/,
    );
  });
});

describe('exitCodeFor (the CLI door)', () => {
  it.each([
    ['invalid input', invalidInput('INVALID_TAG', 'bad tag'), 2],
    ['a held lock', new GeoSyncError('SYNC_IN_PROGRESS', 'another run holds the lock'), 1],
    ['an operational error', new GeoSyncError('REGISTRY_UNREACHABLE', 'down', { retryable: true }), 3],
    ['anything else', new Error('bug'), 3],
  ])('%s exits %i', (_name, error, code) => {
    expect(exitCodeFor(error)).toBe(code);
  });
});

describe('tagChecksum', () => {
  const map = tags({ b: D(2), a: D(1), B: D(3) });
  it('canonical: SHA-256 over tag<TAB>digest lines in byte order', () => {
    const expected = createHash('sha256')
      .update(`B\t${D(3)}\na\t${D(1)}\nb\t${D(2)}\n`)
      .digest('hex');
    expect(tagChecksum(map)).toBe(expected);
  });
  it('gitlab: SHA-256 over name+digest concatenated in name order', () => {
    const expected = createHash('sha256')
      .update(`B${D(3)}a${D(1)}b${D(2)}`)
      .digest('hex');
    expect(tagChecksum(map, 'gitlab')).toBe(expected);
  });
  it('canonical is unambiguous where concatenation is not', () => {
    const one = tags({ ab: 'c' });
    const two = tags({ a: 'bc' });
    expect(tagChecksum(one, 'gitlab')).toBe(tagChecksum(two, 'gitlab'));
    expect(tagChecksum(one)).not.toBe(tagChecksum(two));
  });
  it('of an empty repository is the hash of nothing', () => {
    expect(tagChecksum(new Map())).toBe(createHash('sha256').digest('hex'));
  });
});

describe('input validation names the problem', () => {
  it.each(['group/app', 'a', 'a/b/c/d', 'my_app.v2', 'a__b', 'a---b'])('accepts repository %s', (name) => {
    expect(validateRepositoryName(name)).toBe(name);
  });
  it.each(['', 'Upper', 'a//b', '/a', 'a/', '../x', 'a b', '-a', 'a_', 'a/.b', 'x'.repeat(256)])('rejects repository %j', (name) => {
    expect(() => validateRepositoryName(name)).toThrow(GeoSyncError);
  });
  it('makes the only Repository values: a plain string is refused by the compiler', () => {
    const checked: Repository = validateRepositoryName('group/app');
    // @ts-expect-error a name that has not been through the validator is not a Repository
    const unchecked: Repository = 'group/app';
    expect(checked).toBe(unchecked);
  });
  it.each(['latest', 'v1.2.3', '_x', 'A'.repeat(128)])('accepts tag %s', (tag) => expect(validateTag(tag)).toBe(tag));
  it.each(['', '.x', '-x', 'a/b', '../x', 'A'.repeat(129)])('rejects tag %j', (tag) => {
    expect(() => validateTag(tag)).toThrow(/invalid tag/);
  });
  it('rejects malformed digests', () => {
    expect(() => validateDigest('sha256:abc')).toThrow(/invalid digest/);
    expect(validateDigest(D(1))).toBe(D(1));
  });
  it('refuses URLs with credentials or other schemes', () => {
    expect(() => parseRegistryUrl('https://user:pw@example.com')).toThrow(/must not contain credentials/);
    expect(() => parseRegistryUrl('ftp://example.com')).toThrow(/https/);
    expect(parseRegistryUrl('registry.example.com:5000').href).toBe('https://registry.example.com:5000/');
  });
});

describe('manifestReferences', () => {
  const raw = (mediaType: string, body: unknown) => ({ digest: D(9), mediaType, bytes: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)) });
  it('reads config and layers of an image, children of an index', () => {
    const blob = { mediaType: 'x', digest: D(1), size: 1 };
    expect(manifestReferences(raw(MediaType.ociManifest, { schemaVersion: 2, config: blob, layers: [blob] })).blobs).toHaveLength(2);
    expect(manifestReferences(raw(MediaType.ociIndex, { schemaVersion: 2, manifests: [blob] })).children).toHaveLength(1);
  });
  it('refuses Docker schema 1 with a clear unsupported error', () => {
    expect(() => manifestReferences(raw(MediaType.dockerSchema1Signed, { schemaVersion: 1 }))).toThrow(/schema 1.*unsupported/);
  });
  it('refuses bytes that are not JSON, and malformed descriptors', () => {
    expect(() => manifestReferences(raw(MediaType.ociManifest, '{nope'))).toThrow(/not valid JSON/);
    expect(() => manifestReferences(raw(MediaType.ociManifest, { schemaVersion: 2, config: { digest: '../x' }, layers: [] }))).toThrow(/malformed descriptor/);
  });
});

describe('choosing the secondary (--secondary NAME or URL)', () => {
  const env = {
    GEO_SYNC_PRIMARY_URL: 'https://primary.example.com',
    GEO_SYNC_SECONDARY_USERNAME: 'single-user',
    GEO_SYNC_SECONDARIES: JSON.stringify([
      { name: 'eu', url: 'https://eu.example.com', username: 'eu-user', password: 'eu-pass' },
      { name: 'dr.example.com', url: 'https://other.example.com' },
    ]),
  };
  const chosen = (secondary?: string, from: Record<string, string> = env) =>
    endpointsFromEnv(from, { secondary }).secondaries.map(({ name, endpoint }) => ({ name, endpoint }));

  it('lists every configured secondary when none is chosen', () => {
    expect(chosen().map((s) => s.name)).toEqual(['eu', 'dr.example.com']);
  });
  it('takes a configured name with its URL and credentials, even one spelled like a host', () => {
    expect(chosen('eu')).toEqual([{ name: 'eu', endpoint: { url: 'https://eu.example.com', username: 'eu-user', password: 'eu-pass' } }]);
    expect(chosen('dr.example.com')).toEqual([{ name: 'dr.example.com', endpoint: { url: 'https://other.example.com' } }]);
  });
  it.each(['https://eu.example.com', 'registry.example.com', '127.0.0.1:5000', 'localhost', 'localhost:5000'])(
    'takes %s as a URL, with the GEO_SYNC_SECONDARY_* credentials',
    (url) => {
      expect(chosen(url)).toEqual([{ name: 'secondary', endpoint: { url, username: 'single-user' } }]);
    },
  );
  it('refuses a bare name that is not configured, naming the known ones (exit 2)', () => {
    expect(() => chosen('us')).toThrow(
      expect.objectContaining({
        code: 'UNKNOWN_SECONDARY',
        invalid: true,
        message: expect.stringMatching(/"us": GEO_SYNC_SECONDARIES names eu, dr\.example\.com/),
      }),
    );
    expect(() => chosen('us', { GEO_SYNC_PRIMARY_URL: 'https://p.example.com' })).toThrow(
      /"us": GEO_SYNC_SECONDARIES is not set; for a registry URL write https:\/\/us/,
    );
  });
});

describe('protocol header parsing', () => {
  it('parses bearer challenges with quoted and escaped values', () => {
    expect(parseChallenge('Bearer realm="https://auth.example.com/token",service="registry",scope="repository:a/b:pull,push"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.example.com/token', service: 'registry', scope: 'repository:a/b:pull,push' },
    });
    expect(parseChallenge('Basic realm="x \\"y\\""')?.params.realm).toBe('x "y"');
  });
  it('returns undefined for malformed challenges', () => {
    expect(parseChallenge('Bearer realm="unterminated')).toBeUndefined();
    expect(parseChallenge('')).toBeUndefined();
  });
  it('finds rel="next" in Link headers, relative or absolute', () => {
    expect(nextLink('</v2/a/tags/list?last=x&n=2>; rel="next"')).toBe('/v2/a/tags/list?last=x&n=2');
    expect(nextLink('<https://r/v2/_catalog?last=b>; rel="prev", <https://r/v2/_catalog?last=c>; rel="next"')).toBe('https://r/v2/_catalog?last=c');
    expect(nextLink(undefined)).toBeUndefined();
    expect(() => nextLink('garbage')).toThrow(/malformed Link/);
  });
  it('reads the first error of a registry error body, and nothing from any other body', () => {
    const body = (text: string) => Buffer.from(text);
    expect(parseRegistryError(body('{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]}'))).toEqual({
      code: 'NAME_UNKNOWN',
      message: 'repository name not known',
    });
    expect(registryErrorCode(body('{"errors":[{"code":"MANIFEST_UNKNOWN"},{"code":"OTHER"}]}'))).toBe('MANIFEST_UNKNOWN');
    for (const other of ['', '<html>404</html>', 'null', '{"errors":[]}', '{"errors":[{"code":7}]}']) expect(parseRegistryError(body(other))).toEqual({});
  });
  it('reads Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
  });
});

describe('AdaptiveLimit (requests in flight per registry)', () => {
  const settled = async (promise: Promise<unknown>) => {
    let done = false;
    void promise.then(() => (done = true));
    await new Promise((resolve) => setImmediate(resolve));
    return done;
  };

  it('admits up to the ceiling, then queues until a slot is released', async () => {
    const limit = new AdaptiveLimit(2);
    const a = await limit.acquire();
    await limit.acquire();
    const third = limit.acquire();
    expect(await settled(third)).toBe(false);
    limit.release(a, false);
    expect(await settled(third)).toBe(true);
  });

  it('halves once per burst of throttling answers, then climbs back by one per window, up to the ceiling', async () => {
    const limit = new AdaptiveLimit(8);
    const burst = await Promise.all(Array.from({ length: 8 }, () => limit.acquire()));
    for (const ticket of burst) limit.release(ticket, true);
    expect(limit.limit).toBe(4);
    const second = await limit.acquire();
    limit.release(second, true);
    expect(limit.limit).toBe(2);
    for (let i = 0; i < 2; i++) limit.release(await limit.acquire(), false);
    expect(limit.limit).toBe(3);
    for (let i = 0; i < 200; i++) limit.release(await limit.acquire(), false);
    expect(limit.limit).toBe(8);
  });

  it('never drops below one, and queued requests wait while over a lowered limit', async () => {
    const limit = new AdaptiveLimit(4);
    const tickets = await Promise.all(Array.from({ length: 4 }, () => limit.acquire()));
    const queued = limit.acquire();
    limit.release(tickets[0]!, true); // limit 2, still 3 in flight
    expect(await settled(queued)).toBe(false);
    limit.release(tickets[1]!, false);
    expect(await settled(queued)).toBe(false);
    limit.release(tickets[2]!, false);
    expect(await settled(queued)).toBe(true);
    limit.release(tickets[3]!, false);
    limit.release(await queued, false);
    for (let i = 0; i < 5; i++) {
      const t = await limit.acquire();
      limit.release(t, true);
    }
    expect(limit.limit).toBe(1);
  });
});

describe('planRepository with digests left unread', () => {
  it('plans a copy for a tag only the primary has, whose digest was not read', () => {
    const plan = planRepository(
      new Map([
        ['new', undefined],
        ['same', 'sha256:' + 'a'.repeat(64)],
      ]),
      new Map([['same', 'sha256:' + 'a'.repeat(64)]]),
    );
    expect(plan).toEqual({ copy: [{ tag: 'new' }], repair: [], remove: [] });
  });
  it('refuses to plan a tag both sides have without the primary digest', () => {
    expect(() => planRepository(new Map([['both', undefined]]), new Map([['both', 'sha256:' + 'b'.repeat(64)]]))).toThrow(/not read/);
  });
});

describe('the one vocabulary of statuses', () => {
  it('names every status a report, a record or geo-sync status can show, once', () => {
    expect(STATUSES).toEqual([
      'synced',
      'differences',
      'failed',
      'incomplete',
      'guard-held',
      'deletes-refused',
      'tags-refused',
      'mismatch',
      'unverified',
      'pending',
      'started',
    ]);
    expect(new Set(STATUSES).size).toBe(STATUSES.length);
  });
});

describe('the engine names no option of a door', () => {
  it('a missing registry names its environment variable only; the CLI adds its option', () => {
    expect(() => endpointsFromEnv({})).toThrow(/^no primary registry: set GEO_SYNC_PRIMARY_URL$/);
    expect(() => endpointsFor({}, {})).toThrow(/^no primary registry: pass --primary <url> or set GEO_SYNC_PRIMARY_URL$/);
    expect(() => endpointsFor({}, { primary: 'https://p.example' })).toThrow(/^no secondary registry: pass --secondary <url> or set GEO_SYNC_SECONDARY_URL$/);
  });
});

describe('proven absent: one rule, asked three questions', () => {
  const answer = (status: number, codes: string[]) => ({
    status,
    body: Buffer.from(codes.length ? JSON.stringify({ errors: codes.map((code) => ({ code })) }) : ''),
  });
  const questions: AbsenceQuestion[] = ['repository', 'manifest', 'tag list'];
  it.each([
    { what: 'NAME_UNKNOWN', status: 404, codes: ['NAME_UNKNOWN'], proves: [true, true, true] },
    // Registry 2.8 answers MANIFEST_UNKNOWN for a tag of a repository it does not have.
    { what: 'MANIFEST_UNKNOWN', status: 404, codes: ['MANIFEST_UNKNOWN'], proves: [false, true, true] },
    { what: "another registry's own code", status: 404, codes: ['NOT_FOUND'], proves: [false, false, true] },
    { what: 'a 404 without a registry error (a proxy, a HEAD)', status: 404, codes: [], proves: [false, false, false] },
    { what: 'any other status', status: 400, codes: ['NAME_UNKNOWN'], proves: [false, false, false] },
  ])('$what', ({ status, codes, proves }) => {
    expect(questions.map((question) => provenAbsent(answer(status, codes), question))).toEqual(proves);
  });
});

describe('RegistryError keeps every diagnostic', () => {
  it('reads every error of the body, with its message and detail', () => {
    const body = Buffer.from(
      JSON.stringify({ errors: [{ code: 'DENIED', message: 'no', detail: { scope: 'x' } }, { code: 7 }, { code: 'TOOMANYREQUESTS', message: 'slow down' }] }),
    );
    expect(parseRegistryErrors(body)).toEqual([
      { code: 'DENIED', message: 'no', detail: { scope: 'x' } },
      { code: 'TOOMANYREQUESTS', message: 'slow down' },
    ]);
  });
  it('has the first code as its code, and answers for any of them', () => {
    const error = new RegistryError({
      message: 'PUT https://r.example/v2/a/manifests/v1: HTTP 400 MANIFEST_BLOB_UNKNOWN: blob unknown',
      status: 400,
      diagnostics: [{ code: 'MANIFEST_BLOB_UNKNOWN', message: 'blob unknown' }, { code: 'TAG_INVALID' }],
      retryable: false,
      method: 'PUT',
      path: '/v2/a/manifests/v1',
      registry: 'https://r.example',
    });
    expect(error).toMatchObject({
      code: 'REGISTRY_MANIFEST_BLOB_UNKNOWN',
      registryCode: 'MANIFEST_BLOB_UNKNOWN',
      status: 400,
      method: 'PUT',
      registry: 'https://r.example',
    });
    expect(error.has('TAG_INVALID')).toBe(true);
    expect(error.has('DENIED')).toBe(false);
    expect(OCI_ERROR_CODES).toContain('MANIFEST_UNKNOWN');
  });
});
