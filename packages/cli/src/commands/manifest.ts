import type { Command } from 'commander';
import { formatIssues, type Issue } from '@kedge/contracts';
import { validateManifest } from '@kedge/manifest';
import { renderCommandAction } from './render.js';
import { loadDocument } from '../io.js';

function printWarnings(warnings: readonly Issue[], quiet: boolean): void {
  if (quiet || warnings.length === 0) return;
  process.stderr.write(`${warnings.map((w) => `warning: ${w.path}: ${w.message}`).join('\n')}\n`);
}

/** Registers `kedge manifest validate` and `kedge manifest render`. */
export function registerManifestCommands(program: Command): void {
  const manifest = program.command('manifest').description('Work with IoT Edge deployment manifests');
  manifest
    .command('validate')
    .description('Validate a deployment manifest (bare modulesContent, {"modulesContent"} or {"content": {"modulesContent"}})')
    .argument('<file>', 'manifest file (JSON, or YAML by extension)')
    .option('-q, --quiet', 'do not print warnings')
    .option('--json', 'print the result as JSON')
    .action(async (file: string, opts: { quiet?: boolean; json?: boolean }) => {
      const doc = await loadDocument(file);
      if (!doc) return;
      const r = validateManifest(doc.value);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(r.ok ? { valid: true, warnings: r.warnings } : { valid: false, errors: r.error, warnings: r.warnings }, null, 2)}\n`);
        process.exitCode = r.ok ? 0 : 1;
        return;
      }
      if (!r.ok) {
        process.stdout.write(`${formatIssues(r.error)}\n`);
        printWarnings(r.warnings, opts.quiet ?? false);
        process.exitCode = 1;
        return;
      }
      const s = r.manifest.spec;
      const mods = Object.keys(s.modules);
      printWarnings(r.warnings, opts.quiet ?? false);
      process.stdout.write(
        `valid: ${mods.length} module${mods.length === 1 ? '' : 's'}${mods.length ? ` (${mods.join(', ')})` : ''}, ` +
          `${Object.keys(s.routes).length} route${Object.keys(s.routes).length === 1 ? '' : 's'}, ` +
          `$edgeAgent ${s.agentSchemaVersion}, $edgeHub ${s.hubSchemaVersion}, ${r.warnings.length} warning${r.warnings.length === 1 ? '' : 's'}\n`,
      );
    });
  manifest
    .command('render')
    .description('Print the EdgeDeployment and every Kubernetes object the controller would apply for a manifest (no cluster needed)')
    .argument('<file>', 'manifest file')
    .requiredOption('-n, --namespace <ns>', "the device's namespace")
    .requiredOption('-d, --device <id>', 'device id')
    .option('-o, --output <format>', 'json or yaml', 'json')
    .option('--name <name>', 'EdgeDeployment name', 'default')
    .option('--allow-host-paths', 'device policy: allow host bind mounts (hostPath)', false)
    .option('--storage-class <name>', 'device policy: StorageClass for PVCs made from named volumes')
    .option('--pvc-size <quantity>', 'device policy: size of PVCs made from named volumes', '1Gi')
    .option('--port-binding-service-type <type>', 'device policy: Service type for PortBindings', 'ClusterIP')
    .action(renderCommandAction);
}
