// The light half of the public API: what a client of a running daemon needs (the CLI's commands), without
// loading libp2p. Importing it costs milliseconds; `index.ts` is the whole API.

export type { DeviceStatus } from './connections/connection.ts'
export type { DaemonStatus } from './daemon/daemon.ts'
export { DaemonClient, ensureDaemon, spawnDaemon } from './daemon/daemon-client.ts'
export { pidPath, socketPath } from './daemon/paths.ts'
export type { DropFileResult, DropProgress, DropResult, DropSummary } from './drop/api.ts'
export * from './errors.ts'
export type { DeviceSummary, NodeEvent } from './events.ts'
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
} from './inspect/trace.ts'
export { completeWord, nearestWords, parseCode } from './pairing/code.ts'
export type { PairResult, SessionEvent, SessionSummary } from './pairing/pairing-service.ts'
export { writeFileAtomic } from './store/atomic-file.ts'
