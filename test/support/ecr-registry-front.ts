// The ECR stand-in's registry API: a proxy in front of go-containerregistry's registry that answers
// as ECR's registry API does where the two differ (ECR's docs and the OCI distribution spec):
// - Basic auth only as AWS:<password> with a password GetAuthorizationToken issued and not expired;
//   anything else 401 with a Basic challenge;
// - `GET /v2/_catalog` and every DELETE 405 UNSUPPORTED (ECR lists and deletes through its own API);
// - any request naming a repository not created 404 NAME_UNKNOWN (ECR creates none on push);
// - a tag list or referrers list of a created repository that holds nothing yet: empty, not 404;
// - a chunk PATCH answered 202 (go-containerregistry 0.14 answers 204);
// - a manifest PUT that would move a tag ECR keeps immutable 400 TAG_INVALID.
// Everything else passes through unchanged, bodies streamed.
import { createHash } from 'node:crypto';
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import { forward } from './loopback.js';
import { performance } from 'node:perf_hooks';
import { tagIsImmutable, type EcrState } from './ecr-state.js';

export interface RegistryRequest {
  method: string;
  path: string;
  status: number;
  /** performance.now() on arrival. */
  at: number;
}

export interface FrontOptions {
  /** The status an expired token is answered with (see EcrStandInOptions.expiredTokenStatus). */
  expiredTokenStatus: 401 | 403;
}

type Answer = (status: number, code: string, message: string, headers?: Record<string, string>) => void;

const REPOSITORY_PATH = /^\/v2\/(.+?)\/(manifests|blobs|tags|referrers)\/(.*)$/;

/** The request handler of the registry front; every request is appended to `log`. */
export function registryFront(state: EcrState, log: RegistryRequest[], options: FrontOptions) {
  const backing = new URL(state.backingUrl);
  return (req: IncomingMessage, res: ServerResponse): void => {
    const entry: RegistryRequest = { method: req.method ?? 'GET', path: req.url ?? '/', status: 0, at: performance.now() };
    log.push(entry);
    const answer: Answer = (status, code, message, headers = {}) => {
      req.resume();
      entry.status = status;
      res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify({ errors: [{ code, message }] }));
    };
    const onStatus = (status: number) => (entry.status = status);

    if (state.expireAt?.(entry.method, entry.path)) {
      state.expireAt = undefined;
      for (const password of state.tokens.keys()) state.tokens.set(password, 0);
    }
    const auth = tokenStatus(state, req.headers.authorization);
    if (auth !== 'valid') return refuse(state, answer, auth === 'expired' ? options.expiredTokenStatus : 401);

    const pathname = new URL(entry.path, 'http://front').pathname;
    if (pathname === '/v2/_catalog') return answer(405, 'UNSUPPORTED', 'The operation is unsupported.');
    if (entry.method === 'DELETE') return answer(405, 'UNSUPPORTED', 'The operation is unsupported.');
    const match = REPOSITORY_PATH.exec(pathname);
    if (!match) return forward(req, res, backing, onStatus);

    const [, repo = '', kind, reference = ''] = match;
    const record = state.repositories.get(repo);
    if (!record) {
      return answer(404, 'NAME_UNKNOWN', `The repository with name '${repo}' does not exist in the registry with id '${state.registryId}'`);
    }
    if (kind === 'manifests' && entry.method === 'PUT')
      return void putManifest(state, req, res, { repo, reference, settings: record.settings, answer, onStatus });
    if (entry.method === 'GET' && (kind === 'tags' || kind === 'referrers')) {
      return forwardAsEcr(req, res, backing, onStatus, kind === 'tags' ? { name: repo, tags: [] } : EMPTY_INDEX);
    }
    if (entry.method === 'PATCH') return forwardAsEcr(req, res, backing, onStatus); // 202 as the spec says, not 204
    forward(req, res, backing, onStatus);
  };
}

const EMPTY_INDEX = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] };

