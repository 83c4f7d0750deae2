import type { Command } from 'commander';

/** Registers the `route` command family (filled in by its owner). */
export function registerRouteCommands(_program: Command): void {}
