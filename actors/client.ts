// The light half of the public API: what a client of a running daemon needs (the CLI's commands), without
// loading libp2p. Importing it costs milliseconds; `index.ts` is the whole API.

export { writeFileAtomic } from './atomic-file.ts'
export { completeWord, nearestWords, parseCode } from './code.ts'
export type { DeviceStatus } from './connection-service.ts'
export type { DaemonStatus } from './daemon.ts'
export { DaemonClient, ensureDaemon, spawnDaemon } from './daemon-client.ts'
export * from './errors.ts'
export type { NodeEvent } from './events.ts'
export type { DeviceSummary, PairResult, SessionEvent, SessionSummary } from './pairing-service.ts'
export { pidPath, socketPath } from './paths.ts'
export {
  followTrace,
  formatState,
  formatTrace,
  inspectPath,
  parseTraceLine,
  type ReplayResult,
  readTrace,
  replayTrace,
  type TraceLine,
} from './trace.ts'
