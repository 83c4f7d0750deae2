import type { Command } from 'commander';
import type { ServiceOptions } from './common.js';
import { UsageError, clientFrom, jsonArg, printJson, readDocument, run, withServiceOptions } from './common.js';

/** `kedge devices …` */
export function registerDevices(program: Command): void {
  const devices = program.command('devices').description('Manage device identities on a hub');
  withServiceOptions(devices.command('list').description('List devices')).action(
    run(async (opts: ServiceOptions) => {
      const list = (await (await clientFrom(opts)).listDevices()) as Array<Record<string, unknown>>;
      for (const d of list) {
        const edge = (d['capabilities'] as { iotEdge?: boolean } | undefined)?.iotEdge ? 'edge' : '-';
        process.stdout.write(`${String(d['deviceId'])}\t${String(d['status'])}\t${String(d['connectionState'])}\t${edge}\n`);
      }
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
  withServiceOptions(devices.command('show').description('Show a device (with its keys)').argument('<deviceId>')).action(
    run(async (deviceId: string, opts: ServiceOptions) => printJson(await (await clientFrom(opts)).getDevice(deviceId))),
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
  withServiceOptions(modules.command('list').argument('<deviceId>').description("List a device's modules")).action(
    run(async (deviceId: string, opts: ServiceOptions) => {
      for (const m of (await (await clientFrom(opts)).listModules(deviceId)) as Array<Record<string, unknown>>) {
        process.stdout.write(`${String(m['moduleId'])}\t${String(m['connectionState'])}\t${typeof m['managedBy'] === 'string' ? m['managedBy'] : '-'}\n`);
      }
    }),
  );
  withServiceOptions(modules.command('create').argument('<deviceId>').argument('<moduleId>').description('Create a module identity')).action(
    run(async (deviceId: string, moduleId: string, opts: ServiceOptions) => {
      const c = await clientFrom(opts);
      const m = (await c.createModule(deviceId, moduleId)) as { authentication?: { symmetricKey?: { primaryKey?: string } } };
      process.stdout.write(`HostName=${c.hostName};DeviceId=${deviceId};ModuleId=${moduleId};SharedAccessKey=${m.authentication?.symmetricKey?.primaryKey ?? ''}\n`);
    }),
  );
  withServiceOptions(modules.command('show').argument('<deviceId>').argument('<moduleId>').description('Show a module identity')).action(
    run(async (deviceId: string, moduleId: string, opts: ServiceOptions) => printJson(await (await clientFrom(opts)).getModule(deviceId, moduleId))),
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
  withServiceOptions(twin.command('show').argument('<deviceId>').option('--module <moduleId>').description('Show a twin')).action(
    run(async (deviceId: string, opts: ServiceOptions & { module?: string }) => printJson(await (await clientFrom(opts)).getTwin(deviceId, opts.module))),
  );
  withServiceOptions(
    twin
      .command('update')
      .argument('<deviceId>')
      .option('--module <moduleId>')
      .option('--desired <json>', 'desired properties patch (null deletes)')
      .option('--tags <json>', 'tags patch (null deletes)')
      .description('Patch tags and desired properties'),
  ).action(
    run(async (deviceId: string, opts: ServiceOptions & { module?: string; desired?: string; tags?: string }) => {
      const desired = jsonArg(opts.desired, '--desired');
      const tags = jsonArg(opts.tags, '--tags');
      if (desired === undefined && tags === undefined) throw new UsageError('give --desired and/or --tags');
      const patch = { ...(tags === undefined ? {} : { tags }), ...(desired === undefined ? {} : { properties: { desired } }) };
      printJson(await (await clientFrom(opts)).updateTwin(deviceId, opts.module, patch));
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
  withServiceOptions(d.command('list').description('List deployments with their metrics')).action(
    run(async (opts: ServiceOptions) => {
      for (const c of (await (await clientFrom(opts)).listConfigurations()) as Array<Record<string, unknown>>) {
        const r = (c['systemMetrics'] as { results?: Record<string, number> } | undefined)?.results ?? {};
        process.stdout.write(`${String(c['id'])}\tpriority=${String(c['priority'])}\ttargeted=${r['targetedCount'] ?? 0}\tapplied=${r['appliedCount'] ?? 0}\t${String(c['targetCondition'])}\n`);
      }
    }),
  );
  withServiceOptions(d.command('show').argument('<id>').description('Show a deployment')).action(
    run(async (id: string, opts: ServiceOptions) => printJson(await (await clientFrom(opts)).getConfiguration(id))),
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

/** `kedge monitor [--device] [--from offset|end] [--consumer name]` */
export function registerMonitor(program: Command): void {
  withServiceOptions(
    program
      .command('monitor')
      .option('--device <deviceId>')
      .option('--from <offset>', "offset to start at, or 'end' (default: after the consumer's offset, else the start)")
      .option('--consumer <name>', 'consumer name: resume where it stopped (offset committed by the hub)')
      .option('--count <n>', 'stop after n messages')
      .description('Stream telemetry as JSON lines'),
  ).action(
    run(async (opts: ServiceOptions & { device?: string; from?: string; consumer?: string; count?: string }) => {
      let from: number | 'end' | undefined;
      if (opts.from === 'end') from = 'end';
      else if (opts.from !== undefined) {
        from = Number(opts.from);
        if (!Number.isInteger(from) || from < 0) throw new UsageError('--from must be an offset or "end"');
      }
      const max = opts.count === undefined ? Infinity : Number(opts.count);
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      process.once('SIGINT', stop);
      let n = 0;
      try {
        const c = await clientFrom(opts);
        for await (const m of c.monitor({ ...(from === undefined ? {} : { from }), ...(opts.device ? { deviceId: opts.device } : {}), ...(opts.consumer ? { consumer: opts.consumer } : {}), signal: ac.signal })) {
          process.stdout.write(`${JSON.stringify(m)}\n`);
          if (++n >= max) ac.abort();
        }
      } finally {
        process.off('SIGINT', stop);
      }
    }),
  );
}
