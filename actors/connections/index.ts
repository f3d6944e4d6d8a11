// Room `connections/`: the connection to each paired device, once it is paired (ARCHITECTURE.md "Connections
// between paired devices"). It owns the I/O shell of the `conn:<deviceId>` and session-key machines: the service
// (connection-service.ts, what the public API calls), the link keeper (links.ts: dialling, inbound links, one
// link per pair, the handshake and re-keys), the messenger (messenger.ts: the sealed-message RPC: ping, send,
// request, handlers, revocation, with batching in outbox.ts) and liveness (liveness.ts). Its crypto cores are
// I/O-free: session-crypto.ts (the signed X25519 exchange and HKDF key schedule) and sealed-channel.ts
// (ChaCha20-Poly1305 frames and the replay window). It talks to the node machine (spawning and feeding
// `conn:<deviceId>`), to libp2p through `transport/`, and reads and updates paired devices in `store/`.
export {
  type ConnectionOptions,
  type ConnectionState,
  DEFAULT_CONNECTION_OPTIONS,
  type DeviceStatus,
  type IncomingMessage,
  type MessageHandler,
} from './connection.ts'
export { ConnectionService } from './connection-service.ts'
