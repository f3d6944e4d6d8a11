// The I/O shell around the pairing machines: it turns `/sdnet/pair/1.0.0` frames into machine events and the
// machines' emitted effects into frames. It holds every secret (proof key, nonces, transcript) so machine
// context, snapshots and traces never do. One record per session, keyed by session id; initiator sessions are
// also indexed by rendezvous id, which is how an inbound request finds its session.
import { randomBytes } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { AnyActorRef } from 'xstate'
import type { FailureReason } from '../../machines/types.ts'
import type { PairErrorCode, PairFrame, WireDevice } from '../../transport/codec.ts'
import { discoveredPeers, type SdnetLibp2p } from '../../transport/libp2p-node.ts'
import { type FrameChannel, handlePairProtocol, openPairChannel } from '../../transport/pair-protocol.ts'
import type { DeviceSummary, EventBus } from '../events.ts'
import type { Logger } from '../logger.ts'
import {
  deviceIdFromPublicKey,
  fingerprint,
  type Identity,
  type PairedDevice,
  type TrustStore,
} from '../store/index.ts'
import { generateCode, parseCode } from './code.ts'
import {
  comparisonString,
  createProof,
  type DeviceInfo,
  deriveSecrets,
  type PairingSecrets,
  transcriptHash,
  verifyProof,
} from './pairing-crypto.ts'
import { PairingRateLimiter } from './rate-limit.ts'

export interface PairingTimeouts {
  /** How long a code stays valid (5 minutes). */
  codeTtl: number
  /** One protocol step: a frame answered by the peer. */
  step: number
  /** How long the initiator's user has to accept or reject, and so how long a joiner waits for `complete`. */
  confirm: number
  /** How long a joiner looks for devices before giving up. */
  discovery: number
  /** How long a joiner waits for more answers once every device it reached said "not my code". */
  settle: number
  /** One dial attempt. */
  dial: number
}

export const DEFAULT_PAIRING_TIMEOUTS: PairingTimeouts = {
  codeTtl: 5 * 60_000,
  step: 10_000,
  confirm: 120_000,
  discovery: 30_000,
  settle: 2_000,
  dial: 5_000,
}

export type PairResult =
  | { outcome: 'paired'; device: DeviceSummary; sas: string }
  | { outcome: 'failed'; reason: FailureReason | 'StoreFailed'; message: string }

export type SessionEvent =
  | { type: 'state'; sessionId: string; state: string }
  | { type: 'request'; sessionId: string; device: DeviceSummary; sas: string }
  | { type: 'comparison'; sessionId: string; sas: string }
  | { type: 'done'; sessionId: string; result: PairResult }

export type Role = 'initiator' | 'joiner'

export interface SessionSummary {
  sessionId: string
  role: Role
  state: string
  expiresAt?: number
  device?: DeviceSummary
}

interface Session {
  id: string
  role: Role
  secrets: PairingSecrets
  localNonce: Uint8Array
  expiresAt?: number
  state: string
  listeners: Set<(event: SessionEvent) => void>
  result?: PairResult
  done: Promise<PairResult>
  finish: (result: PairResult) => void
  ref?: AnyActorRef
  // The peer this session talks to and what it said; set once a request (initiator) or challenge (joiner) arrives.
  channel?: FrameChannel
  peerId?: string
  remotePeerIdBytes?: Uint8Array
  remoteNonce?: Uint8Array
  remoteDevice?: DeviceInfo
  remoteAddresses?: string[]
  th?: Uint8Array
  sas?: string
  pendingWrite: Promise<void>
  /** A frame we sent never left: the initiator must not store a device whose `complete` was not flushed. */
  writeFailed: boolean
  /** The joiner's dial in flight; a newer one (or closing the candidate) aborts it, so late results are dropped. */
  dial?: AbortController
  /** Error codes of the candidates that turned the joiner down, to tell "wrong code" from "busy" or "limited". */
  refusals: Set<PairErrorCode>
  ending?: boolean
}

/** What the pairing service needs from the node actor: a way to send it events and to find a session's child. */
export interface NodeActorPort {
  send(event: { type: string; [key: string]: unknown }): void
  child(sessionId: string): AnyActorRef | undefined
}

