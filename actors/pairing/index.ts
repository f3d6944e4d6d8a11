// Room `pairing/`: pairing two devices with a 12-word code (ARCHITECTURE.md "Pairing protocol"). It owns the
// pairing service (the I/O shell of the `pair:<sessionId>` initiator and joiner machines and of
// `/sdnet/pair/1.0.0`), its I/O-free crypto core (`pairing-crypto.ts`: key derivation, transcript, proofs,
// comparison number), the code's BIP39 helpers (`code.ts`) and the rate limit on bad proofs. It talks to the
// node machine (spawning and feeding sessions), to libp2p through `transport/`, and to the trust store (`store/`),
// where a paired device is written; the composition root wires it and hands paired devices on to `connections/`.
export { completeWord, generateCode, nearestWords, parseCode } from './code.ts'
export {
  DEFAULT_PAIRING_TIMEOUTS,
  failureMessage,
  type NodeActorPort,
  PairingService,
  type PairingServiceInit,
  type PairingTimeouts,
  type PairResult,
  type SessionEvent,
  type SessionSummary,
} from './pairing-service.ts'
export { DEFAULT_RATE_LIMIT, PairingRateLimiter, type RateLimitOptions } from './rate-limit.ts'
