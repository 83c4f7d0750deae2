import type { Command } from 'commander';

/** Registers the `manifest` command family (filled in by its owner). */
export function registerManifestCommands(_program: Command): void {}
