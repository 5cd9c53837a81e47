/**
 * The CLI's last line for an error: which registry (its role and the scheme it was reached by),
 * what failed, and what to try where one thing fits. The engine's error says what happened; the
 * places a user sets a URL, a CA or credentials are the CLI's to name.
 */
import { GeoSyncError, RegistryError, dockerCredentialsSource, errorMessage, parseRegistryUrl, type Endpoints } from '../engine/index.js';

/** Where one registry of a command was configured: what the hints point at. */
export interface RegistryPlace {
  /** `primary`, `secondary`, or `secondary "eu"` for an entry of GEO_SYNC_SECONDARIES. */
  label: string;
  role: 'primary' | 'secondary';
  /** `https://host:port`: the scheme it is reached by. */
  origin: string;
  /** Where its URL came from: an option, an environment variable, an entry. */
  urlFrom: string;
  /** Where its credentials are read from, and whether any were given. */
  credentialsFrom: string;
  hasCredentials: boolean;
  /** Where an extra CA can be given. */
  caFrom: string;
}

/** The places of a command's registries, from the options and the environment that chose them. */
export function registryPlaces(endpoints: Endpoints, env: NodeJS.ProcessEnv, flags: { primary?: string; secondary?: string }): RegistryPlace[] {
  const fromEntries = env.GEO_SYNC_SECONDARIES !== undefined && env.GEO_SYNC_SECONDARIES !== '';
  const primary: RegistryPlace = {
    label: 'primary',
    role: 'primary',
    origin: parseRegistryUrl(endpoints.primary.url).origin,
    urlFrom: flags.primary !== undefined ? '--primary' : 'GEO_SYNC_PRIMARY_URL',
    credentialsFrom: 'GEO_SYNC_PRIMARY_USERNAME and GEO_SYNC_PRIMARY_PASSWORD',
    hasCredentials: endpoints.primary.username !== undefined,
    caFrom: '--ca-file <pem> (or GEO_SYNC_PRIMARY_CA_FILE)',
  };
  const secondaries = endpoints.secondaries.map(({ name, endpoint }): RegistryPlace => {
    // An entry of GEO_SYNC_SECONDARIES, unless --secondary gave a URL (config.ts: a matching name wins).
    const entry = fromEntries && (flags.secondary === undefined || flags.secondary === name) ? `the "${name}" entry of GEO_SYNC_SECONDARIES` : undefined;
    return {
      label: entry ? `secondary "${name}"` : 'secondary',
      role: 'secondary',
      origin: parseRegistryUrl(endpoint.url).origin,
      urlFrom: entry ? `"url" in ${entry}` : flags.secondary !== undefined ? '--secondary' : 'GEO_SYNC_SECONDARY_URL',
      credentialsFrom: entry ? `"username" and "password" in ${entry}` : 'GEO_SYNC_SECONDARY_USERNAME and GEO_SYNC_SECONDARY_PASSWORD',
      hasCredentials: endpoint.username !== undefined,
      caFrom: entry ? `--ca-file <pem> (or "caFile" in ${entry})` : '--ca-file <pem> (or GEO_SYNC_SECONDARY_CA_FILE)',
    };
  });
  const opened = [endpoints.primary, ...endpoints.secondaries.map((site) => site.endpoint)];
  return [primary, ...secondaries].map((place, index) => (opened[index]?.ecr ? place : withFileCredentials(place, env)));
}

/** A registry given no credentials of its own (not ECR's) takes them from docker's or podman's files: the hint names where. */
function withFileCredentials(place: RegistryPlace, env: NodeJS.ProcessEnv): RegistryPlace {
  if (place.hasCredentials) return place;
  const source = dockerCredentialsSource(new URL(place.origin).host, env);
  return source ? { ...place, credentialsFrom: source, hasCredentials: true } : place;
}

/** Certificate errors that mean "signed by an authority this machine does not trust". */
const UNTRUSTED_CERTIFICATE = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);

/** The codes along an error's cause chain (Node's, undici's, OpenSSL's). */
function causeCodes(error: unknown): string[] {
  const codes: string[] = [];
  for (let e = error as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string') codes.push(e.code);
  }
  return codes;
}

/** What to try for this error at this registry, or undefined where no one thing fits. */
export function hintFor(error: unknown, place: RegistryPlace): string | undefined {
  const plainHttpUrl = place.origin.replace(/^https:/, 'http:');
  if (error instanceof GeoSyncError && error.code === 'REPOSITORY_NOT_FOUND') {
    return `give the repository's name as the primary lists it (GET ${place.origin}/v2/_catalog lists them)`;
  }
  if (error instanceof RegistryError && error.status === 401) return credentialsHint(place);
  // A refused identity token's message already names where it was read: no hint repeats it.
  if (error instanceof GeoSyncError && error.code === 'AUTH_REFUSED') return error.message.includes(place.credentialsFrom) ? undefined : credentialsHint(place);
  if (error instanceof RegistryError && error.status === 403) {
    return `the account in ${place.credentialsFrom} may lack access to this repository (the primary needs pull; a secondary pull, push and delete)`;
  }
  const codes = causeCodes(error);
  if (codes.includes('ECONNREFUSED')) {
    const scheme = place.origin.startsWith('https:')
      ? ` A registry that serves plain HTTP needs ${plainHttpUrl} in ${place.urlFrom} (https:// is the default).`
      : '';
    return `is it running, and on that port?${scheme}`;
  }
  if (codes.includes('ENOTFOUND') || codes.includes('EAI_AGAIN')) return `check the host name in ${place.urlFrom}`;
  if (codes.includes('ERR_SSL_WRONG_VERSION_NUMBER')) {
    return `it does not speak TLS on that port: a registry that serves plain HTTP needs ${plainHttpUrl} in ${place.urlFrom} (https:// is the default)`;
  }
  if (codes.some((code) => UNTRUSTED_CERTIFICATE.has(code)))
    return `its certificate is signed by an authority this machine does not trust: pass that CA with ${place.caFrom}`;
  if (codes.includes('ERR_TLS_CERT_ALTNAME_INVALID')) return `its certificate names another host: write the host name it was issued for in ${place.urlFrom}`;
  return undefined;
}

function credentialsHint(place: RegistryPlace): string {
  return place.hasCredentials
    ? `it refused the credentials in ${place.credentialsFrom}`
    : `it asks for credentials and none were given: set ${place.credentialsFrom}`;
}

/**
 * The last line of a failed command (without `geo-sync: `): the registry as `<label> <origin>` (the
 * origin left out where the message already shows it), the error, and a hint where one fits.
 */
export function errorLine(error: unknown, places: readonly RegistryPlace[]): string {
  const message = errorMessage(error);
  const place = placeOf(error, places);
  if (!place) return message;
  const where = message.includes(place.origin) ? place.label : `${place.label} ${place.origin}`;
  const hint = hintFor(error, place);
  return `${where}: ${message}${hint ? `. Hint: ${hint}` : ''}`;
}

/** The registry an error is about: the one it names, or the primary for a repository the primary lacks. */
function placeOf(error: unknown, places: readonly RegistryPlace[]): RegistryPlace | undefined {
  if (!(error instanceof GeoSyncError)) return undefined;
  if (error.code === 'REPOSITORY_NOT_FOUND') return places.find((p) => p.role === 'primary');
  // Primary and secondary at one origin (a test, a mirror of itself): the primary's place is as good as any.
  return error.registry === undefined ? undefined : places.find((p) => p.origin === error.registry);
}
