import rhea from 'rhea';
import type { TelemetryRecord } from '../storage/store.js';

/** What IoT Hub stamps on an event about the identity that sent it. */
export interface SenderIdentity {
  readonly generationId: string;
  /** The identity's authentication type as stored (`sas`, `selfSigned`, `certificateAuthority`). */
  readonly authType: string;
}

/** IoT Hub's `iothub-connection-auth-method` annotation: JSON naming the scope and the credential type. */
function authMethod(moduleId: string, authType: string): string {
  const type = authType === 'sas' ? 'sas' : 'x509Certificate';
  return JSON.stringify({ scope: moduleId ? 'module' : 'device', type, issuer: 'iothub', acceptingIpFilterRule: null });
}

/**
 * One stored telemetry message as the Event Hubs-compatible endpoint delivers it: the body as one data section,
 * the properties and application properties as the device sent them, IoT Hub's `iothub-*` annotations and Event
 * Hubs' `x-opt-*` ones (`x-opt-offset` is the sequence number's text: see docs/hub.md).
 */
export function eventMessage(r: TelemetryRecord & { readonly sequenceNumber: number }, identity: SenderIdentity | undefined): rhea.Message {
  const sys = r.systemProperties;
  const enqueued = new Date(r.enqueuedTime);
  const annotations: Record<string, unknown> = {
    'iothub-connection-device-id': r.deviceId,
    ...(r.moduleId ? { 'iothub-connection-module-id': r.moduleId } : {}),
    ...(identity ? { 'iothub-connection-auth-method': authMethod(r.moduleId, identity.authType), 'iothub-connection-auth-generation-id': identity.generationId } : {}),
    'iothub-enqueuedtime': enqueued,
    'iothub-message-source': 'Telemetry',
    'x-opt-sequence-number': rhea.types.wrap_long(r.sequenceNumber),
    'x-opt-offset': String(r.sequenceNumber),
    'x-opt-enqueued-time': enqueued,
  };
  return {
    ...(sys['messageId'] === undefined ? {} : { message_id: sys['messageId'] }),
    ...(sys['correlationId'] === undefined ? {} : { correlation_id: sys['correlationId'] }),
    ...(sys['contentType'] === undefined ? {} : { content_type: sys['contentType'] }),
    ...(sys['contentEncoding'] === undefined ? {} : { content_encoding: sys['contentEncoding'] }),
    ...(sys['userId'] === undefined ? {} : { user_id: sys['userId'] }),
    message_annotations: annotations,
    application_properties: { ...r.properties },
    body: rhea.message.data_section(r.body) as unknown,
  };
}