export interface PairingServiceInit {
  libp2p: SdnetLibp2p
  identity: Identity
  store: TrustStore
  node: NodeActorPort
  log: Logger
  timeouts: PairingTimeouts
  events: EventBus
  /** Called once a paired device is stored, so its connection can start. */
  onPaired: (device: PairedDevice) => void
  now?: () => number
}

const failureMessages: Record<string, string> = {
  WrongCode:
    'The code did not match any device waiting nearby. Check the 12 words against the other device (the code may also have expired), or generate a new code there and try again.',
  NotFound:
    'No device was found on the network. Make sure the other device is running `sdnet pair generate` on the same network.',
  Timeout: 'The other device stopped answering in time. Try again with a new code.',
  PeerLost: 'The connection to the other device was lost. Try again with a new code.',
  Rejected: 'The other device rejected the pairing request.',
  Expired: 'The code expired before a device used it. Generate a new code and try again.',
  Cancelled: 'The pairing was cancelled.',
  SessionBusy: 'Another device is already pairing with this code. Generate a new code.',
  RateLimited: 'Too many failed attempts from this device. Wait a minute and try again.',
  ProtocolError:
    'The other device broke the pairing protocol. Make sure both devices run the same sdnet version.',
  StoreFailed:
    'Pairing succeeded but the device could not be saved. Check that the data directory is writable.',
}

const MAX_REMEMBERED_PEERS = 256

export function failureMessage(reason: string): string {
  return failureMessages[reason] ?? `Pairing failed (${reason}).`
}

const toHex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')

/** Ends our side, then resets the stream, so a peer that never closes its side cannot keep it open. */
async function closeFully(channel: FrameChannel): Promise<void> {
  await channel.close().catch(() => {})
  channel.abort(new Error('pairing stream finished'))
}
const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0

export class PairingService {
  readonly #init: PairingServiceInit
  readonly #now: () => number
  readonly #sessions = new Map<string, Session>()
  readonly #byRendezvous = new Map<string, Session>()
  readonly #discovered = new Map<string, { multiaddrs: Multiaddr[]; at: number }>()
  readonly #limiter: PairingRateLimiter
  readonly #localDevice: DeviceInfo
  readonly #localPeerIdBytes: Uint8Array
  #unsubscribeDiscovery?: () => void

  constructor(init: PairingServiceInit) {
    this.#init = init
    this.#now = init.now ?? Date.now
    this.#limiter = new PairingRateLimiter({ now: this.#now })
    const { identity } = init
    this.#localDevice = { id: identity.deviceId, name: identity.name, publicKey: identity.publicKey }
    this.#localPeerIdBytes = init.libp2p.peerId.toMultihash().bytes
  }

