/**
 * IoT Hub wire names of system properties in an MQTT property bag (iotedge-protocols.md §3.3), and the names Kedge
 * stores and routes them under. A null-prototype object: a bag key such as `constructor` or `__proto__` is never
 * mistaken for a system property. Look names up with {@link systemPropertyName}, which checks own properties only.
 */
export const SYSTEM_PROPERTY_NAMES: Readonly<Record<string, string>> = Object.freeze(
  Object.assign(Object.create(null) as Record<string, string>, {
    '$.mid': 'messageId',
    '$.cid': 'correlationId',
    '$.uid': 'userId',
    '$.to': 'to',
    '$.exp': 'expiryTimeUtc',
    '$.ct': 'contentType',
    '$.ce': 'contentEncoding',
    '$.schema': 'messageSchema',
    '$.ctime': 'creationTimeUtc',
    '$.on': 'outputName',
    '$.ifid': 'interfaceId',
    '$.sub': 'componentName',
    'iothub-operation': 'operation',
    ack: 'ack',
  }),
);

/** The stored name of the system property sent on the wire as `wire`, or `undefined` (own properties only). */
export function systemPropertyName(wire: string, names: Readonly<Record<string, string>> = SYSTEM_PROPERTY_NAMES): string | undefined {
  return Object.prototype.hasOwnProperty.call(names, wire) ? names[wire] : undefined;
}

/**
 * Wire names of the system properties a hub sends to devices and modules (S→C, iotedge-protocols.md §3.4), by stored
 * name: {@link SYSTEM_PROPERTY_NAMES} without the inbound-only `$.on`/`$.ifid`, plus `$.cdid`/`$.cmid`, which the
 * sending hub sets from the authenticated sender.
 */
export const OUTBOUND_WIRE_NAMES: Readonly<Record<string, string>> = Object.freeze(
  Object.assign(Object.create(null) as Record<string, string>, {
    messageId: '$.mid',
    correlationId: '$.cid',
    userId: '$.uid',
    to: '$.to',
    expiryTimeUtc: '$.exp',
    contentType: '$.ct',
    contentEncoding: '$.ce',
    messageSchema: '$.schema',
    creationTimeUtc: '$.ctime',
    componentName: '$.sub',
    operation: 'iothub-operation',
    ack: 'ack',
    connectionDeviceId: '$.cdid',
    connectionModuleId: '$.cmid',
  }),
);

/**
 * Wire names of the system properties a device or module sends (C→S), by stored name: the inverse of
 * {@link SYSTEM_PROPERTY_NAMES}. What the edge hub uses when it forwards a message upstream on a child's behalf.
 */
export const INBOUND_WIRE_NAMES: Readonly<Record<string, string>> = Object.freeze(
  Object.assign(
    Object.create(null) as Record<string, string>,
    Object.fromEntries(Object.entries(SYSTEM_PROPERTY_NAMES).map(([wire, name]) => [name, wire])),
  ),
);
