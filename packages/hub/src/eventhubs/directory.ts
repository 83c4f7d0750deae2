/** What `GET /kedge/eventhubs` serves about the Event Hubs-compatible endpoint. */
export interface EventHubsInfo {
  readonly name: string;
  /** `sb://{host}/` (with `:{port}` when AMQP is not on 5671). */
  readonly endpoint: string;
  readonly partitionCount: number;
  readonly partitionIds: readonly string[];
  readonly consumerGroups: readonly string[];
}

/** The endpoint's description and the connection strings of policies, for the route. */
export interface EventHubsDirectory {
  info(): EventHubsInfo | undefined;
  /** The Event Hubs connection string of `policy` (a policy with ServiceConnect). */
  connectionString(policy: string): string | undefined;
}
