import type { Command } from 'commander';
import { flatten, formatFields, formatTable, Tone, useColor } from '../../output.js';
import { telemetryLine } from './telemetry-line.js';
import type { Column } from '../../output.js';
import type { ServiceOptions } from './common.js';
import { UsageError, clientFrom, jsonArg, output, printJson, readDocument, run, withJson, withServiceOptions } from './common.js';

type Doc = Record<string, unknown>;
type ListOptions = ServiceOptions & { json?: boolean };

const statusTone = (v: unknown): Tone | undefined => (v === 'enabled' || v === 'Connected' ? Tone.Good : v === 'disabled' ? Tone.Bad : undefined);
const NEVER = '0001-01-01T00:00:00Z';

const deviceColumns: Column<Doc>[] = [
  { header: 'device', value: (d) => d['deviceId'] },
  { header: 'status', value: (d) => d['status'], tone: (d) => statusTone(d['status']) },
  { header: 'connection', value: (d) => d['connectionState'], tone: (d) => statusTone(d['connectionState']) },
  { header: 'edge', value: (d) => ((d['capabilities'] as { iotEdge?: boolean } | undefined)?.iotEdge === true ? 'yes' : 'no') },
  { header: 'last activity', value: (d) => (d['lastActivityTime'] === NEVER ? undefined : d['lastActivityTime']) },
];

const moduleColumns: Column<Doc>[] = [
  { header: 'module', value: (m) => m['moduleId'] },
  { header: 'connection', value: (m) => m['connectionState'], tone: (m) => statusTone(m['connectionState']) },
  { header: 'managed by', value: (m) => m['managedBy'] },
];

const twinColumns: Column<Doc>[] = [
  { header: 'device', value: (t) => t['deviceId'] },
  { header: 'module', value: (t) => t['moduleId'] },
  { header: 'status', value: (t) => t['status'], tone: (t) => statusTone(t['status']) },
  { header: 'connection', value: (t) => t['connectionState'], tone: (t) => statusTone(t['connectionState']) },
  { header: 'version', value: (t) => t['version'] },
];

/** An identity's fields for `show`, keys included (that is what `show` is for). */
function identityFields(d: Doc): Array<[string, unknown]> {
  const auth = d['authentication'] as { type?: string; symmetricKey?: { primaryKey?: string; secondaryKey?: string } } | undefined;
  const keys = ['deviceId', 'moduleId', 'status', 'statusReason', 'connectionState', 'lastActivityTime', 'managedBy', 'generationId', 'etag'];
  return [
    ...keys.filter((k) => d[k] !== undefined).map((k): [string, unknown] => [k, d[k]]),
    ...(d['capabilities'] === undefined ? [] : ([['iotEdge', (d['capabilities'] as { iotEdge?: boolean }).iotEdge === true]] as Array<[string, unknown]>)),
    ['authentication', auth?.type],
    ['primaryKey', auth?.symmetricKey?.primaryKey],
    ['secondaryKey', auth?.symmetricKey?.secondaryKey],
  ];
}

/** A twin as FIELD/VALUE rows: identity fields, then every tag and property leaf by path. */
function twinFields(t: Doc): Array<[string, unknown]> {
  const head = ['deviceId', 'moduleId', 'status', 'connectionState', 'version', 'etag'].filter((k) => t[k] !== undefined).map((k): [string, unknown] => [k, t[k]]);
  return [...head, ...flatten({ tags: t['tags'] ?? {} }), ...flatten({ properties: t['properties'] ?? {} }), ...flatten({ configurations: t['configurations'] ?? {} })];
}

