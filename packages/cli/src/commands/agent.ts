import type { Command } from 'commander';

/** Registers the `agent` command family (filled in by its owner). */
export function registerClusterCommands(_program: Command): void {}
