// sdnet's public API: what applications and the CLI may import. Everything else is internal.
// `client.ts` is its light half (talking to a running daemon) and is re-exported here.
export * from './client.ts'
export { type Daemon, startDaemon } from './daemon/index.ts'
export type * from './drop/api.ts'
export {
  createInspector,
  type Inspector,
  type InspectorOptions,
  redact,
  SECRET_KEYS,
} from './inspect/index.ts'
export { createLogger, type Logger } from './logger.ts'
export {
  createNode,
  identitySummary,
  type NodeOptions,
  type PairingHandle,
  type SdnetNode,
} from './node.ts'
export { createIdentity, type Identity, loadIdentity, TrustStore } from './store/index.ts'
