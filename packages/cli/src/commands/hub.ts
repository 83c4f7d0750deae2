import type { Command } from 'commander';
import { registerServe } from './hub/serve.js';
import {
  registerDeploy,
  registerDeployments,
  registerDevices,
  registerEventHubs,
  registerInvoke,
  registerModules,
  registerMonitor,
  registerQuery,
  registerStatistics,
  registerTwin,
} from './hub/service.js';

/**
 * Registers the hub command family: `kedge hub` (run it) and the service-API commands `devices`, `modules`,
 * `twin`, `deploy`, `deployments`, `invoke`, `monitor`, `query`, `statistics`, `eventhubs` (each takes `--hub <connection string>` or reads
 * `KEDGE_HUB_CONNECTION_STRING` when it runs, and `--ca` / `KEDGE_HUB_CA`).
 */
export function registerHubCommands(program: Command): void {
  registerServe(program);
  registerDevices(program);
  registerModules(program);
  registerTwin(program);
  registerDeploy(program);
  registerDeployments(program);
  registerInvoke(program);
  registerMonitor(program);
  registerQuery(program);
  registerStatistics(program);
  registerEventHubs(program);
}
