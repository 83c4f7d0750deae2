import type { Command } from 'commander';

/** Registers the `hub` command family (filled in by its owner). */
export function registerHubCommands(_program: Command): void {}
