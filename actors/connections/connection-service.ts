// The I/O shell around the connection and session-key machines (ARCHITECTURE.md "Connections between paired
// devices"): one `conn:<deviceId>` actor per paired device, one `/sdnet/msg/1.0.0` link under it. This module turns
// link frames into machine events and the machines' effects into frames, holds every key, and runs the sealed
// message protocol (ping, one-way messages, request/response, revocation, re-keys) for the public API.
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { concatBytes } from '@noble/hashes/utils.js'
import type { AnyActorRef } from 'xstate'
import type { ConnectionInput } from '../machines/connection.machine.ts'
import type { SdnetLibp2p } from '../transport/libp2p-node.ts'
import { handleLinks, type Link, openLink } from '../transport/link.ts'
import {
  decodeSealedMessage,
  EncodedBodies,
  encodeSealedMessageParts,
  type LinkFrame,
  MAX_BATCH_MESSAGES,
  MAX_BODY_BYTES,
  type OutgoingMessage,
  type SealedErrorCode,
  type SealedMessage,
} from '../transport/msg-codec.ts'
import {
  AmbiguousDeviceError,
  DeviceNotConnectedError,
  InvalidProtocolNameError,
  MessageTooLargeError,
  RemoteError,
  RequestTimeoutError,
  UnknownDeviceError,
} from './errors.ts'
import type { EventBus } from './events.ts'
import type { Identity } from './identity.ts'
import type { Logger } from './logger.ts'
import {
  Handshake,
  type HandshakeIdentity,
  Rekey,
  SealedChannel,
  type SessionKeys,
} from './session-crypto.ts'
import type { PairedDevice, TrustStore } from './trust-store.ts'

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

const PROTOCOL_NAME = /^[A-Za-z0-9._/-]{1,64}$/
/** An outbox this large is sealed at once rather than at the end of the turn (and its writer waits for it). */
const BATCH_FLUSH_BYTES = 64 * 1024
/** Messages larger than this are sealed on their own. */
const BATCH_ALONE_BYTES = 16 * 1024
/** Messages queued while a link is re-keying or not yet up; past this, sending fails instead of growing memory. */
const MAX_QUEUED_MESSAGES = 4096

/** A message waiting for a re-key to end; its sender learns whether it went out. */
interface Held {
  message: OutgoingMessage
  resolve: () => void
  reject: (err: Error) => void
}

/** Messages gathering for one sealed `batch`. */
interface Outbox {
  link: Link
  messages: OutgoingMessage[]
  /** The last entry when it is a run of one-way messages: the next message of its protocol joins it. */
  run: { t: 'msgs'; protocol: string; bodies: EncodedBodies } | undefined
  /** Messages, counting each one of a run. */
  count: number
  bytes: number
  /** Where queued bodies are copied to (runs, copyBody), and how much of it is used. */
  slab: Uint8Array
  slabUsed: number
  flushed: Promise<void>
  flush: () => void
}

const SENT: Promise<void> = Promise.resolve()
/** Queued bodies are copied into slabs of this size: an outbox is flushed at 64 KiB, so one slab mostly does. */
const SLAB_BYTES = 80 * 1024
/** The most a CBOR byte string's head takes. */
const MAX_BYTES_HEAD = 9

/** A request or ping waiting for its answer (`res`/`err` or `pong` with the same id). */
interface Waiter {
  resolve: (reply: SealedMessage) => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

/** Everything about one paired device's connection that is not machine state: the link, keys and waiters. */
interface Connection {
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

export class ConnectionService {
  readonly #init: ConnectionServiceInit
  readonly #now: () => number
  readonly #byId = new Map<string, Connection>()
  readonly #byPeer = new Map<string, Connection>()
  readonly #handlers = new Map<string, MessageHandler>()
  readonly #me: HandshakeIdentity

  constructor(init: ConnectionServiceInit) {
    this.#init = init
    this.#now = init.now ?? Date.now
    this.#me = { seed: init.identity.seed, peerIdBytes: init.libp2p.peerId.toMultihash().bytes }
  }

  #liveness?: NodeJS.Timeout