function refuse(state: EcrState, answer: Answer, status: number): void {
  const challenge = { 'www-authenticate': `Basic realm="${state.registryUrl}/",service="ecr.amazonaws.com"` };
  if (status === 403) answer(403, 'DENIED', 'Your authorization token has expired. Reauthenticate and try again.');
  else answer(401, 'DENIED', 'Not Authorized', challenge);
}

/** 'valid' for Basic AWS:<password issued and current>; 'expired' for one issued whose time is up. */
export function tokenStatus(state: EcrState, header: string | undefined): 'valid' | 'expired' | 'unknown' {
  const basic = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!basic?.[1]) return 'unknown';
  const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0 || decoded.slice(0, colon) !== 'AWS') return 'unknown';
  const expiresAt = state.tokens.get(decoded.slice(colon + 1));
  if (expiresAt === undefined) return 'unknown';
  return Date.now() < expiresAt ? 'valid' : 'expired';
}

interface ManifestPut {
  repo: string;
  reference: string;
  settings: Record<string, unknown>;
  answer: Answer;
  onStatus: (status: number) => void;
}

/**
 * A manifest PUT, read whole (manifests are small) so its digest is known before it is stored:
 * refused with TAG_INVALID where it would move an immutable tag; remembered once stored, so the
 * ECR API lists it even when no tag points at it.
 */
async function putManifest(state: EcrState, req: IncomingMessage, res: ServerResponse, put: ManifestPut): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  const byTag = !put.reference.startsWith('sha256:');
  if (byTag && tagIsImmutable(put.settings, put.reference)) {
    const current = await currentDigest(state.backingUrl, put.repo, put.reference);
    if (current !== undefined && current !== digest) {
      return put.answer(
        400,
        'TAG_INVALID',
        `The image tag '${put.reference}' already exists in the '${put.repo}' repository and cannot be overwritten because the repository is immutable.`,
      );
    }
  }
  const backing = new URL(state.backingUrl);
  const headers = { ...req.headers, 'content-length': String(body.length) };
  const upstream = request({ host: backing.hostname, port: backing.port, method: 'PUT', path: req.url, headers }, (answer) => {
    const status = answer.statusCode ?? 502;
    put.onStatus(status);
    if (status === 201) rememberPush(state, put.repo, digest, req.headers['content-type'] ?? '');
    res.writeHead(status, answer.headers);
    answer.pipe(res);
  });
  upstream.on('error', () => res.socket?.destroy());
  upstream.end(body);
}

function rememberPush(state: EcrState, repo: string, digest: string, mediaType: string): void {
  let images = state.pushed.get(repo);
  if (!images) state.pushed.set(repo, (images = new Map()));
  if (!images.has(digest)) images.set(digest, { pushedAt: new Date(), mediaType });
}

/** The digest `tag` points at in the backing registry, or undefined where it points nowhere. */
export async function currentDigest(backingUrl: string, repo: string, tag: string): Promise<string | undefined> {
  const res = await fetch(`${backingUrl}/v2/${repo}/manifests/${encodeURIComponent(tag)}`, { method: 'HEAD', headers: { accept: '*/*' } });
  await res.arrayBuffer();
  return res.status === 200 ? (res.headers.get('docker-content-digest') ?? undefined) : undefined;
}

/**
 * Proxies a request where go-containerregistry 0.14 answers otherwise than ECR: with `empty`, a 404
 * (it knows no repository without manifests) becomes 200 with that body; a chunk PATCH's 204
 * becomes the spec's 202.
 */
function forwardAsEcr(req: IncomingMessage, res: ServerResponse, target: URL, onStatus: (status: number) => void, empty?: object): void {
  const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
    if (answer.statusCode === 404 && empty) {
      answer.resume();
      onStatus(200);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(empty));
      return;
    }
    const status = answer.statusCode === 204 && req.method === 'PATCH' ? 202 : (answer.statusCode ?? 502);
    onStatus(status);
    res.writeHead(status, answer.headers);
    answer.pipe(res);
  });
  upstream.on('error', () => res.socket?.destroy());
  req.pipe(upstream);
}