/** `kedge devices …` */
export function registerDevices(program: Command): void {
  const devices = program.command('devices').description('Manage device identities on a hub');
  withServiceOptions(withJson(devices.command('list').description('List devices'))).action(
    run(async (opts: ListOptions) => {
      const list = (await (await clientFrom(opts)).listDevices()) as Doc[];
      output(opts, list, (color) => formatTable(list, deviceColumns, { color }));
    }),
  );
  withServiceOptions(devices.command('create').description('Create a device').argument('<deviceId>').option('--edge', 'an IoT Edge device')).action(
    run(async (deviceId: string, opts: ServiceOptions & { edge?: boolean }) => {
      const c = await clientFrom(opts);
      const d = (await c.createDevice(deviceId, { edge: opts.edge === true })) as { authentication?: { symmetricKey?: { primaryKey?: string } } };
      const key = d.authentication?.symmetricKey?.primaryKey ?? '';
      process.stdout.write(`HostName=${c.hostName};DeviceId=${deviceId};SharedAccessKey=${key}\n`);
    }),
  );
  withServiceOptions(withJson(devices.command('show').description('Show a device (with its keys)').argument('<deviceId>'))).action(
    run(async (deviceId: string, opts: ListOptions) => {
      const d = (await (await clientFrom(opts)).getDevice(deviceId)) as Doc;
      output(opts, d, (color) => formatFields(identityFields(d), { color }));
    }),
  );
  withServiceOptions(devices.command('delete').description('Delete a device, its modules and twins').argument('<deviceId>')).action(
    run(async (deviceId: string, opts: ServiceOptions) => {
      await (await clientFrom(opts)).deleteDevice(deviceId);
      process.stdout.write(`deleted ${deviceId}\n`);
    }),
  );
}

/** `kedge modules …` */
export function registerModules(program: Command): void {
  const modules = program.command('modules').description('Manage module identities on a hub');
  withServiceOptions(withJson(modules.command('list').argument('<deviceId>').description("List a device's modules"))).action(
    run(async (deviceId: string, opts: ListOptions) => {
      const list = (await (await clientFrom(opts)).listModules(deviceId)) as Doc[];
      output(opts, list, (color) => formatTable(list, moduleColumns, { color }));
    }),
  );
  withServiceOptions(modules.command('create').argument('<deviceId>').argument('<moduleId>').description('Create a module identity')).action(
    run(async (deviceId: string, moduleId: string, opts: ServiceOptions) => {
      const c = await clientFrom(opts);
      const m = (await c.createModule(deviceId, moduleId)) as { authentication?: { symmetricKey?: { primaryKey?: string } } };
      process.stdout.write(`HostName=${c.hostName};DeviceId=${deviceId};ModuleId=${moduleId};SharedAccessKey=${m.authentication?.symmetricKey?.primaryKey ?? ''}\n`);
    }),
  );
  withServiceOptions(withJson(modules.command('show').argument('<deviceId>').argument('<moduleId>').description('Show a module identity (with its keys)'))).action(
    run(async (deviceId: string, moduleId: string, opts: ListOptions) => {
      const m = (await (await clientFrom(opts)).getModule(deviceId, moduleId)) as Doc;
      output(opts, m, (color) => formatFields(identityFields(m), { color }));
    }),
  );
  withServiceOptions(modules.command('delete').argument('<deviceId>').argument('<moduleId>').description('Delete a module identity')).action(
    run(async (deviceId: string, moduleId: string, opts: ServiceOptions) => {
      await (await clientFrom(opts)).deleteModule(deviceId, moduleId);
      process.stdout.write(`deleted ${deviceId}/${moduleId}\n`);
    }),
  );
}

/** `kedge twin show|update` */
export function registerTwin(program: Command): void {
  const twin = program.command('twin').description('Read and update device and module twins');
  withServiceOptions(withJson(twin.command('show').argument('<deviceId>').option('--module <moduleId>').description('Show a twin (tags and properties by path)'))).action(
    run(async (deviceId: string, opts: ListOptions & { module?: string }) => {
      const t = (await (await clientFrom(opts)).getTwin(deviceId, opts.module)) as Doc;
      output(opts, t, (color) => formatFields(twinFields(t), { color }));
    }),
  );
  withServiceOptions(
    twin
      .command('update')
      .argument('<deviceId>')
      .option('--module <moduleId>')
      .option('--desired <json>', 'desired properties patch (null deletes)')
      .option('--tags <json>', 'tags patch (null deletes)')
      .option('--json', 'print the updated twin as JSON instead of a table')
      .description('Patch tags and desired properties'),
  ).action(
    run(async (deviceId: string, opts: ListOptions & { module?: string; desired?: string; tags?: string }) => {
      const desired = jsonArg(opts.desired, '--desired');
      const tags = jsonArg(opts.tags, '--tags');
      if (desired === undefined && tags === undefined) throw new UsageError('give --desired and/or --tags');
      const patch = { ...(tags === undefined ? {} : { tags }), ...(desired === undefined ? {} : { properties: { desired } }) };
      const t = (await (await clientFrom(opts)).updateTwin(deviceId, opts.module, patch)) as Doc;
      output(opts, t, (color) => formatFields(twinFields(t), { color }));
    }),
  );
}

