/**
 * `@kedge/protocol`: the IoT Hub wire dialect, shared by the cloud hub and the edge hub so both speak it the same way.
 * Pure code (no sockets, no files): MQTT topic parsing and authorization, SAS tokens and connection strings, twin
 * documents and their rules, system property names, and JSON handling that is immune to prototype pollution.
 */
export * from './topics.js';
export * from './client-topics.js';
export * from './sas.js';
export * from './json.js';
export * from './twin.js';
export * from './system-properties.js';
export * from './pki.js';
export * from './frame-guard.js';
