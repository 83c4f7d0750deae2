export { render, imageRegistry, digestObjects, RuntimeEnv, EDGE_HUB_SERVICE } from './render.js';
export type { RenderInput, RenderResult, RenderedModule, OwnerMeta } from './render.js';
export { DevicePolicySchema, defaultPolicy } from './policy.js';
export type { DevicePolicy, DevicePolicyInput } from './policy.js';
export { Labels, Annotations, MANAGED_BY, toDnsLabel, toLabelValue, isDnsLabel } from './names.js';
