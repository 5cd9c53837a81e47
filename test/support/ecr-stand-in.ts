// Stands in for Amazon ECR, which cannot run here. Built from AWS's ECR API reference and the OCI
// distribution spec, and checked against the real @aws-sdk/client-ecr (test/ecr-stand-in.test.ts).
// Two endpoints:
// - the ECR API (./ecr-operations.ts): AWS JSON 1.1 over POST `/` (`X-Amz-Target:
//   AmazonEC2ContainerRegistry_V20150921.<Operation>`), errors as HTTP 400 (500 for ServerException)
//   with `{"__type", "message"}`; requests must be SigV4-signed for this region and service `ecr`,
//   the signature itself is not checked;
// - the registry API (./ecr-registry-front.ts): a front on go-containerregistry's registry
//   (./referrers-registry.ts) with ECR's auth, NAME_UNKNOWN, 405 and TAG_INVALID answers.
// IAM is modelled only as far as requireAccessKey goes: a registry in another account, served only to
// callers signing with one role's credentials (from ./sts-stand-in.ts).
// Not modelled: IAM policies (any signed caller may do anything otherwise), lifecycle and repository policies,
// replication, scanning results, pull-through caches, ImageReferencedByManifestList, per-repository
// blob isolation (go-containerregistry keeps blobs in one pool), request quotas (only failNext), and
// what real ECR's BatchGetImage does with the index types (the indexTypes option picks one answer).
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { serveOnLoopback } from './loopback.js';
import { startReferrersRegistry } from './referrers-registry.js';
import { operations, type Input } from './ecr-operations.js';
import { registryFront, type RegistryRequest } from './ecr-registry-front.js';
import { signingAccessKeyId } from './sts-stand-in.js';
import { EcrError, type EcrState, type ExclusionFilter, type IndexTypes, type TagMutability } from './ecr-state.js';

export type { IndexTypes } from './ecr-state.js';

export { REFERRERS_REGISTRY_START_TIMEOUT_MS as ECR_STAND_IN_START_TIMEOUT_MS } from './referrers-registry.js';

export interface EcrStandInOptions {
  registryId?: string;
  region?: string;
  /** Registry tokens' lifetime, default 12 h. */
  tokenTtlMs?: number;
  /** The most items one page returns when the caller gives no maxResults (ECR: 100). */
  pageSize?: number;
  /**
   * The registry API's answer to a token past its time: 401 (default) or 403 DENIED "Your
   * authorization token has expired", as ECR has been seen to answer it.
   */
  expiredTokenStatus?: 401 | 403;
  /** What BatchGetImage does with the index types (see IndexTypes); default 'served'. */
  indexTypes?: IndexTypes;
}

export interface EcrStandIn {
  /** ECR API endpoint: set AWS_ENDPOINT_URL_ECR to it (with AWS_REGION and dummy AWS credentials). */
  apiUrl: string;
  /** The registry API (OCI distribution); Basic auth as GetAuthorizationToken's token decodes: AWS:<password>. */
  registryUrl: string;
  registryHost: string;
  registryId: string;
  region: string;
  /** The registry behind the front, without auth or ECR's rules: for reading the real state in tests. */
  backingRegistryUrl: string;
  /** Every ECR API call received, in order: the operation name, its JSON input, the access key id that signed it, performance.now() on arrival. */
  apiCalls: { operation: string; input: Record<string, unknown>; accessKeyId: string | undefined; at: number }[];
  /** Every registry API request received: method, path (with query), status answered. */
  registryRequests: RegistryRequest[];
  /** Seeds a repository directly (as CreateRepository would), for tests. */
  createRepository(name: string, settings?: { imageTagMutability?: TagMutability; imageTagMutabilityExclusionFilters?: ExclusionFilter[] }): void;
  /** The settings a repository was created with (CreateRepository's input as stored), or undefined. */
  repository(name: string): Record<string, unknown> | undefined;
  /** Every token issued so far is refused from now on, as after its expiresAt. */
  expireTokens(): void;
  /** Every token issued so far expires as the first registry request `matches` takes arrives: that request is refused, whatever the timing. */
  expireTokensAt(matches: (method: string, path: string) => boolean): void;
  /** The next n API calls of `operation` fail with this error type (e.g. 'AccessDeniedException'). */
  failNext(operation: string, errorType: string, n?: number): void;
  /** From now on BatchGetImage treats the index types so (see IndexTypes). */
  serveIndexTypes(mode: IndexTypes): void;
  /** From now on only calls signed with this access key id are served (others: AccessDeniedException), as for a registry in another account. */
  requireAccessKey(accessKeyId: string): void;
  stop(): Promise<void>;
}

const TARGET_PREFIX = 'AmazonEC2ContainerRegistry_V20150921.';
const JSON_1_1 = 'application/x-amz-json-1.1';
/** Error types AWS answers with a 5xx; the SDK retries those (and throttling) by itself. */
const SERVER_ERRORS: Record<string, number> = { ServerException: 500, InternalFailure: 500, ServiceUnavailable: 503 };