  /**
   * Notices a device that went silent (frozen, unplugged) faster than TCP would: every link that has not carried a
   * frame for `keepaliveMs` sends a sealed ping, and one silent for `silenceMs` is dropped so it reconnects.
   * A tick that comes late means our own event loop stalled, not the peer: that tick checks nothing.
   */
  #watchLiveness(): void {
    const { keepaliveMs, silenceMs } = this.#init.options.liveness
    const every = Math.max(50, Math.floor(keepaliveMs / 2))
    let last = performance.now()
    this.#liveness = setInterval(() => {
      const now = performance.now()
      const late = now - last > every * 3
      last = now
      if (late) return
      for (const conn of this.#byId.values()) {
        const link = conn.link
        if (link === undefined || conn.channel === undefined || conn.reading !== link) continue
        const silent = now - conn.heardAt
        if (silent > silenceMs) {
          this.#init.log.info({ device: conn.device.id, silentMs: Math.round(silent) }, 'device went silent')
          link.abort(new Error(`no frame from ${conn.device.name} for ${Math.round(silent)} ms`))
          this.#lost(conn, link)
        } else if (now - conn.sentAt > keepaliveMs && now - conn.keepaliveAt > keepaliveMs) {
          // Keepalives go out when *we* have been quiet, so a peer that only receives (a bulk transfer towards it)
          // still talks back on the uncongested direction.
          conn.keepaliveAt = now
          void this.#sendMessage(conn, { t: 'ping', id: 0 }).catch(() => {})
        }
      }
    }, every)
    this.#liveness.unref()
  }

  async start(): Promise<void> {
    // Only a paired device may open the link: anyone else's stream is reset before a byte is read.
    await handleLinks(
      this.#init.libp2p,
      (peer) => {
        const known = this.#byPeer.has(peer.toString())
        if (!known)
          this.#init.log.warn({ peer: peer.toString() }, 'refused a link from a device that is not paired')
        return known
      },
      (link) => this.#onInbound(link),
    )
    for (const device of this.#init.store.list()) this.add(device)
    this.#watchLiveness()
  }

  /** Starts (or refreshes) the connection to a paired device: at start, and when a pairing completes. */
  add(device: PairedDevice): void {
    const existing = this.#byId.get(device.id)
    if (existing !== undefined) {
      existing.device = device
      return
    }
    this.#init.node.send({
      type: 'cmd.connectDevice',
      deviceId: device.id,
      peerId: device.peerId,
      jitterSeed: randomBytes(4).readUInt32BE(0),
    })
    const ref = this.#init.node.child(`conn:${device.id}`)
    if (ref === undefined) throw new Error(`the node did not start a connection actor for ${device.id}`)
    const conn: Connection = {
      device,
      ref,
      state: 'Disconnected',
      rekeyReported: false,
      rejected: { replayed: 0, tampered: 0 },
      heardAt: 0,
      keepaliveAt: 0,
      sentAt: 0,
      nextId: 1,
      waiters: new Map(),
    }
    this.#byId.set(device.id, conn)
    this.#byPeer.set(device.peerId, conn)
    ref.on('*', (effect: Effect) => this.#onEffect(conn, effect))
    ref.subscribe({
      next: (snapshot: {
        value: unknown
        status: string
        output?: unknown
        children: Record<string, AnyActorRef>
      }) => this.#onSnapshot(conn, snapshot),
      error: (err: unknown) => this.#init.log.error({ err, device: device.id }, 'connection actor crashed'),
    })
    this.#forward(conn, { type: 'cmd.connect' })
  }

  stop(): void {
    clearInterval(this.#liveness)
    for (const conn of this.#byId.values()) this.#dropLink(conn, new Error('the node is stopping'))
  }

  handle(protocol: string, handler: MessageHandler): () => void {
    checkProtocol(protocol)
    this.#handlers.set(protocol, handler)
    return () => {
      if (this.#handlers.get(protocol) === handler) this.#handlers.delete(protocol)
    }
  }

  devices(): DeviceStatus[] {
    return this.#init.store.list().map((device) => {
      const conn = this.#byId.get(device.id)
      return {
        id: device.id,
        name: device.name,
        fingerprint: device.fingerprint,
        peerId: device.peerId,
        pairedAt: device.pairedAt,
        state: publicState(conn?.state),
        rttMs: conn?.rttMs ?? null,
        lastSeen: conn?.lastSeen ?? null,
        rejected: { ...(conn?.rejected ?? { replayed: 0, tampered: 0 }) },
      }
    })
  }

  /** Finds a paired device by id, unique id prefix or name (case-insensitive). */
  resolve(query: string): PairedDevice {
    const live = this.#byId.get(query)
    if (live !== undefined) return live.device
    const devices = this.#init.store.list()
    const exact = devices.find((d) => d.id === query)
    if (exact !== undefined) return exact
    const byPrefix = devices.filter((d) => query.length >= 4 && d.id.startsWith(query.toLowerCase()))
    const byName = devices.filter((d) => d.name.toLowerCase() === query.toLowerCase())
    const matches = [...new Set([...byPrefix, ...byName])]
    if (matches.length === 1) return matches[0]!
    const describe = (d: PairedDevice) => `${d.name} (${d.id.slice(0, 8)})`
    if (matches.length > 1) throw new AmbiguousDeviceError(query, matches.map(describe))
    throw new UnknownDeviceError(query, devices.map(describe))
  }

  /**
   * Resolves once the message is queued on the link: at once, unless the link is backed up or has sent 1 MiB since
   * the event loop last turned (then after a turn).
   */
  send(query: string, protocol: string, body: Uint8Array): Promise<void> {
    // Not async: on the fast path (queued in this turn's outbox) it allocates no promise of its own.
    try {
      checkProtocol(protocol)
      checkBody(body)
      const conn = this.#connected(query)
      // The common case under load: the body joins the run of its protocol that this turn's outbox holds.
      const outbox = conn.outbox
      if (
        conn.held === undefined &&
        outbox !== undefined &&
        outbox.link === conn.link &&
        body.byteLength + 3 <= BATCH_ALONE_BYTES &&
        joinRun(outbox, protocol, body)
      ) {
        return queued(outbox)
      }
      return this.#sendMessage(conn, { t: 'msg', protocol, body })
    } catch (err) {
      return Promise.reject(err)
    }
  }

  async request(query: string, protocol: string, body: Uint8Array, timeoutMs?: number): Promise<Uint8Array> {
    checkProtocol(protocol)
    checkBody(body)
    const conn = this.#connected(query)
    const id = conn.nextId++
    const wait = timeoutMs ?? this.#init.options.requestTimeout
    const reply = await this.#ask(conn, { t: 'req', id, protocol, body }, protocol, wait)
    if (reply.t === 'err') throw new RemoteError(conn.device.name, reply.code, reply.message)
    return reply.t === 'res' ? reply.body : new Uint8Array()
  }

  /** One ping over the sealed link; resolves with the round-trip time in milliseconds. */
  async ping(query: string, timeoutMs = 5_000): Promise<number> {
    const conn = this.#connected(query)
    const sentAt = performance.now()
    await this.#ask(conn, { t: 'ping', id: conn.nextId++ }, 'ping', timeoutMs)
    conn.rttMs = performance.now() - sentAt
    return conn.rttMs
  }

  /** Sends `message` and waits, at most `timeoutMs`, for the answer with its id; link loss rejects it too. */
  async #ask(
    conn: Connection,
    message: Extract<SealedMessage, { t: 'req' | 'ping' }>,
    what: string,
    timeoutMs: number,
  ): Promise<SealedMessage> {
    const { id } = message
    const answer = new Promise<SealedMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        conn.waiters.delete(id)
        reject(new RequestTimeoutError(conn.device.name, what, timeoutMs))
      }, timeoutMs)
      conn.waiters.set(id, { resolve, reject, timer })
    })
    try {
      await this.#sendMessage(conn, message)
    } catch (err) {
      clearTimeout(conn.waiters.get(id)?.timer)
      conn.waiters.delete(id)
      answer.catch(() => {})
      throw err
    }
    return answer
  }

  /**
   * Removes the trust on this side, tells the peer when connected, and closes the link; a later link from it is
   * refused. Returns false when the device was not paired (already revoked): running it twice is harmless.
   */
  async revoke(query: string): Promise<{ deviceId: string; notified: boolean } | false> {
    let device: PairedDevice
    try {
      device = this.resolve(query)
    } catch (err) {
      if ((err as Error).name === 'UnknownDeviceError') return false
      throw err
    }
    const conn = this.#byId.get(device.id)
    if (conn === undefined) {
      await this.#init.store.remove(device.id)
      return { deviceId: device.id, notified: false }
    }
    // A revoke sealed while our re-key is in flight would reach a peer that already switched keys: let it end.
    if (conn.rekeySettled !== undefined)
      await withTimeout(conn.rekeySettled.promise, this.#init.options.timeouts.rekey)
    const notified = conn.state.includes('Connected') && conn.link !== undefined
    if (conn.ref.getSnapshot().status !== 'active') {
      await this.#init.store.remove(device.id)
      return { deviceId: device.id, notified: false }
    }
    conn.revoked ??= new Promise<void>((resolve) => {
      conn.resolveRevoked = resolve
    })
    this.#forward(conn, { type: 'cmd.revoke' })
    // The connection ends at once when the node runs; if it does not (the node is stopping), the trust is
    // removed here all the same, so a revoke never waits forever and never leaves the device trusted.
    if (!(await withTimeout(conn.revoked, 5_000))) await this.#init.store.remove(device.id)
    return { deviceId: device.id, notified }
  }

  #connected(query: string): Connection {
    const device = this.resolve(query)
    const conn = this.#byId.get(device.id)
    if (conn?.channel === undefined || conn.link === undefined) {
      throw new DeviceNotConnectedError(device.name, publicState(conn?.state))
    }
    return conn
  }

  #forward(conn: Connection, event: { type: string; [key: string]: unknown }): void {
    this.#init.node.send({ type: 'device.forward', deviceId: conn.device.id, event })
  }

  #onSnapshot(
    conn: Connection,
    snapshot: { value: unknown; status: string; output?: unknown; children: Record<string, AnyActorRef> },
  ): void {
    conn.state = typeof snapshot.value === 'string' ? snapshot.value : JSON.stringify(snapshot.value)
    if (snapshot.status === 'done') void this.#onRevoked(conn, snapshot.output as { by: 'local' | 'peer' })
  }

  async #onRevoked(conn: Connection, output: { by: 'local' | 'peer' }): Promise<void> {
    this.#dropLink(conn, new Error('the device was revoked'))
    this.#byId.delete(conn.device.id)
    this.#byPeer.delete(conn.device.peerId)
    this.#init.node.send({ type: 'cmd.forgetDevice', deviceId: conn.device.id })
    try {
      await this.#init.store.remove(conn.device.id)
    } catch (err) {
      this.#init.log.error(
        { err, device: conn.device.id },
        'could not remove a revoked device from the store',
      )
    }
    this.#init.events.emit({
      type: 'DeviceRevoked',
      deviceId: conn.device.id,
      name: conn.device.name,
      by: output.by,
    })
    conn.resolveRevoked?.()
  }

  // Effects of conn:<deviceId> (ARCHITECTURE.md "connection.machine.ts").
  #onEffect(conn: Connection, effect: Effect): void {
    this.#init.log.debug({ device: conn.device.id, effect: effect.type }, 'connection effect')
    switch (effect.type) {
      case 'dial':
        void this.#dial(conn)
        return
      case 'openHandshake':
        conn.handshake = Handshake.open(this.#me, this.#peer(conn))
        this.#watchKeys(conn)
        return
      case 'acceptHandshake':
        conn.handshake = Handshake.accept(this.#me, this.#peer(conn))
        this.#watchKeys(conn)
        void this.#readHello(conn)
        return
      case 'closeLink':
        this.#dropLink(conn, new Error('the link was closed'))
        return
      case 'sendRevoke':
        if (conn.channel !== undefined && conn.link !== undefined) {
          // Sealed under the current keys, flushed, then the link closes: the peer learns it before we go. The
          // link is detached first so that `closeLink`, which follows, does not reset it before the frame leaves.
          const link = conn.link
          const written = this.#writeSealed(conn, link, { t: 'revoke' })
          conn.link = undefined
          void written.then(() => link.close()).catch(() => link.abort(new Error('revoked')))
        }
        return
      case 'announceConnected':
        conn.lastSeen = this.#now()
        this.#init.events.emit({
          type: 'ConnectionEstablished',
          deviceId: conn.device.id,
          name: conn.device.name,
        })
        void this.#rememberAddresses(conn)
        return
      case 'announceLost':
        this.#init.events.emit({ type: 'ConnectionLost', deviceId: conn.device.id, name: conn.device.name })
        return
      default:
        this.#init.log.warn({ effect: effect.type }, 'unknown effect from a connection machine')
    }
  }

  /**
   * Subscribes to the `keys` child that the connection invokes in the same step as these effects. XState runs the
   * effects before it starts the child, so the child exists (in the new snapshot) but has not emitted anything yet:
   * subscribing here catches the opener's `sendHello`, which the child emits as it starts.
   */
  #watchKeys(conn: Connection): void {
    const keys = conn.ref.getSnapshot().children.keys as AnyActorRef | undefined
    if (keys === undefined || keys === conn.keysRef) return
    conn.keysRef = keys
    keys.on('*', (effect: Effect) => this.#onKeyEffect(conn, effect))
  }

  // Effects of the `keys` child (ARCHITECTURE.md "session-key.machine.ts").
  #onKeyEffect(conn: Connection, effect: Effect): void {
    const link = conn.link
    if (link === undefined) return
    switch (effect.type) {
      case 'sendHello':
        if (conn.handshake === undefined) return
        void link.write({ t: 'hello', v: 1, ...conn.handshake.hello() }).catch(() => {})
        void this.#readWelcome(conn, link)
        return
      case 'sendWelcome':
        if (conn.handshake === undefined) return
        void link.write({ t: 'welcome', v: 1, ...conn.handshake.welcome() }).catch(() => {})
        return
      case 'installKeys':
        this.#installKeys(conn, link, effect.epoch ?? 0)
        return
      case 'sendRekey':
        if (conn.keys === undefined) return
        // What this turn queued goes out first, under the current keys: everything after the `rekey` frame
        // waits for the new ones, in the order it was sent.
        conn.outbox?.flush()
        conn.rekey = Rekey.open(this.#me, this.#peer(conn), conn.keys)
        void this.#writeSealed(conn, link, { t: 'rekey', ...conn.rekey.rekey() }).catch(() => {})
        conn.held ??= []
        if (conn.rekeySettled === undefined) {
          const settled = Promise.withResolvers<void>()
          conn.rekeySettled = { promise: settled.promise, resolve: () => settled.resolve() }
        }
        return
      case 'sendRekeyAck':
        if (conn.rekey === undefined) return
        void this.#writeSealed(conn, link, { t: 'rekeyAck', ...conn.rekey.rekeyAck() }).catch(() => {})
        return
      default:
        this.#init.log.warn({ effect: effect.type }, 'unknown effect from a session-key machine')
    }
  }

  #peer(conn: Connection) {
    return {
      peerIdBytes: peerIdFromString(conn.device.peerId).toMultihash().bytes,
      publicKey: conn.device.publicKey,
    }
  }

  async #dial(conn: Connection): Promise<void> {
    if (conn.link !== undefined || conn.dialing) return
    conn.dialing = true
    const abort = new AbortController()
    conn.dialAbort = abort
    const id = peerIdFromString(conn.device.peerId)
    let link: Link
    try {
      // The stored addresses are where the device was last seen; mDNS adds where it is now.
      const stored = conn.device.addresses.flatMap((a) => {
        try {
          return [multiaddr(a)]
        } catch {
          return []
        }
      })
      if (stored.length > 0) await this.#init.libp2p.peerStore.merge(id, { multiaddrs: stored })
      link = await openLink(this.#init.libp2p, id, {
        timeoutMs: this.#init.options.timeouts.dial,
        signal: abort.signal,
      })
    } catch (err) {
      conn.dialing = false
      if (conn.link === undefined && !abort.signal.aborted) {
        this.#forward(conn, {
          type: 'link.dialFailed',
          peerId: conn.device.peerId,
          message: (err as Error).message,
        })
      }
      return
    }
    conn.dialing = false
    if (conn.link !== undefined || !this.#byId.has(conn.device.id) || conn.state !== 'Dialing') {
      // The peer's link was taken while we dialled (see #onInbound), the device was revoked, or the machine gave
      // up on this dial (its own timer) and moved on: ours is surplus.
      void link.close()
      return
    }
    this.#adopt(conn, link, 'opener')
    this.#forward(conn, { type: 'link.up', peerId: conn.device.peerId })
  }

  /**
   * One link per device pair (ARCHITECTURE.md). When both devices dial at once, the link opened by the lower peer
   * id wins, decided the same way on both sides: the lower side refuses the inbound link while its own is pending,
   * the higher side gives its own up for the inbound one. While a link is established, a new inbound one is
   * refused: if the peer really lost the old one (it froze, the cable came back), our liveness check notices
   * within `silenceMs` and the peer's next attempt gets through; a restarted peer's old TCP connection closes at
   * once.
   */
  #onInbound(link: Link): void {
    const conn = this.#byPeer.get(link.remotePeer.toString())
    if (conn === undefined) {
      link.abort(new Error('not a paired device'))
      return
    }
    const established = conn.channel !== undefined
    const ownPending = conn.dialing || (conn.role === 'opener' && !established)
    if (established || (ownPending && this.#init.libp2p.peerId.toString() < conn.device.peerId)) {
      void link.close()
      return
    }
    conn.dialAbort?.abort()
    if (conn.link !== undefined) {
      this.#dropLink(conn, new Error('replaced by a newer link'))
      this.#forward(conn, { type: 'link.lost', peerId: conn.device.peerId })
    }
    this.#adopt(conn, link, 'acceptor')
    this.#forward(conn, { type: 'link.inbound', peerId: conn.device.peerId })
  }

  #adopt(conn: Connection, link: Link, role: 'opener' | 'acceptor'): void {
    conn.link = link
    conn.role = role
    void link.closed.then(() => {
      // Once keys are installed the read loop owns the end of the link: it first delivers what is still queued
      // (a `revoke`, say), then reports the loss.
      if (conn.link !== link || conn.reading === link) return
      this.#lost(conn, link)
    })
  }

  #lost(conn: Connection, link: Link): void {
    if (conn.link !== link) return
    this.#dropLink(conn, new Error('the link was lost'))
    this.#forward(conn, { type: 'link.lost', peerId: conn.device.peerId })
  }

  /** Forgets the link and its keys; waiters fail with a reason a user can act on. */
  #dropLink(conn: Connection, reason: Error): void {
    const link = conn.link
    conn.link = undefined
    conn.role = undefined
    conn.handshake = undefined
    conn.channel = undefined
    conn.keys = undefined
    conn.rekey = undefined
    const held = conn.held ?? []
    conn.held = undefined
    conn.outbox = undefined
    link?.abort(reason)
    const lost = new DeviceNotConnectedError(conn.device.name, 'reconnecting')
    for (const entry of held) entry.reject(lost)
    conn.rekeySettled?.resolve()
    conn.rekeySettled = undefined
    for (const waiter of conn.waiters.values()) {
      clearTimeout(waiter.timer)
      waiter.reject(lost)
    }
    conn.waiters.clear()
  }

  async #readHello(conn: Connection): Promise<void> {
    const link = conn.link
    const handshake = conn.handshake
    if (link === undefined || handshake === undefined) return
    const frame = await link.read({ timeoutMs: this.#init.options.timeouts.handshake }).catch(() => undefined)
    if (conn.link !== link || frame === undefined) return
    const ok = frame.t === 'hello' && handshake.verifyHello(frame)
    this.#forward(conn, { type: ok ? 'peer.helloVerified' : 'peer.badSignature', peerId: conn.device.peerId })
  }

  async #readWelcome(conn: Connection, link: Link): Promise<void> {
    const handshake = conn.handshake
    if (handshake === undefined) return
    const frame = await link.read({ timeoutMs: this.#init.options.timeouts.handshake }).catch(() => undefined)
    if (conn.link !== link || frame === undefined) return
    const ok = frame.t === 'welcome' && handshake.verifyWelcome(frame)
    this.#forward(conn, {
      type: ok ? 'peer.welcomeVerified' : 'peer.badSignature',
      peerId: conn.device.peerId,
    })
  }

  #installKeys(conn: Connection, link: Link, epoch: number): void {
    if (epoch === 0) {
      if (conn.handshake === undefined) return
      conn.keys = conn.handshake.keys()
      conn.channel = new SealedChannel(conn.keys)
      conn.handshake = undefined
      conn.heardAt = performance.now()
      void this.#readLoop(conn, link)
    } else {
      if (conn.rekey === undefined || conn.channel === undefined) return
      conn.keys = conn.rekey.keys()
      conn.channel.install(conn.keys)
      conn.rekey = undefined
    }
    conn.rekeyReported = false
    const held = conn.held ?? []
    conn.held = undefined
    conn.rekeySettled?.resolve()
    conn.rekeySettled = undefined
    for (const entry of held) this.#sendMessage(conn, entry.message).then(entry.resolve, entry.reject)
  }

  /**
   * Seals one message under the current keys and queues it on `link`. Only then is the frame count reported: a
   * re-key it triggers must go out *after* this frame, which the peer still opens with the old keys.
   */
  #writeSealed(conn: Connection, link: Link, message: OutgoingMessage): Promise<void> {
    const channel = conn.channel!
    const { n, ct } = channel.sealParts(encodeSealedMessageParts(message))
    conn.sentAt = performance.now()
    const rewrite = this.#init.rewriteOutgoing
    const written =
      rewrite === undefined
        ? link.write({ t: 'sealed', n, ct })
        : link.writeMany(rewrite({ t: 'sealed', n, ct: concatBytes(...ct) }))
    if (!conn.rekeyReported && channel.sent >= this.#init.options.rekeyAfterFrames) {
      conn.rekeyReported = true
      this.#forward(conn, { type: 'keys.framesSent', count: channel.sent })
    }
    return written
  }

  /** Settles once `message` is queued on the link, or waiting for a re-key to end; never throws. */
  #sendMessage(conn: Connection, message: OutgoingMessage): Promise<void> {
    const held = conn.held
    if (held !== undefined) {
      if (held.length >= MAX_QUEUED_MESSAGES) {
        return Promise.reject(new DeviceNotConnectedError(conn.device.name, 're-keying'))
      }
      // Settled when the re-key ends: sent under the new keys, or rejected if the link went down meanwhile.
      return new Promise<void>((resolve, reject) => held.push({ message, resolve, reject }))
    }
    const link = conn.link
    if (link === undefined || conn.channel === undefined) {
      return Promise.reject(new DeviceNotConnectedError(conn.device.name, publicState(conn.state)))
    }
    try {
      const outbox = conn.outbox
      const size = sizeOf(message)
      if (size > BATCH_ALONE_BYTES) {
        // Large messages gain nothing from a batch: what is queued goes first, then this one on its own. That
        // flush may have started a re-key: then this one waits for the new keys like any other.
        outbox?.flush()
        if (conn.held !== undefined) return this.#sendMessage(conn, message)
        return this.#writeSealed(conn, link, message)
      }
      if (outbox === undefined || outbox.link !== link) {
        // The first message of a turn goes out at once (a lone ping or request waits for nothing); the rest of
        // the turn's messages gather in the outbox.
        this.#openOutbox(conn, link)
        return this.#writeSealed(conn, link, message)
      }
      addToOutbox(outbox, message, size)
      return queued(outbox)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  #openOutbox(conn: Connection, link: Link): void {
    const done = Promise.withResolvers<void>()
    done.promise.catch(() => {})
    const outbox: Outbox = {
      link,
      messages: [],
      run: undefined,
      count: 0,
      bytes: 0,
      slab: new Uint8Array(0),
      slabUsed: 0,
      flushed: done.promise,
      flush: () => {
        if (conn.outbox === outbox) conn.outbox = undefined
        if (outbox.messages.length === 0) return done.resolve()
        this.#flushOutbox(conn, link, outbox.messages).then(done.resolve, done.reject)
        outbox.messages = []
        outbox.run = undefined
      },
    }
    conn.outbox = outbox
    setImmediate(outbox.flush)
  }

  async #flushOutbox(conn: Connection, link: Link, messages: OutgoingMessage[]): Promise<void> {
    // Queued for a link that has gone: lost with it, like the frames it had not sent yet.
    if (conn.link !== link || conn.channel === undefined) return
    if (conn.held !== undefined) {
      // A re-key started during the turn: these wait for its end with the others.
      for (const message of messages) conn.held.push({ message, resolve: () => {}, reject: () => {} })
      return
    }
    await this.#writeSealed(conn, link, messages.length === 1 ? messages[0]! : { t: 'batch', messages })
  }

  async #readLoop(conn: Connection, link: Link): Promise<void> {
    conn.reading = link
    try {
      for await (const frame of link.frames()) {
        if (conn.link !== link || conn.channel === undefined) return
        conn.heardAt = performance.now()
        if (frame.t !== 'sealed') {
          this.#init.log.warn(
            { device: conn.device.id, frame: frame.t },
            'unexpected handshake frame on a live link',
          )
          continue
        }
        const before = conn.channel.stats.rejectedReplay
        const plaintext = conn.channel.open(frame)
        if (plaintext === undefined) {
          // Replayed, reordered or tampered: dropped and counted; the link stays up.
          const replay = conn.channel.stats.rejectedReplay > before
          if (replay) conn.rejected.replayed++
          else conn.rejected.tampered++
          this.#init.log.warn({ device: conn.device.id, replay }, 'rejected a sealed frame')
          continue
        }
        let message: SealedMessage
        try {
          message = decodeSealedMessage(plaintext)
        } catch (err) {
          this.#init.log.warn({ err, device: conn.device.id }, 'dropped a malformed sealed message')
          continue
        }
        conn.lastSeen = this.#now()
        this.#onMessage(conn, link, message)
      }
    } catch (err) {
      this.#init.log.warn({ err, device: conn.device.id }, 'link read failed')
      if (conn.link === link) link.abort(err as Error)
    } finally {
      if (conn.reading === link) conn.reading = undefined
      this.#lost(conn, link)
    }
  }

  #onMessage(conn: Connection, link: Link, message: SealedMessage): void {
    const peerId = conn.device.peerId
    switch (message.t) {
      case 'ping':
        void this.#sendMessage(conn, { t: 'pong', id: message.id }).catch(() => {})
        return
      case 'pong':
      case 'res':
      case 'err': {
        // Keepalive pings (id 0) and answers that came after their timeout have no waiter.
        const waiter = conn.waiters.get(message.id)
        if (waiter === undefined) return
        conn.waiters.delete(message.id)
        clearTimeout(waiter.timer)
        waiter.resolve(message)
        return
      }
      case 'msg':
        this.#receive(conn, message.protocol, message.body)
        return
      case 'msgs':
        for (const body of message.bodies) this.#receive(conn, message.protocol, body)
        return
      case 'req':
        void this.#answer(conn, message)
        return
      case 'revoke':
        this.#forward(conn, { type: 'peer.revoked', peerId })
        return
      case 'rekey': {
        if (conn.keys === undefined) return
        // Both started a re-key: the opener's wins (ARCHITECTURE.md). The opener keeps its own and waits for the
        // acceptor's ack; the acceptor drops its own and answers this one.
        if (conn.rekey !== undefined && conn.role === 'opener') return
        const rekey = Rekey.accept(this.#me, this.#peer(conn), conn.keys)
        const ok = rekey.verifyRekey(message)
        if (ok) conn.rekey = rekey
        this.#forward(conn, { type: ok ? 'peer.rekeyVerified' : 'peer.badSignature', peerId })
        return
      }
      case 'batch':
        for (const inner of message.messages) this.#onMessage(conn, link, inner)
        return
      case 'rekeyAck': {
        const ok = conn.rekey?.verifyRekeyAck(message) === true
        this.#forward(conn, { type: ok ? 'peer.rekeyAckVerified' : 'peer.badSignature', peerId })
        return
      }
      default:
        this.#init.log.warn(
          { device: conn.device.id, link: link.remotePeer.toString() },
          'unknown sealed message',
        )
    }
  }

  /** A one-way message: its handler runs, and what goes wrong is logged (the sender is not waiting for it). */
  #receive(conn: Connection, protocol: string, body: Uint8Array): void {
    const failed = (err: unknown) => this.#init.log.warn({ err, protocol }, 'message handler failed')
    try {
      const result = this.#deliver(conn, protocol, body)
      // Any thenable (another realm's promise too): a rejection must not go unobserved.
      if (typeof (result as PromiseLike<unknown> | undefined)?.then === 'function') {
        Promise.resolve(result).catch(failed)
      }
    } catch (err) {
      failed(err)
    }
  }

  /** Runs the handler for a message and returns what it returned; with none registered the message is dropped. */
  #deliver(conn: Connection, protocol: string, body: Uint8Array): ReturnType<MessageHandler> {
    this.#init.events.emit({ type: 'MessageReceived', deviceId: conn.device.id, protocol, size: body.length })
    const handler = this.#handlers.get(protocol)
    if (handler === undefined) return undefined
    return handler({ deviceId: conn.device.id, name: conn.device.name, protocol, body })
  }

  async #answer(conn: Connection, request: Extract<SealedMessage, { t: 'req' }>): Promise<void> {
    const reply = (message: SealedMessage) => this.#sendMessage(conn, message).catch(() => {})
    if (!this.#handlers.has(request.protocol)) {
      this.#init.events.emit({
        type: 'MessageReceived',
        deviceId: conn.device.id,
        protocol: request.protocol,
        size: request.body.length,
      })
      return reply(
        err(
          request.id,
          'UnknownProtocol',
          `No handler for "${request.protocol}" on ${this.#init.identity.name}.`,
        ),
      )
    }
    try {
      const result = await this.#deliver(conn, request.protocol, request.body)
      const body =
        typeof result === 'string' ? new TextEncoder().encode(result) : (result ?? new Uint8Array())
      if (body.length > MAX_BODY_BYTES) {
        return reply(
          err(request.id, 'TooLarge', `The answer is ${body.length} bytes; the limit is ${MAX_BODY_BYTES}.`),
        )
      }
      return reply({ t: 'res', id: request.id, body })
    } catch (e) {
      return reply(err(request.id, 'HandlerFailed', (e as Error).message.slice(0, 200)))
    }
  }

  async #rememberAddresses(conn: Connection): Promise<void> {
    try {
      const peer = await this.#init.libp2p.peerStore.get(peerIdFromString(conn.device.peerId))
      const addresses = peer.addresses.map((a) => a.multiaddr.toString())
      if (addresses.length > 0) await this.#init.store.updateAddresses(conn.device.id, addresses)
    } catch (e) {
      this.#init.log.debug({ err: e, device: conn.device.id }, 'could not record the device addresses')
    }
  }
}

