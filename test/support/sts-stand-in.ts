// Stands in for AWS STS's AssumeRole, the one STS call the engine makes (an ECR entry's roleArn, through
// @aws-sdk/credential-providers' fromTemporaryCredentials). Written from AWS's STS API reference and
// checked against what @aws-sdk/nested-clients/sts sends and parses (the awsQuery protocol):
// - the request: POST `/`, form-encoded `Action=AssumeRole&Version=2011-06-15&RoleArn=…&RoleSessionName=…`,
//   SigV4-signed for service `sts` (the signature itself is not checked);
// - the answer: XML `AssumeRoleResponse/AssumeRoleResult/{Credentials{AccessKeyId, SecretAccessKey,
//   SessionToken, Expiration}, AssumedRoleUser{Arn, AssumedRoleId}}`;
// - a refusal: HTTP 403 with `ErrorResponse/Error{Type, Code, Message}`, Code AccessDenied.
// Each role gets its own credentials (one set, issued again on every call), so a test can tell which
// role signed an ECR call by its access key id. Not modelled: trust policies (any signed caller may
// assume any role not refused), session policies and tags, MFA, DurationSeconds limits, the other actions.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomBytes, randomUUID } from 'node:crypto';
import { serveOnLoopback } from './loopback.js';

export interface AssumeRoleCall {
  roleArn: string;
  roleSessionName: string;
  /** The access key id that signed the request (the caller's base credentials). */
  callerAccessKeyId: string | undefined;
}

export interface IssuedCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
}

export interface StsStandIn {
  /** STS endpoint: set AWS_ENDPOINT_URL_STS to it. */
  url: string;
  /** Every AssumeRole call received, in order (refused ones too). */
  calls: AssumeRoleCall[];
  /** The credentials AssumeRole gives for this role (the same on every call). */
  credentialsFor(roleArn: string): IssuedCredentials;
  /** AssumeRole for this role is refused with AccessDenied from now on. */
  refuse(roleArn: string): void;
  stop(): Promise<void>;
}

const NAMESPACE = 'https://sts.amazonaws.com/doc/2011-06-15/';
const ROLE_ARN = /^arn:aws[a-z-]*:iam::(\d{12}):role\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]+)$/;
const SESSION_NAME = /^[\w+=,.@-]{2,64}$/;
/** Temporary credentials' lifetime: AssumeRole's default DurationSeconds, one hour. */
const LIFETIME_MS = 60 * 60 * 1000;

class StsError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

export async function startStsStandIn(): Promise<StsStandIn> {
  const calls: AssumeRoleCall[] = [];
  const issued = new Map<string, IssuedCredentials>();
  const refused = new Set<string>();
  const credentialsFor = (roleArn: string): IssuedCredentials => {
    let credentials = issued.get(roleArn);
    if (!credentials) {
      credentials = {
        accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`,
        secretAccessKey: randomBytes(30).toString('base64'),
        sessionToken: randomBytes(96).toString('base64'),
      };
      issued.set(roleArn, credentials);
    }
    return credentials;
  };
  const server = await serveOnLoopback(createServer((req, res) => void serve(req, res, { calls, refused, credentialsFor })));
  return {
    url: server.url,
    calls,
    credentialsFor,
    refuse: (roleArn) => void refused.add(roleArn),
    stop: () => server.stop(),
  };
}

interface StsContext {
  calls: AssumeRoleCall[];
  refused: Set<string>;
  credentialsFor(roleArn: string): IssuedCredentials;
}

async function serve(req: IncomingMessage, res: ServerResponse, context: StsContext): Promise<void> {
  const requestId = randomUUID();
  const reply = (status: number, xml: string) => res.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-requestid': requestId }).end(xml);
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    const callerAccessKeyId = signingAccessKeyId(req.headers.authorization, 'sts');
    if (req.method !== 'POST' || form.get('Action') !== 'AssumeRole' || form.get('Version') !== '2011-06-15') {
      throw new StsError('InvalidAction', `Could not find operation ${form.get('Action') ?? ''} for version ${form.get('Version') ?? ''}`);
    }
    const roleArn = form.get('RoleArn') ?? '';
    const roleSessionName = form.get('RoleSessionName') ?? '';
    context.calls.push({ roleArn, roleSessionName, callerAccessKeyId });
    if (callerAccessKeyId === undefined) throw new StsError('MissingAuthenticationToken', 'Request is missing Authentication Token', 403);
    const role = ROLE_ARN.exec(roleArn);
    if (!role) throw new StsError('ValidationError', `${roleArn} is invalid`);
    if (!SESSION_NAME.test(roleSessionName))
      throw new StsError('ValidationError', `1 validation error detected: Value '${roleSessionName}' at 'roleSessionName'`);
    if (context.refused.has(roleArn)) {
      throw new StsError(
        'AccessDenied',
        `User: arn:aws:iam::000000000000:user/caller is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`,
        403,
      );
    }
    reply(200, assumeRoleResponse(context.credentialsFor(roleArn), role[1]!, role[2]!, roleSessionName, requestId));
  } catch (err) {
    const error = err instanceof StsError ? err : new StsError('InternalFailure', err instanceof Error ? err.message : String(err), 500);
    const type = error.status >= 500 ? 'Receiver' : 'Sender';
    reply(
      error.status,
      `<ErrorResponse xmlns="${NAMESPACE}"><Error><Type>${type}</Type><Code>${error.code}</Code><Message>${escapeXml(error.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
    );
  }
}

function assumeRoleResponse(credentials: IssuedCredentials, account: string, roleName: string, sessionName: string, requestId: string): string {
  const expiration = new Date(Date.now() + LIFETIME_MS).toISOString();
  return [
    `<AssumeRoleResponse xmlns="${NAMESPACE}"><AssumeRoleResult>`,
    `<AssumedRoleUser><Arn>arn:aws:sts::${account}:assumed-role/${escapeXml(roleName)}/${escapeXml(sessionName)}</Arn>`,
    `<AssumedRoleId>AROA${account}:${escapeXml(sessionName)}</AssumedRoleId></AssumedRoleUser>`,
    `<Credentials><AccessKeyId>${credentials.accessKeyId}</AccessKeyId><SecretAccessKey>${escapeXml(credentials.secretAccessKey)}</SecretAccessKey>`,
    `<SessionToken>${escapeXml(credentials.sessionToken)}</SessionToken><Expiration>${expiration}</Expiration></Credentials>`,
    `</AssumeRoleResult><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></AssumeRoleResponse>`,
  ].join('');
}

/** The access key id of a SigV4 Authorization header (`Credential=<AKID>/<date>/<region>/<service>/aws4_request`) scoped to `service`. */
export function signingAccessKeyId(authorization: string | undefined, service: string): string | undefined {
  const credential = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/\d{8}\/[^/]+\/([^/]+)\/aws4_request/.exec(authorization ?? '');
  return credential && credential[2] === service ? credential[1] : undefined;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}
