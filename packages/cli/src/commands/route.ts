import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { formatIssues, type Issue, type Result } from '@kedge/contracts';
import { Evaluator, formatSink, messageFromJson, parseRouteLines, parseRoutes, type RouteSpec } from '@kedge/routing';

/** Exit code for bad input: unreadable files, invalid JSON, routes that do not compile. */
const EXIT_INVALID = 2;

type Loaded<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly message: string };

function readText(file: string, what: string): Loaded<string> {
  try {
    return { ok: true, value: readFileSync(file, 'utf8') };
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    return { ok: false, message: `cannot read ${what} file ${file}: ${reason}` };
  }
}

function parseJson(text: string, file: string, what: string): Loaded<unknown> {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    return { ok: false, message: `${what} file ${file} is not valid JSON: ${reason}` };
  }
}

/**
 * Loads routes from a file: `$edgeHub` desired properties as JSON (bare, wrapped in `{properties: {desired}}`, or
 * inside a deployment manifest), or a text file with one route per line (`[name:] FROM …`).
 */
function loadRoutes(file: string): Loaded<Result<RouteSpec[], Issue[]>> {
  const text = readText(file, 'routes');
  if (!text.ok) return text;
  const trimmed = text.value.trimStart();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    const json = parseJson(text.value, file, 'routes');
    if (!json.ok) return json;
    return { ok: true, value: parseRoutes(json.value) };
  }
  return { ok: true, value: parseRouteLines(text.value) };
}

function fail(message: string): void {
  process.stderr.write(`kedge route: ${message}\n`);
  process.exitCode = EXIT_INVALID;
}

function routeTest(opts: { routes: string; message: string }): void {
  const routes = loadRoutes(opts.routes);
  if (!routes.ok) return fail(routes.message);
  if (!routes.value.ok) return fail(`routes in ${opts.routes} do not compile:\n${formatIssues(routes.value.error)}`);
  const text = readText(opts.message, 'message');
  if (!text.ok) return fail(text.message);
  const json = parseJson(text.value, opts.message, 'message');
  if (!json.ok) return fail(json.message);
  const message = messageFromJson(json.value);
  if (!message.ok) return fail(`invalid message in ${opts.message}:\n${formatIssues(message.error)}`);
  const matched = new Evaluator(routes.value.value).matching(message.value);
  // The sink as users write it (`$upstream`, `BrokeredEndpoint("/modules/m/inputs/i")`).
  const out = matched.map((m) => ({ name: m.name, sink: formatSink(m.sink), priority: m.priority, timeToLiveSecs: m.timeToLiveSecs }));
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  process.exitCode = 0;
}

function routeCheck(file: string): void {
  const routes = loadRoutes(file);
  if (!routes.ok) return fail(routes.message);
  if (!routes.value.ok) return fail(`routes in ${file} do not compile:\n${formatIssues(routes.value.error)}`);
  const specs = routes.value.value;
  process.stdout.write(`${specs.length} route${specs.length === 1 ? '' : 's'} compiled\n`);
  for (const s of specs) process.stdout.write(`  ${s.name}: ${s.text.trim()}\n`);
  process.exitCode = 0;
}

/**
 * Registers the `route` command family:
 * - `kedge route test --routes <file> --message <file>` prints the routes matching the message as a JSON array of
 *   `{name, sink, priority, timeToLiveSecs}` (exit 0), or exits 2 with the problem on stderr;
 * - `kedge route check <file>` compiles every route and reports.
 */
export function registerRouteCommands(program: Command): void {
  const route = program.command('route').description('test and check IoT Edge routes');
  route
    .command('test')
    .description('print the routes that match a message, as JSON')
    .requiredOption('--routes <file>', '$edgeHub desired properties (JSON, may be a manifest) or a text file of routes, one per line')
    .requiredOption('--message <file>', 'message JSON: {source, properties, systemProperties, contentType, contentEncoding, body | bodyBase64}')
    .action((opts: { routes: string; message: string }) => routeTest(opts));
  route
    .command('check')
    .description('compile every route in a file and report errors with their position')
    .argument('<file>', '$edgeHub desired properties (JSON, may be a manifest) or a text file of routes, one per line')
    .action((file: string) => routeCheck(file));
}
