// A stand-in for the AWS Parameters and Secrets Lambda Extension: serves one secret over HTTP
// like the layer does, and insists on the session-token header as the real one does.
import { createServer, type Server } from 'node:http';

export interface FakeSecretsExtension {
  port: number;
  requests: number;
  stop(): Promise<void>;
}

export async function startSecretsExtension(secretId: string, value: unknown, sessionToken: string): Promise<FakeSecretsExtension> {
  const state = { requests: 0 };
  const server: Server = createServer((req, res) => {
    state.requests++;
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.headers['x-aws-parameters-secrets-token'] !== sessionToken) return void res.writeHead(401).end();
    if (url.pathname !== '/secretsmanager/get' || url.searchParams.get('secretId') !== secretId) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ Name: secretId, SecretString: JSON.stringify(value) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    get requests() {
      return state.requests;
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