type Effect = { type: string; epoch?: number; peerId?: string }

function err(id: number, code: SealedErrorCode, message: string): SealedMessage {
  return { t: 'err', id, code, message }
}

function publicState(state: string | undefined): ConnectionState {
  if (state === undefined) return 'offline'
  if (state.includes('Connected')) return 'connected'
  if (state.includes('Handshaking') || state === 'Dialing') return 'connecting'
  if (state === 'Reconnecting') return 'reconnecting'
  return 'offline'
}

// Names that passed the check, so a stream of messages pays for the pattern once (bounded: cleared when full).
const checkedProtocols = new Set<string>()

function checkProtocol(protocol: string): void {
  if (checkedProtocols.has(protocol)) return
  if (!PROTOCOL_NAME.test(protocol)) throw new InvalidProtocolNameError(protocol)
  if (checkedProtocols.size >= 1024) checkedProtocols.clear()
  checkedProtocols.add(protocol)
}

function checkBody(body: Uint8Array): void {
  if (body.length > MAX_BODY_BYTES) throw new MessageTooLargeError(body.length, MAX_BODY_BYTES)
}

/** Resolves true when `promise` settles first, false after `ms`. */
async function withTimeout(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
  })
  try {
    return await Promise.race([
      promise.then(
        () => true as const,
        () => true as const,
      ),
      expired,
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** Makes room for `bytes` more in the outbox's slab: a new slab when the current one is too full. */
function slabRoom(outbox: Outbox, bytes: number): void {
  if (outbox.slab.byteLength - outbox.slabUsed >= bytes) return
  const slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, bytes))
  outbox.slab = new Uint8Array(slab.buffer, slab.byteOffset, slab.byteLength)
  outbox.slabUsed = 0
}

/** A copy of `body` in the outbox's slab (one allocation for many small bodies, not one each). */
function copyBody(outbox: Outbox, body: Uint8Array): Uint8Array {
  const length = body.byteLength
  slabRoom(outbox, length)
  const copy = new Uint8Array(outbox.slab.buffer, outbox.slab.byteOffset + outbox.slabUsed, length)
  copy.set(body)
  outbox.slabUsed += length
  return copy
}

/** Roughly what a message adds to a batch: a one-way message its body and a byte string head; others more. */
function sizeOf(message: OutgoingMessage): number {
  if (message.t === 'msg') return message.body.length + 3
  if (message.t === 'msgs') {
    const { bodies } = message
    const length =
      bodies instanceof EncodedBodies ? bodies.bytes.byteLength : totalLength(bodies) + 3 * bodies.length
    return length + message.protocol.length + 16
  }
  if (message.t === 'batch') return message.messages.reduce((sum, inner) => sum + sizeOf(inner), 16)
  return 'body' in message ? message.body.length + 32 : 64
}

function totalLength(bodies: readonly Uint8Array[]): number {
  let length = 0
  for (const body of bodies) length += body.byteLength
  return length
}

/**
 * Appends to the outbox; a one-way message joins the run before it when the protocol is the same. Its sender is
 * told it went out before it is sealed, and may reuse its buffer at once: bodies are copied (at most 16 KiB each),
 * a run's straight into its encoding.
 */
function addToOutbox(outbox: Outbox, message: OutgoingMessage, size: number): void {
  if (message.t === 'msg' && joinRun(outbox, message.protocol, message.body)) return
  outbox.count++
  outbox.bytes += size
  if (message.t !== 'msg') {
    outbox.messages.push('body' in message ? { ...message, body: copyBody(outbox, message.body) } : message)
    outbox.run = undefined
    return
  }
  // A new run: another protocol came between, or the slab (or the run) is full.
  slabRoom(outbox, message.body.byteLength + MAX_BYTES_HEAD)
  const bodies = new EncodedBodies(outbox.slab, outbox.slabUsed)
  bodies.append(message.body)
  outbox.slabUsed = bodies.end
  outbox.run = { t: 'msgs', protocol: message.protocol, bodies }
  outbox.messages.push(outbox.run)
  outbox.bytes += message.protocol.length + 16
}

/** Appends a one-way body to the outbox's run when that run is of `protocol` and has room; false otherwise. */
function joinRun(outbox: Outbox, protocol: string, body: Uint8Array): boolean {
  const run = outbox.run
  if (run?.protocol !== protocol || !run.bodies.append(body)) return false
  outbox.slabUsed = run.bodies.end
  outbox.count++
  outbox.bytes += body.byteLength + 3
  return true
}

/**
 * What a sender whose message was just queued waits for. Like the link itself, a queued message counts as
 * written; a writer that outpaces the link waits here, for the full outbox to be sealed and taken by the link.
 */
function queued(outbox: Outbox): Promise<void> {
  if (outbox.bytes < BATCH_FLUSH_BYTES && outbox.count < MAX_BATCH_MESSAGES) return SENT
  outbox.flush()
  return outbox.flushed
}