/** `kedge deploy <device> <manifest>` */
export function registerDeploy(program: Command): void {
  withServiceOptions(
    program.command('deploy').argument('<deviceId>').argument('<manifest>', 'deployment manifest (JSON or YAML)').description('Set the modules of one edge device'),
  ).action(
    run(async (deviceId: string, file: string, opts: ServiceOptions) => {
      const doc = await readDocument(file);
      await (await clientFrom(opts)).applyContent(deviceId, doc);
      process.stdout.write(`applied ${file} to ${deviceId}\n`);
    }),
  );
}

/** `kedge deployments …` (automatic deployments = IoT Hub configurations) */
export function registerDeployments(program: Command): void {
  const d = program.command('deployments').description('Manage automatic (and layered) deployments');
  withServiceOptions(withJson(d.command('list').description('List deployments with their metrics'))).action(
    run(async (opts: ListOptions) => {
      const list = (await (await clientFrom(opts)).listConfigurations()) as Doc[];
      const results = (c: Doc): Record<string, number> => (c['systemMetrics'] as { results?: Record<string, number> } | undefined)?.results ?? {};
      output(opts, list, (color) =>
        formatTable(
          list,
          [
            { header: 'id', value: (c) => c['id'] },
            { header: 'priority', value: (c) => c['priority'] },
            { header: 'targeted', value: (c) => results(c)['targetedCount'] ?? 0 },
            { header: 'applied', value: (c) => results(c)['appliedCount'] ?? 0 },
            { header: 'failed', value: (c) => results(c)['reportedFailedCount'] ?? 0, tone: (c) => ((results(c)['reportedFailedCount'] ?? 0) > 0 ? Tone.Bad : undefined) },
            { header: 'target condition', value: (c) => c['targetCondition'] },
          ],
          { color },
        ),
      );
    }),
  );
  withServiceOptions(withJson(d.command('show').argument('<id>').description('Show a deployment (content, target, metrics)'))).action(
    run(async (id: string, opts: ListOptions) => {
      const c = (await (await clientFrom(opts)).getConfiguration(id)) as Doc;
      const fields: Array<[string, unknown]> = [
        ['id', c['id']],
        ['priority', c['priority']],
        ['targetCondition', c['targetCondition']],
        ['createdTimeUtc', c['createdTimeUtc']],
        ['lastUpdatedTimeUtc', c['lastUpdatedTimeUtc']],
        ...flatten({ labels: c['labels'] ?? {} }),
        ...flatten({ systemMetrics: (c['systemMetrics'] as Doc | undefined)?.['results'] ?? {} }),
        ...flatten({ metrics: (c['metrics'] as Doc | undefined)?.['results'] ?? {} }),
        ['modules', Object.keys(((c['content'] as Doc | undefined)?.['modulesContent'] as Doc | undefined) ?? {}).join(', ')],
      ];
      output(opts, c, (color) => formatFields(fields, { color }));
    }),
  );
  withServiceOptions(
    d
      .command('create')
      .argument('<id>')
      .requiredOption('--content <file>', 'manifest or layered content (JSON or YAML)')
      .requiredOption('--target-condition <condition>', "e.g. \"tags.env='prod'\"")
      .option('--priority <n>', 'priority (higher wins)', '0')
      .option('--metric <name=query...>', 'custom metric query, repeatable')
      .description('Create an automatic deployment (layered when the content uses properties.desired.<path> keys)'),
  ).action(
    run(async (id: string, opts: ServiceOptions & { content: string; targetCondition: string; priority: string; metric?: string[] }) => {
      const doc = (await readDocument(opts.content)) as Record<string, unknown> | null;
      const inner = doc && typeof doc === 'object' && 'content' in doc ? (doc['content'] as Record<string, unknown>) : doc;
      const modulesContent = inner && typeof inner === 'object' && 'modulesContent' in inner ? inner['modulesContent'] : inner;
      const priority = Number(opts.priority);
      if (!Number.isInteger(priority) || priority < 0) throw new UsageError('--priority must be a non-negative integer');
      const queries = Object.fromEntries(
        (opts.metric ?? []).map((m) => {
          const eq = m.indexOf('=');
          if (eq <= 0) throw new UsageError(`--metric expects name=query, got ${m}`);
          return [m.slice(0, eq), m.slice(eq + 1)];
        }),
      );
      const cfg = { id, content: { modulesContent }, targetCondition: opts.targetCondition, priority, labels: {}, metrics: { queries } };
      const created = (await (await clientFrom(opts)).createConfiguration(id, cfg)) as { id: string };
      process.stdout.write(`created deployment ${created.id}\n`);
    }),
  );
  withServiceOptions(d.command('delete').argument('<id>').description('Delete a deployment (modules stay until another deployment replaces them)')).action(
    run(async (id: string, opts: ServiceOptions) => {
      await (await clientFrom(opts)).deleteConfiguration(id);
      process.stdout.write(`deleted deployment ${id}\n`);
    }),
  );
}

