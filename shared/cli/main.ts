import { Command, CommanderError, Option } from 'commander';
import {
  CHECKSUM_KINDS,
  GeoSyncError,
  openRegistry,
  type Registry,
  errorMessage,
  invalidInput,
  syncRepository,
  validateRepositoryName,
  verifyRepository,
  type ChecksumKind,
  type EngineLogger,
  type RegistryEndpoint,
  type Scope,
  type SyncReport,
  type VerifyReport,
} from '../engine/index.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { registerLocalCommands } from './local-commands.js';
import { cliLogger, endpointsFor, integerIn, sharedOption } from './options.js';
import { registerListenCommand } from './listen.js';
import { registerReadyCommand } from './ready.js';
import { underRepositoryLock } from '../local/lock.js';
import { formatPlan, formatSync, formatVerify, syncProgress } from './format.js';
import { errorLine, registryPlaces, type RegistryPlace } from './hints.js';

interface CommonOptions {
  primary?: string;
  secondary?: string;
  config?: string;
  json?: boolean;
  concurrency: number;
  retries: number;
  caFile?: string;
  logLevel: string;
  logFormat?: string;
  gitlabApi: boolean;
  referrers: boolean;
}

/** Runs the CLI and resolves with the process exit code. */
export async function runCli(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let exitCode: number = EXIT.ok;
  // The registries of the command, once chosen: the error line names the one that failed and what to try.
  const places: RegistryPlace[] = [];
  const program = buildProgram(env, (code) => (exitCode = code), places);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are not errors; every other parse failure is a usage error.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const json = argv.includes('--json');
    return reportError(error, json, places);
  }
  return exitCode;
}

function buildProgram(env: NodeJS.ProcessEnv, setExit: (code: number) => void, places: RegistryPlace[]): Command {
  const program = new Command('geo-sync')
    .description("Keep a secondary container registry holding exactly the primary's tags, each at the same manifest digest.")
    .showHelpAfterError('(run geo-sync --help for usage)')
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });
  const context: RepositoryCommandContext = { env, places, setExit };
  registerPlanCommand(program, context);
  registerSyncCommand(program, context);
  registerVerifyCommand(program, context);
  registerLocalCommands(program, { setExitCode: setExit, env });
  registerListenCommand(program, { setExitCode: setExit, env });
  registerReadyCommand(program, { setExitCode: setExit, env });
  return program;
}

/** What plan, sync and verify share: the environment, the registries chosen (for the error line), and the exit code. */
interface RepositoryCommandContext {
  env: NodeJS.ProcessEnv;
  places: RegistryPlace[];
  setExit: (code: number) => void;
}

/** The options of plan, sync and verify. */
function withCommonOptions(command: Command, env: NodeJS.ProcessEnv): Command {
  return command
    .addOption(sharedOption.primary())
    .addOption(sharedOption.secondary())
    .addOption(sharedOption.config(env))
    .option('--json', 'print one JSON object instead of a summary (several secondaries: { repository, secondaries: [...] })')
    .addOption(sharedOption.concurrency())
    .addOption(new Option('--retries <n>', 'retries of a failed request').default(4).argParser(integerIn(0, 20, '--retries')))
    .option('--ca-file <path>', 'extra trusted CA certificates (PEM) for every registry')
    .option('--no-gitlab-api', "never use GitLab's tag list API, even where the registry offers it")
    .addOption(sharedOption.noReferrers())
    .addOption(sharedOption.logLevel(env, 'warn'))
    .addOption(sharedOption.logFormat(env))
    .exitOverride();
}

function registerPlanCommand(program: Command, { env, places, setExit }: RepositoryCommandContext): void {
  withCommonOptions(program.command('plan <repository>').description('show what sync would change; changes nothing'), env).action(
    async (name: string, options: CommonOptions) => {
      const repository = validateRepositoryName(name);
      setExit(
        await forEachSecondary(env, places, options, repository, { format: formatPlan, exitCode: syncExitCode }, (primary, secondary, logger, scope) =>
          syncRepository(primary, secondary, repository, {
            dryRun: true,
            tags: scope.tags,
            concurrency: options.concurrency,
            gitlabApi: options.gitlabApi,
            referrers: options.referrers,
            logger,
          }),
        ),
      );
    },
  );
}

