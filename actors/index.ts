// sdnet's public API: what applications and the CLI may import. Everything else is internal.
export { completeWord, nearestWords, parseCode } from './code.ts'
export { type Daemon, type DaemonStatus, startDaemon } from './daemon.ts'
export { DaemonClient, ensureDaemon, spawnDaemon } from './daemon-client.ts'
export * from './errors.ts'
export { createIdentity, type Identity, loadIdentity } from './identity.ts'
export { createLogger, type Logger } from './logger.ts'
export {
  createNode,
  type DeviceRecord,
  identitySummary,
  type NodeOptions,
  type PairingHandle,
  type SdnetNode,
} from './node.ts'
export type { DeviceSummary, PairResult, SessionEvent, SessionSummary } from './pairing-service.ts'
export { TrustStore } from './trust-store.ts'
