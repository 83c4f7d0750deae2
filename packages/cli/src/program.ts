import { Command } from 'commander';
import { registerManifestCommands } from './commands/manifest.js';
import { registerRouteCommands } from './commands/route.js';
import { registerHubCommands } from './commands/hub.js';
import { registerClusterCommands } from './commands/agent.js';
import { registerInstallCommands } from './commands/install.js';
import { registerEdgeHubCommands } from './commands/edge-hub.js';
import { registerCheckCommands } from './commands/check.js';
import { registerLocalClusterCommands } from './commands/cluster.js';
import { registerEdgeCommands } from './commands/edge.js';
import { registerDevCommands } from './commands/dev/index.js';

/**
 * Builds the `kedge` command tree. Each command family lives in `commands/<family>.ts` and registers itself here;
 * commands write to the given streams and set `process.exitCode` (1: the operation failed, 2: usage), so tests can run
 * them in-process.
 */
export function buildProgram(): Command {
  const program = new Command('kedge')
    .description('Kedge: an open, self-hosted IoT Edge platform for Kubernetes')
    .version('0.1.0')
    .showHelpAfterError()
    // Usage mistakes surface as CommanderErrors, which main.ts turns into exit code 2 (every subcommand inherits it).
    .exitOverride();
  registerManifestCommands(program);
  registerRouteCommands(program);
  registerHubCommands(program);
  registerClusterCommands(program);
  registerInstallCommands(program);
  registerEdgeHubCommands(program);
  registerCheckCommands(program);
  registerLocalClusterCommands(program);
  registerEdgeCommands(program);
  registerDevCommands(program);
  return program;
}
