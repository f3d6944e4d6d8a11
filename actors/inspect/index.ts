// Room `inspect/`: watching the machines run. It owns the inspector (`inspect.ts`: every actor, event and
// snapshot of a node as NDJSON in `<dataDir>/inspect.ndjson`, secrets stripped, optionally served to Stately's
// inspector on 127.0.0.1) and the reading side (`trace.ts`: formatting, following and replaying a trace against
// the machines). It talks to no other room: the composition root passes the inspector to the node's root actor,
// and the CLI reads traces through the light client API (`actors/client.ts`).
export {
  actorLabel,
  createInspector,
  type Inspector,
  type InspectorOptions,
  redact,
  SECRET_KEYS,
  type TraceEvent,
  type TraceLine,
} from './inspect.ts'
export * from './trace.ts'