  async start(): Promise<void> {
    await handlePairProtocol(this.#init.libp2p, (channel) => {
      this.#onInbound(channel).catch((err: unknown) =>
        this.#init.log.warn({ err }, 'inbound pairing stream failed'),
      )
    })
    this.#unsubscribeDiscovery = discoveredPeers(this.#init.libp2p, (peer) => {
      const peerId = peer.id.toString()
      this.#discovered.delete(peerId)
      this.#discovered.set(peerId, { multiaddrs: peer.multiaddrs, at: this.#now() })
      // Bounded: a flood of announcements forgets the oldest peers first (the map keeps insertion order).
      if (this.#discovered.size > MAX_REMEMBERED_PEERS) {
        this.#discovered.delete(this.#discovered.keys().next().value!)
      }
      this.#init.node.send({ type: 'transport.peerDiscovered', peerId })
      this.#init.events.emit({ type: 'PeerDiscovered', peerId })
    })
  }

  stop(): void {
    this.#unsubscribeDiscovery?.()
  }

  /** Starts an initiator session and returns its code. The words are shown to the user and never logged. */
  generate(opts: { autoAccept: boolean; codeTtl?: number }): {
    sessionId: string
    code: string
    expiresAt: number
  } {
    const { words, entropy } = generateCode()
    const timeouts = { ...this.#init.timeouts, codeTtl: opts.codeTtl ?? this.#init.timeouts.codeTtl }
    const session = this.#newSession('initiator', deriveSecrets(entropy))
    session.expiresAt = this.#now() + timeouts.codeTtl
    this.#byRendezvous.set(toHex(session.secrets.rendezvous), session)
    this.#spawn(session, {
      type: 'cmd.pairGenerate',
      sessionId: session.id,
      autoAccept: opts.autoAccept,
      timeouts: { codeTtl: timeouts.codeTtl, step: timeouts.step, confirm: timeouts.confirm },
    })
    return { sessionId: session.id, code: words.join(' '), expiresAt: session.expiresAt }
  }

  /** Starts a joiner session. The code is checked before anything touches the network (InvalidCodeError). */
  join(code: string | readonly string[]): { sessionId: string } {
    const session = this.#newSession('joiner', deriveSecrets(parseCode(code)))
    const t = this.#init.timeouts
    this.#spawn(session, {
      type: 'cmd.pairJoin',
      sessionId: session.id,
      timeouts: { discovery: t.discovery, settle: t.settle, dial: t.dial, step: t.step, confirm: t.confirm },
    })
    // Peers found before this session started are candidates too: a warm daemon has seen the LAN already.
    const recent = this.#now() - 10 * 60_000
    for (const [peerId, seen] of this.#discovered) {
      if (seen.at >= recent) this.#forward(session, { type: 'peer.discovered', peerId })
    }
    for (const peer of this.#init.libp2p.getPeers()) {
      if (!this.#discovered.has(peer.toString()))
        this.#forward(session, { type: 'peer.discovered', peerId: peer.toString() })
    }
    return { sessionId: session.id }
  }

  subscribe(sessionId: string, listener: (event: SessionEvent) => void): () => void {
    const session = this.#sessions.get(sessionId)
    if (session === undefined) return () => {}
    session.listeners.add(listener)
    return () => session.listeners.delete(listener)
  }

  result(sessionId: string): Promise<PairResult> | undefined {
    return this.#sessions.get(sessionId)?.done
  }

  /**
   * Sends a user command to a live session: `cmd.cancel` to any, `cmd.accept` / `cmd.reject` only to an initiator
   * that is waiting for its user. Returns what was wrong, or undefined when the command was delivered.
   */
  command(
    sessionId: string,
    type: 'cmd.accept' | 'cmd.reject' | 'cmd.cancel',
  ): 'unknown' | 'not-waiting' | undefined {
    const session = this.#sessions.get(sessionId)
    if (session === undefined || session.result !== undefined) return 'unknown'
    if (type !== 'cmd.cancel' && session.state !== 'AwaitingConfirmation') return 'not-waiting'
    this.#forward(session, { type })
    return undefined
  }

  list(): SessionSummary[] {
    return [...this.#sessions.values()]
      .filter((s) => s.result === undefined)
      .map((s) => ({
        sessionId: s.id,
        role: s.role,
        state: s.state,
        ...(s.expiresAt !== undefined && { expiresAt: s.expiresAt }),
        // A peer's name is shown only once it has proven the code: before that it is anyone's claim.
        ...(s.remoteDevice !== undefined &&
          s.peerId !== undefined &&
          s.sas !== undefined && { device: this.#summary(s.remoteDevice, s.peerId) }),
      }))
  }

  #freshId(): string {
    let id = randomBytes(4).toString('hex')
    while (this.#sessions.has(id)) id = randomBytes(4).toString('hex')
    return id
  }

  #newSession(role: Role, secrets: PairingSecrets): Session {
    let finish!: (result: PairResult) => void
    const done = new Promise<PairResult>((resolve) => {
      finish = resolve
    })
    const session: Session = {
      id: this.#freshId(),
      role,
      secrets,
      localNonce: randomBytes(32),
      state: 'Starting',
      listeners: new Set(),
      done,
      finish,
      pendingWrite: Promise.resolve(),
      writeFailed: false,
      refusals: new Set(),
    }
    this.#sessions.set(session.id, session)
    return session
  }

  #spawn(session: Session, command: { type: string; [key: string]: unknown }): void {
    this.#init.node.send(command)
    const ref = this.#init.node.child(session.id)
    if (ref === undefined) {
      this.#sessions.delete(session.id)
      this.#byRendezvous.delete(toHex(session.secrets.rendezvous))
      throw new Error(`the node did not start pairing session ${session.id}; is it running?`)
    }
    session.ref = ref
    ref.on('*', (effect: { type: string; peerId?: string; code?: PairErrorCode }) =>
      this.#onEffect(session, effect),
    )
    const onSnapshot = (snapshot: { value: unknown; status: string; output?: unknown }) => {
      const state = typeof snapshot.value === 'string' ? snapshot.value : JSON.stringify(snapshot.value)
      if (state !== session.state) {
        session.state = state
        this.#emit(session, { type: 'state', sessionId: session.id, state })
      }
      if (snapshot.status === 'done') void this.#onDone(session, snapshot.output as SessionOutput)
    }
    ref.subscribe({
      next: onSnapshot,
      error: (err: unknown) => {
        this.#init.log.error({ err, session: session.id }, 'pairing session crashed')
        void this.#onDone(session, { outcome: 'failed', reason: 'ProtocolError' })
      },
    })
    onSnapshot(ref.getSnapshot())
  }

  #forward(session: Session, event: { type: string; [key: string]: unknown }): void {
    if (session.result !== undefined) return
    this.#init.node.send({ type: 'session.forward', sessionId: session.id, event })
  }

  #emit(session: Session, event: SessionEvent): void {
    for (const listener of session.listeners) listener(event)
  }

  #summary(device: DeviceInfo, peerId: string): DeviceSummary {
    return { id: device.id, name: device.name, fingerprint: fingerprint(device.publicKey), peerId }
  }

  // Effects emitted by the session machines (ARCHITECTURE.md "Machines").
  #onEffect(session: Session, effect: { type: string; peerId?: string; code?: PairErrorCode }): void {
    const log = this.#init.log.child({ session: session.id })
    log.debug({ effect: effect.type, peer: effect.peerId }, 'effect')
    switch (effect.type) {
      case 'sendChallenge':
        this.#write(session, { t: 'challenge', v: 1, nonce: session.localNonce, device: this.#localDevice })
        void this.#readResponse(session)
        return
      case 'requestConfirmation':
        if (session.remoteDevice !== undefined && session.peerId !== undefined && session.sas !== undefined) {
          const device = this.#summary(session.remoteDevice, session.peerId)
          this.#emit(session, { type: 'request', sessionId: session.id, device, sas: session.sas })
          this.#init.events.emit({ type: 'PairingRequest', sessionId: session.id, device, sas: session.sas })
        }
        return
      case 'sendComplete': {
        const { sig, mac } = createProof(
          'initiator',
          session.secrets.proofKey,
          session.th!,
          this.#init.identity.seed,
        )
        this.#write(session, { t: 'complete', v: 1, sig, mac })
        return
      }
      case 'sendFailure':
        this.#write(session, {
          t: 'error',
          v: 1,
          code: effect.code ?? 'ProtocolError',
          message: failureMessage(effect.code ?? 'ProtocolError'),
        })
        return
      case 'dialCandidate':
        void this.#dialCandidate(session, effect.peerId!)
        return
      case 'sendResponse':
        void this.#sendResponse(session, effect.peerId!)
        return
      case 'closeCandidate':
        session.dial?.abort()
        if (session.peerId === effect.peerId) this.#closeChannel(session)
        return
      default:
        log.warn({ effect: effect.type }, 'unknown effect from a pairing machine')
    }
  }

  #write(session: Session, frame: PairFrame): void {
    const channel = session.channel
    if (channel === undefined) return
    session.pendingWrite = session.pendingWrite
      .then(() => channel.write(frame))
      .catch((err: unknown) => {
        session.writeFailed = true
        this.#init.log.debug({ err, session: session.id }, 'pairing write failed')
        if (session.peerId !== undefined)
          this.#forward(session, { type: 'link.lost', peerId: session.peerId })
      })
  }

  #closeChannel(session: Session): void {
    const channel = session.channel
    session.channel = undefined
    session.peerId = undefined
    if (channel !== undefined) void session.pendingWrite.then(() => closeFully(channel))
  }

  // Initiator side: a joiner opened a stream and sent its request.
  async #onInbound(channel: FrameChannel): Promise<void> {
    const peerId = channel.remotePeer.toString()
    const refuse = async (code: PairErrorCode, message: string) => {
      await channel.write({ t: 'error', v: 1, code, message }).catch(() => {})
      await closeFully(channel)
    }
    let frame: PairFrame
    try {
      frame = await channel.read({ timeoutMs: this.#init.timeouts.step })
    } catch (err) {
      this.#init.log.info({ err, peer: peerId }, 'dropped a pairing stream that sent no valid request')
      return refuse('ProtocolError', 'Expected a pairing request frame.')
    }
    if (frame.t !== 'request') return refuse('ProtocolError', `Expected a pairing request, got "${frame.t}".`)
    if (this.#limiter.isBanned(peerId)) return refuse('RateLimited', failureMessage('RateLimited'))
    const session = this.#byRendezvous.get(toHex(frame.rendezvous))
    if (session === undefined || session.result !== undefined) {
      this.#limiter.recordMiss(peerId)
      return refuse('UnknownSession', 'No pairing session on this device matches that code.')
    }
    if (session.channel !== undefined || session.state !== 'WaitingForConnection') {
      return refuse('SessionBusy', failureMessage('SessionBusy'))
    }
    const device = this.#checkDevice(frame.device, channel)
    if (device === undefined) return refuse('ProtocolError', 'The device key does not match the connection.')
    session.channel = channel
    session.peerId = peerId
    session.remotePeerIdBytes = channel.remotePeerIdBytes
    session.remoteNonce = frame.nonce
    session.remoteDevice = device
    session.remoteAddresses = this.#addressesOf(channel)
    this.#forward(session, { type: 'peer.requestReceived', peerId, device })
  }

  /** A device claim is accepted only for the key that Noise authenticated, with the id derived from that key. */
  #checkDevice(device: WireDevice, channel: FrameChannel): DeviceInfo | undefined {
    if (!sameBytes(device.publicKey, channel.remotePublicKey)) return undefined
    if (device.id !== deviceIdFromPublicKey(device.publicKey)) return undefined
    return { id: device.id, name: device.name, publicKey: device.publicKey }
  }

  /** Listen addresses that identify told us, so a later connection can dial them; else what we saw. */
  async #knownAddresses(session: Session): Promise<string[]> {
    try {
      const peer = await this.#init.libp2p.peerStore.get(peerIdFromString(session.peerId!))
      const listen = peer.addresses.map((a) => a.multiaddr.toString())
      if (listen.length > 0) return listen
    } catch {
      // not in the peer store: fall back to the connection's address
    }
    return session.remoteAddresses ?? []
  }

  #addressesOf(channel: FrameChannel): string[] {
    return this.#init.libp2p.getConnections(channel.remotePeer).map((c) => c.remoteAddr.toString())
  }

  #transcript(session: Session): Uint8Array {
    const initiator = session.role === 'initiator'
    return transcriptHash({
      rendezvous: session.secrets.rendezvous,
      initiatorPeerId: initiator ? this.#localPeerIdBytes : session.remotePeerIdBytes!,
      joinerPeerId: initiator ? session.remotePeerIdBytes! : this.#localPeerIdBytes,
      initiatorNonce: initiator ? session.localNonce : session.remoteNonce!,
      joinerNonce: initiator ? session.remoteNonce! : session.localNonce,
      initiator: initiator ? this.#localDevice : session.remoteDevice!,
      joiner: initiator ? session.remoteDevice! : this.#localDevice,
    })
  }

  async #readResponse(session: Session): Promise<void> {
    const { channel, peerId } = session
    if (channel === undefined || peerId === undefined) return
    const frame = await this.#readFrame(session, channel, this.#init.timeouts.step + 1_000)
    if (frame === undefined || session.channel !== channel) return
    if (frame.t !== 'response') return this.#onUnexpected(session, frame)
    const th = this.#transcript(session)
    const verdict = verifyProof(
      'joiner',
      session.secrets.proofKey,
      th,
      session.remoteDevice!.publicKey,
      frame,
    )
    if (verdict !== 'ok') {
      this.#limiter.recordBadProof(peerId)
      this.#init.log.warn({ session: session.id, peer: peerId, verdict }, 'joiner proof rejected')
      this.#forward(session, { type: 'peer.proofRejected', peerId })
      return
    }
    session.th = th
    session.sas = comparisonString(session.secrets.proofKey, th)
    this.#forward(session, { type: 'peer.responseVerified', peerId, device: session.remoteDevice })
    void this.#watch(session, channel)
  }

  /** While the initiator's user decides, the joiner may cancel or drop: keep reading until the session ends. */
  async #watch(session: Session, channel: FrameChannel): Promise<void> {
    while (session.result === undefined && session.channel === channel) {
      const frame = await this.#readFrame(session, channel, this.#init.timeouts.confirm + 1_000)
      if (frame === undefined || session.channel !== channel) return
      this.#onUnexpected(session, frame)
    }
  }

  /** Reads one frame; a closed stream becomes `link.lost`, a timeout is left to the machine's own timer. */
  async #readFrame(
    session: Session,
    channel: FrameChannel,
    timeoutMs: number,
  ): Promise<PairFrame | undefined> {
    try {
      return await channel.read({ timeoutMs })
    } catch (err) {
      if (session.result !== undefined || session.channel !== channel) return undefined
      const name = (err as Error).name
      if (name === 'ReadTimeoutError') return undefined
      this.#init.log.debug({ err, session: session.id }, 'pairing stream ended')
      if (name.endsWith('FrameError')) {
        this.#forward(session, { type: 'peer.failed', peerId: session.peerId, code: 'ProtocolError' })
      } else {
        this.#forward(session, { type: 'link.lost', peerId: session.peerId })
      }
      return undefined
    }
  }

  #onUnexpected(session: Session, frame: PairFrame): void {
    const code = frame.t === 'error' && frame.code !== 'UnknownSession' ? frame.code : 'ProtocolError'
    this.#forward(session, { type: 'peer.failed', peerId: session.peerId, code })
  }

  // Joiner side.
  async #dialCandidate(session: Session, peerId: string): Promise<void> {
    const t = this.#init.timeouts
    session.dial?.abort()
    const dial = new AbortController()
    session.dial = dial
    // Results of a dial that was superseded or abandoned are dropped, never applied to the session.
    const current = () => session.dial === dial && session.result === undefined
    let channel: FrameChannel
    try {
      // Dial by peer id so libp2p picks from every address it knows (mDNS updates them when a peer moves);
      // the addresses from the discovery event are merged first because libp2p stores them asynchronously.
      const id = peerIdFromString(peerId)
      const multiaddrs = this.#discovered.get(peerId)?.multiaddrs ?? []
      if (multiaddrs.length > 0) await this.#init.libp2p.peerStore.merge(id, { multiaddrs })
      channel = await openPairChannel(this.#init.libp2p, id, { timeoutMs: t.dial, signal: dial.signal })
    } catch (err) {
      this.#init.log.debug({ err, session: session.id, peer: peerId }, 'dial failed')
      if (current())
        this.#forward(session, { type: 'link.dialFailed', peerId, message: (err as Error).message })
      return
    }
    if (!current()) return void closeFully(channel)
    session.channel = channel
    session.peerId = peerId
    try {
      await channel.write({
        t: 'request',
        v: 1,
        rendezvous: session.secrets.rendezvous,
        nonce: session.localNonce,
        device: this.#localDevice,
      })
    } catch {
      if (!current()) return
      this.#closeChannel(session)
      this.#forward(session, { type: 'link.dialFailed', peerId, message: 'the stream closed' })
      return
    }
    if (!current()) return
    this.#forward(session, { type: 'link.requestSent', peerId })
    const frame = await this.#readFrame(session, channel, t.step + 1_000)
    if (frame === undefined || !current() || session.channel !== channel) return
    if (frame.t === 'challenge') {
      const device = this.#checkDevice(frame.device, channel)
      if (device !== undefined) {
        session.remotePeerIdBytes = channel.remotePeerIdBytes
        session.remoteNonce = frame.nonce
        session.remoteDevice = device
        session.remoteAddresses = this.#addressesOf(channel)
        this.#forward(session, { type: 'peer.challengeReceived', peerId, device })
        return
      }
    }
    // Any other answer means "not the device holding this code": remember why, and try the next candidate.
    session.refusals.add(frame.t === 'error' ? frame.code : 'ProtocolError')
    this.#closeChannel(session)
    this.#forward(session, { type: 'peer.sessionUnknown', peerId })
  }

  async #sendResponse(session: Session, peerId: string): Promise<void> {
    const channel = session.channel
    if (channel === undefined || session.peerId !== peerId) return
    const th = this.#transcript(session)
    const proof = createProof('joiner', session.secrets.proofKey, th, this.#init.identity.seed)
    try {
      await channel.write({ t: 'response', v: 1, ...proof })
    } catch {
      this.#forward(session, { type: 'link.lost', peerId })
      return
    }
    if (session.channel !== channel) return
    // Shown now, while the initiator's user compares it with theirs before accepting.
    session.sas = comparisonString(session.secrets.proofKey, th)
    this.#emit(session, { type: 'comparison', sessionId: session.id, sas: session.sas })
    this.#forward(session, { type: 'link.responseSent', peerId })
    const frame = await this.#readFrame(session, channel, this.#init.timeouts.confirm + 1_000)
    if (frame === undefined || session.channel !== channel) return
    if (frame.t !== 'complete') return this.#onUnexpected(session, frame)
    const verdict = verifyProof(
      'initiator',
      session.secrets.proofKey,
      th,
      session.remoteDevice!.publicKey,
      frame,
    )
    if (verdict !== 'ok') {
      this.#init.log.warn({ session: session.id, peer: peerId, verdict }, 'initiator proof rejected')
      this.#write(session, { t: 'error', v: 1, code: 'WrongCode', message: failureMessage('WrongCode') })
      this.#forward(session, { type: 'peer.proofRejected', peerId })
      return
    }
    this.#forward(session, {
      type: 'peer.completeVerified',
      peerId,
      device: session.remoteDevice,
      sas: session.sas,
    })
  }

  async #onDone(session: Session, output: SessionOutput): Promise<void> {
    if (session.ending) return
    session.ending = true
    session.dial?.abort()
    // The initiator trusts the joiner only once its `complete` has left: otherwise only one side would be paired.
    await session.pendingWrite
    let result: PairResult
    if (output.outcome === 'paired' && session.writeFailed) {
      result = { outcome: 'failed', reason: 'PeerLost', message: failureMessage('PeerLost') }
    } else if (
      output.outcome === 'paired' &&
      session.remoteDevice !== undefined &&
      session.peerId !== undefined
    ) {
      const device = session.remoteDevice
      const record: PairedDevice = {
        id: device.id,
        name: device.name,
        peerId: session.peerId,
        publicKey: device.publicKey,
        fingerprint: fingerprint(device.publicKey),
        pairedAt: this.#now(),
        addresses: await this.#knownAddresses(session),
      }
      try {
        await this.#init.store.add(record)
        result = { outcome: 'paired', device: this.#summary(device, session.peerId), sas: session.sas ?? '' }
        this.#init.onPaired(record)
      } catch (err) {
        this.#init.log.error({ err, session: session.id }, 'could not store the paired device')
        result = { outcome: 'failed', reason: 'StoreFailed', message: failureMessage('StoreFailed') }
      }
    } else {
      const reason = refineReason(outcomeReason(output), session.refusals)
      result = { outcome: 'failed', reason, message: failureMessage(reason) }
      // A joiner that gives up tells the initiator why, so its user is not left waiting.
      if (
        session.role === 'joiner' &&
        session.channel !== undefined &&
        (reason === 'Cancelled' || reason === 'Timeout')
      ) {
        this.#write(session, { t: 'error', v: 1, code: reason, message: failureMessage(reason) })
      }
    }
    session.result = result
    this.#closeChannel(session)
    this.#byRendezvous.delete(toHex(session.secrets.rendezvous))
    this.#init.log.info(
      { session: session.id, role: session.role, outcome: result.outcome },
      'pairing session ended',
    )
    this.#emit(session, { type: 'done', sessionId: session.id, result })
    this.#init.events.emit(
      result.outcome === 'paired'
        ? { type: 'PairingCompleted', sessionId: session.id, device: result.device }
        : { type: 'PairingFailed', sessionId: session.id, reason: result.reason },
    )
    session.finish(result)
    session.listeners.clear()
    this.#init.node.send({ type: 'session.finished', sessionId: session.id })
    this.#sessions.delete(session.id)
  }
}

type SessionOutput =
  | { outcome: 'paired' }
  | { outcome: 'rejected' | 'expired' | 'cancelled' }
  | { outcome: 'failed'; reason: FailureReason }

/** "No device took the code" is WrongCode unless a device said why it could not: it was busy, or limited us. */
function refineReason(reason: FailureReason, refusals: Set<PairErrorCode>): FailureReason {
  if (reason !== 'WrongCode') return reason
  if (refusals.has('RateLimited')) return 'RateLimited'
  if (refusals.has('SessionBusy')) return 'SessionBusy'
  return reason
}

function outcomeReason(output: SessionOutput): FailureReason {
  switch (output.outcome) {
    case 'rejected':
      return 'Rejected'
    case 'expired':
      return 'Expired'
    case 'cancelled':
      return 'Cancelled'
    case 'failed':
      return output.reason
    default:
      return 'ProtocolError'
  }
}