function registerSyncCommand(program: Command, { env, places, setExit }: RepositoryCommandContext): void {
  withCommonOptions(program.command('sync <repository>').description('copy missing and re-pointed tags, remove extra ones'), env)
    .option('--dry-run', 'plan only; change nothing')
    .option('--deep', 'also check every child manifest and blob on the secondary, and repair what is missing')
    .addOption(sharedOption.maxPrune())
    .action(async (name: string, options: CommonOptions & { dryRun?: boolean; deep?: boolean; maxPrune: number }) => {
      const repository = validateRepositoryName(name);
      const showProgress = !options.json && process.stdout.isTTY === true && process.stderr.isTTY === true;
      const present = { format: options.dryRun ? formatPlan : formatSync, exitCode: syncExitCode };
      setExit(
        await forEachSecondary(env, places, options, repository, present, (primary, secondary, logger, scope) => {
          const sync = () =>
            syncRepository(primary, secondary, repository, {
              dryRun: options.dryRun,
              tags: scope.tags,
              deep: options.deep,
              maxPrune: options.maxPrune,
              concurrency: options.concurrency,
              gitlabApi: options.gitlabApi,
              referrers: options.referrers,
              logger,
              ...(showProgress ? { onProgress: syncProgress(process.stderr) } : {}),
            });
          // A dry run writes nothing and takes no lock; a sync takes the one repository lock `run` and `listen` take.
          return options.dryRun ? sync() : underRepositoryLock(secondary.host, secondary.at(repository), sync);
        }),
      );
    });
}

function registerVerifyCommand(program: Command, { env, places, setExit }: RepositoryCommandContext): void {
  withCommonOptions(program.command('verify <repository>').description('compare the checksums of both sides (tags and their referrers); changes nothing'), env)
    .option('--deep', 'also check that every child manifest and blob exists on the secondary')
    .addOption(
      new Option('--checksum <kind>', "full (tags and referrers), canonical (tags only), or gitlab (GitLab Geo's form)")
        .choices(CHECKSUM_KINDS)
        .default('full'),
    )
    .action(async (name: string, options: CommonOptions & { deep?: boolean; checksum: ChecksumKind }) => {
      const repository = validateRepositoryName(name);
      setExit(
        await forEachSecondary(env, places, options, repository, { format: formatVerify, exitCode: verifyExitCode }, (primary, secondary, logger, scope) =>
          verifyRepository(primary, secondary, repository, {
            deep: options.deep,
            tags: scope.tags,
            checksum: options.checksum,
            concurrency: options.concurrency,
            gitlabApi: options.gitlabApi,
            referrers: options.referrers,
            logger,
          }),
        ),
      );
    });
}

interface Presenter<R> {
  format: (report: R) => string;
  exitCode: (report: R) => number;
}

/**
 * Acts on the secondary chosen with --secondary, or on every configured one in turn (never on one
 * picked silently). One secondary prints its report as it always has; several print one block per
 * secondary prefixed `[name] `, or with --json one object `{ repository, secondaries: [...] }`, and
 * exit with the worst code. A secondary that fails does not stop the others.
 */