/** `kedge invoke <device> [--module] <method> [--payload]` */
export function registerInvoke(program: Command): void {
  withServiceOptions(
    program
      .command('invoke')
      .argument('<deviceId>')
      .argument('<method>')
      .option('--module <moduleId>')
      .option('--payload <json>', 'method payload (JSON)')
      .option('--timeout <seconds>', 'response timeout (5-300)', '30')
      .description('Invoke a direct method'),
  ).action(
    run(async (deviceId: string, method: string, opts: ServiceOptions & { module?: string; payload?: string; timeout: string }) => {
      const r = await (await clientFrom(opts)).invoke(deviceId, opts.module, method, jsonArg(opts.payload, '--payload') ?? null, Number(opts.timeout));
      printJson(r);
      if (r.status >= 300) process.exitCode = 1;
    }),
  );
}

/** `kedge monitor [deviceId] [--from offset|end] [--consumer name] [--json]` */
export function registerMonitor(program: Command): void {
  withServiceOptions(
    program
      .command('monitor')
      .argument('[deviceId]', 'only this device (same as --device)')
      .option('--device <deviceId>')
      .option('--from <offset>', "offset to start at, or 'end' (default: after the consumer's offset, else the start)")
      .option('--consumer <name>', 'consumer name: resume where it stopped (offset committed by the hub)')
      .option('--count <n>', 'stop after n messages')
      .option('--json', 'one JSON object per message (offset, ids, properties, system properties, body) for scripts')
      .description('Stream telemetry: one readable line per message (time, sender, body, properties), or JSON lines'),
  ).action(
    run(async (deviceArg: string | undefined, opts: ServiceOptions & { device?: string; from?: string; consumer?: string; count?: string; json?: boolean }) => {
      let from: number | 'end' | undefined;
      if (opts.from === 'end') from = 'end';
      else if (opts.from !== undefined) {
        from = Number(opts.from);
        if (!Number.isInteger(from) || from < 0) throw new UsageError('--from must be an offset or "end"');
      }
      if (deviceArg !== undefined && opts.device !== undefined && deviceArg !== opts.device) throw new UsageError('give the device once: as the argument or as --device');
      const deviceId = deviceArg ?? opts.device;
      const max = opts.count === undefined ? Infinity : Number(opts.count);
      if (!(max === Infinity || (Number.isInteger(max) && max > 0))) throw new UsageError('--count must be a whole number above 0');
      const color = useColor();
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      process.once('SIGINT', stop);
      let n = 0;
      try {
        const c = await clientFrom(opts);
        for await (const m of c.monitor({ ...(from === undefined ? {} : { from }), ...(deviceId ? { deviceId } : {}), ...(opts.consumer ? { consumer: opts.consumer } : {}), signal: ac.signal })) {
          process.stdout.write(opts.json === true ? `${JSON.stringify(m)}\n` : telemetryLine(m, color));
          if (++n >= max) {
            // The stream may hold further messages already received: stop reading, then close it.
            ac.abort();
            break;
          }
        }
      } finally {
        process.off('SIGINT', stop);
      }
    }),
  );
}

