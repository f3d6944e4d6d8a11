// What the pieces of the connection room share: the options, the public status types, and the `Connection`
// record that holds everything about one paired device's connection that is not machine state (the link, its
// keys, the messages waiting on it). The service owns the records; the link keeper and the messenger read and
// write them, and tell the machines what happened through `forward`.
import type { AnyActorRef } from 'xstate'
import type { ConnectionInput } from '../../machines/connection.machine.ts'
import type { SdnetLibp2p } from '../../transport/libp2p-node.ts'
import type { Link } from '../../transport/link.ts'
import type { LinkFrame, OutgoingMessage, SealedMessage } from '../../transport/msg-codec.ts'
import type { EventBus } from '../events.ts'
import type { Logger } from '../logger.ts'
import type { Identity, PairedDevice, TrustStore } from '../store/index.ts'
import type { Outbox } from './outbox.ts'
import type { SealedChannel } from './sealed-channel.ts'
import type { Handshake, HandshakeIdentity, Rekey, SessionKeys } from './session-crypto.ts'

export interface ConnectionOptions {
  /** Re-key after this many frames sent in one epoch (and after `timeouts.rekeyInterval` in any case). */
  rekeyAfterFrames: number
  timeouts: ConnectionInput['timeouts']
  /** How long `request()` waits for the answer by default. */
  requestTimeout: number
  /** Keepalive ping after `keepaliveMs` without hearing from the peer; the link is lost after `silenceMs`. */
  liveness: { keepaliveMs: number; silenceMs: number }
}

export const DEFAULT_CONNECTION_OPTIONS: ConnectionOptions = {
  rekeyAfterFrames: 1_000_000,
  timeouts: {
    dial: 5_000,
    handshake: 5_000,
    backoffBase: 250,
    backoffCap: 10_000,
    rekey: 10_000,
    rekeyInterval: 24 * 3600_000,
  },
  requestTimeout: 10_000,
  liveness: { keepaliveMs: 500, silenceMs: 1_500 },
}

export type ConnectionState = 'connected' | 'connecting' | 'reconnecting' | 'offline'

export interface DeviceStatus {
  id: string
  name: string
  fingerprint: string
  peerId: string
  pairedAt: number
  state: ConnectionState
  rttMs: number | null
  lastSeen: number | null
  /** Sealed frames dropped since the daemon started: replayed or reordered, and tampered (bad tag). */
  rejected: { replayed: number; tampered: number }
}

export interface IncomingMessage {
  deviceId: string
  name: string
  protocol: string
  body: Uint8Array
}

/** A protocol handler: its return value (for a request) is the response body. */
export type MessageHandler = (
  message: IncomingMessage,
) => Uint8Array | string | undefined | Promise<Uint8Array | string | undefined>

export interface ConnectionServiceInit {
  libp2p: SdnetLibp2p
  identity: Identity
  store: TrustStore
  node: {
    send(event: { type: string; [key: string]: unknown }): void
    child(id: string): AnyActorRef | undefined
  }
  events: EventBus
  log: Logger
  options: ConnectionOptions
  /**
   * Fault injection for tests that play the attacker: rewrites each outgoing link frame into the frames actually
   * written (duplicate one to replay it, flip a byte to tamper with it). Never set in production.
   */
  rewriteOutgoing?: (frame: LinkFrame) => LinkFrame[]
  now?: () => number
}

/** What the service hands to the link keeper and the messenger. */
export interface ConnectionContext {
  init: ConnectionServiceInit
  now: () => number
  /** Our side of every handshake: the device key and the peer id Noise authenticates. */
  me: HandshakeIdentity
  byId: ReadonlyMap<string, Connection>
  byPeer: ReadonlyMap<string, Connection>
  /** Hands an event to the device's `conn:<deviceId>` machine, through the node machine. */
  forward(conn: Connection, event: { type: string; [key: string]: unknown }): void
}

/** A message waiting for a re-key to end; its sender learns whether it went out. */
export interface Held {
  message: OutgoingMessage
  resolve: () => void
  reject: (err: Error) => void
}

/** A request or ping waiting for its answer (`res`/`err` or `pong` with the same id). */
export interface Waiter {
  resolve: (reply: SealedMessage) => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

/** Everything about one paired device's connection that is not machine state: the link, keys and waiters. */
export interface Connection {
  device: PairedDevice
  ref: AnyActorRef
  keysRef?: AnyActorRef
  state: string
  link?: Link
  role?: 'opener' | 'acceptor'
  handshake?: Handshake
  keys?: SessionKeys
  channel?: SealedChannel
  rekey?: Rekey
  /** Between our `rekey` and the peer's `rekeyAck`, messages wait here (the peer switches keys at its ack). */
  held?: Held[]
  /** Resolved when a re-key in flight ends (keys installed or link dropped). */
  rekeySettled?: { promise: Promise<void>; resolve: () => void }
  /** performance.now() when we last sealed a frame: a side that has sent nothing for a while sends a keepalive. */
  sentAt: number
  /**
   * Messages written after the first one in the same turn of the event loop: sealed together as one `batch`
   * frame when the turn ends, so a burst of small messages pays for one seal instead of one each.
   */
  outbox?: Outbox
  rekeyReported: boolean
  rejected: { replayed: number; tampered: number }
  rttMs?: number
  lastSeen?: number
  nextId: number
  waiters: Map<number, Waiter>
  dialing?: boolean
  /** Aborts the dial in flight when an inbound link is adopted instead. */
  dialAbort?: AbortController
  /** performance.now() when a frame last arrived, and when we last sent a keepalive ping. */
  heardAt: number
  keepaliveAt: number
  /** The link whose sealed frames are being read. */
  reading?: Link
  revoked?: Promise<void>
  resolveRevoked?: () => void
}

/** An effect emitted by a `conn:<deviceId>` machine or its `keys` child. */
export type Effect = { type: string; epoch?: number; peerId?: string }

/** The state `devices()` shows, from the connection machine's state value. */
export function publicState(state: string | undefined): ConnectionState {
  if (state === undefined) return 'offline'
  if (state.includes('Connected')) return 'connected'
  if (state.includes('Handshaking') || state === 'Dialing') return 'connecting'
  if (state === 'Reconnecting') return 'reconnecting'
  return 'offline'
}
