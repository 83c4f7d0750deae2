/**
 * The hub's only import point for `@kedge/manifest` (manifest validation and layering), so the contract the hub
 * relies on is visible in one place.
 */
import type { Issue } from '@kedge/contracts';
import { composeLayers as compose, validateLayer as checkLayer, validateManifest as checkManifest } from '@kedge/manifest';

/** `$edgeAgent`, `$edgeHub`, module ids → `{"properties.desired": {...}}` (or layered `properties.desired.<path>` keys). */
export type ModulesContent = Record<string, Record<string, unknown>>;

export type ContentResult = { ok: true; value: ModulesContent; warnings: Issue[] } | { ok: false; error: Issue[]; warnings: Issue[] };

/** Validates a full deployment manifest (bare modulesContent, `{modulesContent}` or `{content:{modulesContent}}`). */
export const validateManifest = (input: unknown): ContentResult => checkManifest(input);

/** Validates layered deployment content. */
export const validateLayer = (input: unknown): ContentResult => checkLayer(input);

/** Applies layers in ascending priority over the base; returns the desired documents per module. */
export const composeLayers = (base: ModulesContent | undefined, layers: ReadonlyArray<{ id: string; priority: number; content: ModulesContent }>): ModulesContent =>
  compose(base, layers);
