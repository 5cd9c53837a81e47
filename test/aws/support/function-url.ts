// A stand-in for a Lambda function URL: serves HTTP on loopback and invokes a handler with the
// payload 2.0 event a function URL sends, answering with what it returns.
import { createServer, type Server } from 'node:http';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { lambdaContext } from './event-source.js';

export type UrlHandler = (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2>;

export interface FunctionUrl {
  url: string;
  invocations: number;
  stop(): Promise<void>;
}

/** Function URLs take bodies up to 6 MB; a larger one never reaches the function. */
const PAYLOAD_LIMIT = 6 * 1024 * 1024;

export async function startFunctionUrl(handler: () => UrlHandler, port = 0): Promise<FunctionUrl> {
  const state = { invocations: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= PAYLOAD_LIMIT) chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > PAYLOAD_LIMIT) return void res.writeHead(413).end();
      const body = Buffer.concat(chunks);
      const url = new URL(req.url ?? '/', 'http://localhost');
      const headers = Object.fromEntries(Object.entries(req.headers).map(([name, value]) => [name, Array.isArray(value) ? value.join(',') : value]));
      state.invocations++;
      handler()(functionUrlEvent(req.method ?? 'GET', url.pathname, headers, body), lambdaContext(10_000, 'notify')).then(
        (result) => res.writeHead(result.statusCode ?? 200, result.headers as Record<string, string>).end(result.body ?? ''),
        () => res.writeHead(502).end('{"Message":"Internal Server Error"}'),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const address = server.address();
  return {
    url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : port}`,
    get invocations() {
      return state.invocations;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The event a function URL sends for one request (binary bodies base64-encoded, as Lambda does). */
export function functionUrlEvent(method: string, path: string, headers: Record<string, string | undefined>, body: Buffer): APIGatewayProxyEventV2 {
  const text = /json|text/.test(headers['content-type'] ?? '') || body.length === 0;
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: '',
    headers: headers as Record<string, string>,
    requestContext: {
      accountId: 'anonymous',
      apiId: 'test',
      domainName: 'test.lambda-url.us-east-1.on.aws',
      domainPrefix: 'test',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: headers['user-agent'] ?? '' },
      requestId: `req-${Math.random().toString(16).slice(2)}`,
      routeKey: '$default',
      stage: '$default',
      time: new Date().toISOString(),
      timeEpoch: Date.now(),
    },
    ...(body.length > 0 ? { body: text ? body.toString('utf8') : body.toString('base64') } : {}),
    isBase64Encoded: !text,
  };
}