export async function startEcrStandIn(options: EcrStandInOptions = {}): Promise<EcrStandIn> {
  const backing = await startReferrersRegistry();
  const state: EcrState = {
    registryId: options.registryId ?? '123456789012',
    region: options.region ?? 'us-east-1',
    registryUrl: '',
    registryHost: '',
    backingUrl: backing.url,
    pageSize: options.pageSize ?? 100,
    tokenTtlMs: options.tokenTtlMs ?? 12 * 60 * 60 * 1000,
    indexTypes: options.indexTypes ?? 'served',
    repositories: new Map(),
    tokens: new Map(),
    pushed: new Map(),
  };
  const apiCalls: EcrStandIn['apiCalls'] = [];
  const registryRequests: RegistryRequest[] = [];
  const failures = new Map<string, { errorType: string; left: number }[]>();
  const access: ApiContext['access'] = { required: undefined };

  const registry = await serveOnLoopback(createServer(registryFront(state, registryRequests, { expiredTokenStatus: options.expiredTokenStatus ?? 401 })));
  state.registryUrl = registry.url;
  state.registryHost = new URL(registry.url).host;
  const api = await serveOnLoopback(createServer((req, res) => void serveApiCall(state, req, res, { apiCalls, failures, access })));

  return {
    apiUrl: api.url,
    registryUrl: state.registryUrl,
    registryHost: state.registryHost,
    registryId: state.registryId,
    region: state.region,
    backingRegistryUrl: backing.url,
    apiCalls,
    registryRequests,
    createRepository(name, settings = {}) {
      operations.CreateRepository!(state, { repositoryName: name, ...settings });
    },
    repository: (name) => state.repositories.get(name)?.settings,
    expireTokens() {
      for (const password of state.tokens.keys()) state.tokens.set(password, 0);
    },
    expireTokensAt(matches) {
      state.expireAt = matches;
    },
    failNext(operation, errorType, n = 1) {
      failures.set(operation, [...(failures.get(operation) ?? []), { errorType, left: n }]);
    },
    serveIndexTypes(mode) {
      state.indexTypes = mode;
    },
    requireAccessKey(accessKeyId) {
      access.required = accessKeyId;
    },
    async stop() {
      await Promise.all([api.stop(), registry.stop()]);
      await backing.stop();
    },
  };
}

interface ApiContext {
  apiCalls: EcrStandIn['apiCalls'];
  failures: Map<string, { errorType: string; left: number }[]>;
  /** The only access key id served, when set. */
  access: { required: string | undefined };
}

/** One ECR API call: parse, record, check the signature's scope, then fail as told or answer. */
async function serveApiCall(state: EcrState, req: IncomingMessage, res: ServerResponse, context: ApiContext): Promise<void> {
  const at = performance.now();
  const requestId = randomUUID();
  const reply = (status: number, body: object) => res.writeHead(status, { 'content-type': JSON_1_1, 'x-amzn-requestid': requestId }).end(JSON.stringify(body));
  const fail = (err: EcrError) => reply(err.status, { __type: err.type, message: err.message });
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const target = String(req.headers['x-amz-target'] ?? '');
    const operation = target.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : target;
    const input = parseInput(Buffer.concat(chunks).toString('utf8'));
    const accessKeyId = signingAccessKeyId(req.headers.authorization, 'ecr');
    context.apiCalls.push({ operation, input, accessKeyId, at });
    checkSignatureScope(state, req.headers.authorization);
    if (context.access.required !== undefined && accessKeyId !== context.access.required) {
      throw new EcrError(
        'AccessDeniedException',
        `User with access key ${accessKeyId} is not authorized to perform: ecr:${operation} on registry ${state.registryId}`,
      );
    }
    const injected = takeInjectedFailure(context.failures, operation);
    if (injected) throw injected;
    const handler = req.method === 'POST' && target.startsWith(TARGET_PREFIX) ? operations[operation] : undefined;
    if (!handler) throw new EcrError('UnknownOperationException', `Unknown operation ${target}`);
    if (input.registryId !== undefined && input.registryId !== state.registryId && operation !== 'GetAuthorizationToken') {
      throw new EcrError('RepositoryNotFoundException', `The registry with id '${String(input.registryId)}' is not served here`);
    }
    reply(200, await handler(state, input));
  } catch (err) {
    fail(err instanceof EcrError ? err : new EcrError('ServerException', err instanceof Error ? err.message : String(err), 500));
  }
}

function parseInput(body: string): Input {
  try {
    const input: unknown = JSON.parse(body || '{}');
    if (input && typeof input === 'object' && !Array.isArray(input)) return input as Input;
  } catch {
    // Falls through to the refusal.
  }
  throw new EcrError('SerializationException', 'The request body is not a JSON object');
}

/** Only SigV4 for this region and `ecr` passes, as AWS refuses a request signed for elsewhere. */
function checkSignatureScope(state: EcrState, authorization: string | undefined): void {
  const scope = /^AWS4-HMAC-SHA256 Credential=[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(authorization ?? '');
  if (!scope) throw new EcrError('MissingAuthenticationTokenException', 'Missing Authentication Token');
  if (scope[1] !== state.region) throw new EcrError('InvalidSignatureException', `Credential should be scoped to a valid region, not '${scope[1]}'.`);
  if (scope[2] !== 'ecr') throw new EcrError('InvalidSignatureException', `Credential should be scoped to correct service: 'ecr'.`);
}

function takeInjectedFailure(failures: ApiContext['failures'], operation: string): EcrError | undefined {
  const queue = failures.get(operation);
  const next = queue?.[0];
  if (!queue || !next) return undefined;
  if (--next.left <= 0) queue.shift();
  return new EcrError(next.errorType, `${next.errorType} for ${operation}, as the test asked`, SERVER_ERRORS[next.errorType] ?? 400);
}