async function forEachSecondary<R extends object>(
  env: NodeJS.ProcessEnv,
  places: RegistryPlace[],
  options: CommonOptions,
  repository: string,
  present: Presenter<R>,
  act: (primary: Registry, secondary: Registry, logger: EngineLogger, scope: Scope) => Promise<R>,
): Promise<number> {
  return withClients(env, places, options, async (primary, all, logger) => {
    // What lies outside a secondary's scope is never touched: asked by name, that is an error; among several, that one is passed over.
    const secondaries = all.filter(({ scope }) => scope.hasRepository(repository));
    if (all.length === 1 && secondaries.length === 0) {
      const { name, scope } = all[0]!;
      throw invalidInput('OUT_OF_SCOPE', `${repository} is outside the scope of the secondary ${name} (${scope.text}): nothing was done`);
    }
    if (all.length === 1) {
      const { client, scope } = secondaries[0]!;
      const report = await act(primary, client, logger, scope);
      print(options.json ? report : present.format(report), options.json);
      return present.exitCode(report);
    }
    const entries: object[] = [];
    let worst: number = EXIT.ok;
    for (const { name, scope } of all.filter((entry) => !secondaries.includes(entry))) {
      entries.push({ secondary: name, outOfScope: true, scope: scope.text });
      if (!options.json) print(`[${name}] ${repository}: outside this secondary's scope (${scope.text}); nothing done`, false);
    }
    for (const { name, client, scope } of secondaries) {
      try {
        const report = await act(primary, client, logger, scope);
        entries.push({ secondary: name, ...report });
        worst = Math.max(worst, present.exitCode(report));
        if (!options.json) print(prefixLines(`[${name}] `, present.format(report)), false);
      } catch (error) {
        const { code, message, exitCode } = describeError(error);
        entries.push({ secondary: name, error: { code, message } });
        worst = Math.max(worst, exitCode);
        process.stderr.write(`geo-sync: [${name}] ${errorLine(error, places)}\n`);
        if (!options.json) print(`[${name}] ${repository}: error ${code}: ${message}`, false);
      }
    }
    if (options.json) print({ repository, secondaries: entries }, true);
    return worst;
  });
}

/** Opens the primary and every chosen secondary first, so a bad URL or CA file stops the run before any work. */
async function withClients<T>(
  env: NodeJS.ProcessEnv,
  places: RegistryPlace[],
  options: CommonOptions,
  work: (primary: Registry, secondaries: { name: string; client: Registry; scope: Scope }[], logger: EngineLogger) => Promise<T>,
): Promise<T> {
  const logger = cliLogger(options, env);
  const endpoints = endpointsFor(env, { primary: options.primary, secondary: options.secondary, config: options.config });
  places.push(...registryPlaces(endpoints, env, options));
  const withCa = <E extends { caFile?: string }>(endpoint: E): E => (options.caFile ? { ...endpoint, caFile: options.caFile } : endpoint);
  const transport = { concurrency: options.concurrency, retries: options.retries, logger };
  const opened: Registry[] = [];
  const open = (endpoint: RegistryEndpoint, prefix?: string) => {
    const client = openRegistry(withCa(endpoint), { ...transport, prefix });
    opened.push(client);
    return client;
  };
  try {
    const primary = open(endpoints.primary);
    const secondaries = endpoints.secondaries.map(({ name, endpoint, scope }) => ({ name, client: open(endpoint, scope.prefix), scope }));
    return await work(primary, secondaries, logger);
  } finally {
    // What each registry cost, and the in-flight limit it settled at: the figure to tune --concurrency by.
    for (const client of opened) logger.info('registry traffic', { registry: client.host, ...client.stats });
    await Promise.all(opened.map((client) => client.close()));
  }
}

/** Writes take the repository's lock; a half-written lock of a killed run is taken over. */
export function syncExitCode(report: SyncReport): number {
  if (report.status === 'synced') return EXIT.ok;
  if (report.status === 'failed') return EXIT.operational;
  return EXIT.differences;
}

export function verifyExitCode(report: VerifyReport): number {
  if (report.deep && report.deep.failed.length > 0) return EXIT.operational;
  return report.status === 'synced' ? EXIT.ok : EXIT.differences;
}

function print(value: unknown, json: boolean | undefined): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${String(value)}\n`);
}

function reportError(error: unknown, json: boolean, places: readonly RegistryPlace[]): number {
  const { code, message, exitCode } = describeError(error);
  if (json) process.stdout.write(`${JSON.stringify({ error: { code, message } }, null, 2)}\n`);
  process.stderr.write(`geo-sync: ${errorLine(error, places)}\n`);
  return exitCode;
}

function describeError(error: unknown): { code: string; message: string; exitCode: number } {
  const known = error instanceof GeoSyncError;
  return { code: known ? error.code : 'INTERNAL', message: errorMessage(error), exitCode: exitCodeFor(error) };
}

function prefixLines(prefix: string, text: string): string {
  return text
    .split('\n')
    .map((line) => prefix + line)
    .join('\n');
}