/** `kedge query "<sql>"`: IoT Hub's query language, every page. */
export function registerQuery(program: Command): void {
  withServiceOptions(
    withJson(
      program
        .command('query')
        .argument('<sql>', "e.g. \"SELECT deviceId, properties.reported.fw FROM devices WHERE tags.env = 'prod'\"")
        .option('--page-size <n>', 'items per request (1-1000)', '1000')
        .option('--max <n>', 'stop after n items', '100000')
        .description('Query device and module twins (projections, COUNT() … GROUP BY, TOP)'),
    ),
  ).action(
    run(async (sql: string, opts: ListOptions & { pageSize: string; max: string }) => {
      const pageSize = Number(opts.pageSize);
      const maxItems = Number(opts.max);
      if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000) throw new UsageError('--page-size must be a whole number from 1 to 1000');
      if (!Number.isInteger(maxItems) || maxItems < 1) throw new UsageError('--max must be a whole number above 0');
      const r = await (await clientFrom(opts)).query(sql, { pageSize, maxItems });
      const rows = r.items as Doc[];
      output(opts, rows, (color) => {
        if (r.itemType === 'twin') return formatTable(rows, twinColumns.filter((c) => c.header !== 'module' || rows.some((t) => t['moduleId'] !== undefined)), { color });
        // Projections and aggregates: one column per output name, in order of first appearance.
        const names = [...new Set(rows.flatMap((row) => Object.keys(row)))];
        return formatTable(rows, names.map((n): Column<Doc> => ({ header: n, value: (row) => (Object.prototype.hasOwnProperty.call(row, n) ? row[n] : undefined) })), { color });
      });
    }),
  );
}

/** `kedge statistics`: device registry and connection counts. */
/** `kedge eventhubs`: the hub's Event Hubs-compatible endpoint and the connection string for `EventHubConsumerClient`. */
export function registerEventHubs(program: Command): void {
  withServiceOptions(withJson(program.command('eventhubs').description('Show the Event Hubs-compatible endpoint: name, partitions, consumer groups, connection string'))).action(
    run(async (opts: ListOptions) => {
      const c = await clientFrom(opts);
      const eh = await c.eventHubs();
      output(opts, eh, (color) =>
        formatFields(
          [
            ['name', eh.name],
            ['endpoint', eh.endpoint],
            ['partitions', eh.partitionIds.join(', ')],
            ['consumer groups', eh.consumerGroups.join(', ')],
            ['connection string', eh.connectionString ?? '(needs a shared access policy with ServiceConnect)'],
          ],
          { color },
        ),
      );
    }),
  );
}

export function registerStatistics(program: Command): void {
  withServiceOptions(withJson(program.command('statistics').description('Count devices: total, enabled, disabled, connected'))).action(
    run(async (opts: ListOptions) => {
      const c = await clientFrom(opts);
      const [registry, service] = await Promise.all([c.registryStatistics(), c.serviceStatistics()]);
      const all = { ...registry, ...service };
      output(opts, all, (color) =>
        formatFields(
          [
            ['total devices', all.totalDeviceCount],
            ['enabled', all.enabledDeviceCount],
            ['disabled', all.disabledDeviceCount],
            ['connected', all.connectedDeviceCount],
          ],
          { color },
        ),
      );
    }),
  );
}
