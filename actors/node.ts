// The composition root: loads the identity and trust store, builds the libp2p transport, provides the node
// machine's effects and runs it. `createNode` is the library's public entry.
import { homedir, hostname } from 'node:os'
import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { type Actor, createActor, fromPromise, type InspectionEvent, waitFor } from 'xstate'
import type { DropTimeouts } from '../machines/drop.ts'
import { nodeMachine } from '../machines/node.machine.ts'
import type { ChunkFrame } from '../transport/drop-codec.ts'
import type { ManifestLimits } from '../transport/drop-manifest.ts'
import { connectionEvents, createTransport, type SdnetLibp2p } from '../transport/libp2p-node.ts'
import type { MdnsInit } from '../transport/mdns.ts'
import type { LinkFrame } from '../transport/msg-codec.ts'
import {
  type ConnectionOptions,
  ConnectionService,
  DEFAULT_CONNECTION_OPTIONS,
  type DeviceStatus,
  type MessageHandler,
} from './connections/index.ts'
import { DEFAULT_DROP_TIMEOUTS, type DropApi, type DropOffer, DropService } from './drop/index.ts'
import { NodeNotRunningError, NodeStartError, SessionNotWaitingError, UnknownSessionError } from './errors.ts'
import { EventBus, type NodeEvent, type NodeEventType } from './events.ts'
import { type Logger, silentLogger } from './logger.ts'
import {
  DEFAULT_PAIRING_TIMEOUTS,
  PairingService,
  type PairingTimeouts,
  type PairResult,
  type SessionEvent,
  type SessionSummary,
} from './pairing/index.ts'
import { type Identity, loadOrCreateIdentity, TrustStore, toLibp2pPrivateKey } from './store/index.ts'

export interface NodeOptions {
  /** Where the identity, the paired devices and the logs live. */
  dataDir: string
  /** The device name used when the identity is first created (the host name by default). */
  name?: string
  /** Encrypts the device key at rest; needed again on every start. */
  password?: string
  /** libp2p listen addresses; all IPv4 interfaces on a random port by default. */
  listen?: string[]
  /** mDNS on the LAN (default on); `{ interface: '127.0.0.1' }` confines it to one interface address. */
  mdns?: false | Pick<MdnsInit, 'interface' | 'interval'>
  /** Kad-DHT service (default on). */
  dht?: boolean
  timeouts?: Partial<PairingTimeouts>
  /** Connections to paired devices: re-key threshold and timeouts (tests use small values). */
  connection?: {
    rekeyAfterFrames?: number
    timeouts?: Partial<ConnectionOptions['timeouts']>
    requestTimeout?: number
  }
  /**
   * How a silently lost device is noticed: a sealed keepalive ping after `keepaliveMs` without hearing from it,
   * and the link counts as lost after `silenceMs` of silence (defaults 500 and 1500).
   */
  liveness?: { keepaliveMs?: number; silenceMs?: number }
  logger?: Logger
  /** Also receives every actor, event and snapshot: `createInspector()` (actors/inspect.ts), for `--inspect`. */
  inspect?: (event: InspectionEvent) => void
  /** File drops: where received files land (default `$XDG_DOWNLOAD_DIR/sdnet`, else `~/Downloads/sdnet`), devices
   * (ids or names) whose drops are accepted without asking, and timeouts (tests use small values). */
  drop?: {
    dir?: string
    acceptFrom?: readonly string[]
    timeouts?: Partial<DropTimeouts>
    limits?: Partial<ManifestLimits>
    /** Tests that play a hostile sender only: rewrites each chunk frame this node sends. */
    rewriteChunk?: (frame: ChunkFrame) => ChunkFrame
  }
  /** Tests that play the attacker only: see ConnectionServiceInit.rewriteOutgoing. */
  rewriteOutgoing?: (frame: LinkFrame) => LinkFrame[]
}

export interface PairingHandle {
  sessionId: string
  /** Settles when the session ends; it never rejects: failure is `{ outcome: 'failed', reason, message }`. */
  result: Promise<PairResult>
  /** State changes, confirmation requests and the end of this session. */
  on(listener: (event: SessionEvent) => void): () => void
}

export interface SdnetNode {
  readonly deviceId: string
  readonly name: string
  readonly fingerprint: string
  readonly peerId: string
  start(): Promise<void>
  stop(): Promise<void>
  addresses(): string[]
  readonly pair: {
    generate(opts?: {
      autoAccept?: boolean
      codeTtlMs?: number
    }): PairingHandle & { code: string; expiresAt: number }
    join(code: string | readonly string[]): PairingHandle
    accept(sessionId: string): void
    reject(sessionId: string): void
    cancel(sessionId: string): void
    list(): SessionSummary[]
  }
  /** Paired devices with their connection state, last round-trip time and when they were last heard from. */
  devices(): DeviceStatus[]
  /** Sends a one-way message to a paired device (by id, unique id prefix or name) under `protocol`. */
  send(device: string, protocol: string, body: Uint8Array | string): Promise<void>
  /** Sends a request and resolves with the response body; RemoteError when the peer answered with an error. */
  request(
    device: string,
    protocol: string,
    body: Uint8Array | string,
    opts?: { timeoutMs?: number },
  ): Promise<Uint8Array>
  /** Serves `protocol`: the handler's return value answers requests. Returns a function that unregisters it. */
  handle(protocol: string, handler: MessageHandler): () => void
  /** Round-trip time to a connected device, in milliseconds. */
  ping(device: string, opts?: { timeoutMs?: number }): Promise<number>
  /** Removes the trust on both sides (the peer is told when connected). False when it was not paired. */
  revoke(device: string): Promise<{ deviceId: string; notified: boolean } | false>
  /** File drops to and from paired devices (README "Send files"). */
  readonly drop: DropApi
  /** Subscribes to the node's events (ARCHITECTURE.md "Events"); `'*'` for all. Returns an unsubscribe. */
  on(type: NodeEventType | '*', listener: (event: NodeEvent) => void): () => void
}

/**
 * Creates a node for this device. The identity is created on first use (and loaded afterwards), the trust store
 * is loaded, and nothing touches the network until `start()`.
 *
 * @example
 * const node = await createNode({ dataDir: '/tmp/alice', name: 'alice' })
 * await node.start()
 * const session = node.pair.generate({ autoAccept: true })
 * console.log('type this on the other device:', session.code)
 * console.log(await session.result)
 */
export async function createNode(options: NodeOptions): Promise<SdnetNode> {
  const log = options.logger ?? silentLogger()
  const { identity } = await loadOrCreateIdentity(options.dataDir, {
    name: options.name ?? hostname(),
    ...(options.password !== undefined && { password: options.password }),
  })
  const store = await TrustStore.open(options.dataDir)
  return new Node(options, identity, store, log)
}

/** What a person or a script needs to recognise this device. */
export function identitySummary(identity: Identity): {
  deviceId: string
  name: string
  fingerprint: string
  peerId: string
} {
  return {
    deviceId: identity.deviceId,
    name: identity.name,
    fingerprint: identity.fingerprint,
    peerId: peerIdFromPrivateKey(toLibp2pPrivateKey(identity)).toString(),
  }
}

/**
 * The one inspection hook: every state change of every actor becomes a debug line such as
 * `pair:3f2a91bc [ChallengeSent] peer.responseVerified -> AwaitingConfirmation`. Machines never log.
 */
function traceTransitions(log: Logger, events: EventBus): (event: InspectionEvent) => void {
  const last = new WeakMap<object, string>()
  return (inspection) => {
    if (inspection.type !== '@xstate.snapshot') return
    const snapshot = inspection.snapshot as { value?: unknown }
    if (snapshot.value === undefined) return
    const value = typeof snapshot.value === 'string' ? snapshot.value : JSON.stringify(snapshot.value)
    const before = last.get(inspection.actorRef)
    last.set(inspection.actorRef, value)
    if (before === value) return
    const id = (inspection.actorRef as { id?: string }).id ?? '?'
    events.emit({
      type: 'StateChanged',
      actor: id,
      from: before ?? null,
      event: inspection.event.type,
      to: value,
    })
    if (log.isLevelEnabled('debug'))
      log.debug(`${id} [${before ?? '-'}] ${inspection.event.type} -> ${value}`)
  }
}

/** Both hooks see every inspection event; `extra` is the caller's (`--inspect`). */
function withInspector(
  trace: (event: InspectionEvent) => void,
  extra: ((event: InspectionEvent) => void) | undefined,
): (event: InspectionEvent) => void {
  if (extra === undefined) return trace
  return (event) => {
    trace(event)
    extra(event)
  }
}

type NodeActor = Actor<typeof nodeMachine>

class Node implements SdnetNode {
  readonly #options: NodeOptions
  readonly #identity: Identity
  readonly #store: TrustStore
  readonly #log: Logger
  readonly #timeouts: PairingTimeouts
  readonly #connectionOptions: ConnectionOptions
  readonly #events = new EventBus()
  // Handlers registered before start() (or across restarts) are kept here and given to each connection service.
  readonly #handlers = new Map<string, MessageHandler>()
  #actor?: NodeActor
  #libp2p?: SdnetLibp2p
  #pairing?: PairingService
  #connections?: ConnectionService
  #drops?: DropService
  readonly #offerListeners = new Set<(offer: DropOffer) => void>()
  #unwatchPeers?: () => void

  constructor(options: NodeOptions, identity: Identity, store: TrustStore, log: Logger) {
    this.#options = options
    this.#identity = identity
    this.#store = store
    this.#log = log
    this.#timeouts = { ...DEFAULT_PAIRING_TIMEOUTS, ...options.timeouts }
    const c = options.connection ?? {}
    this.#connectionOptions = {
      rekeyAfterFrames: c.rekeyAfterFrames ?? DEFAULT_CONNECTION_OPTIONS.rekeyAfterFrames,
      timeouts: { ...DEFAULT_CONNECTION_OPTIONS.timeouts, ...c.timeouts },
      requestTimeout: c.requestTimeout ?? DEFAULT_CONNECTION_OPTIONS.requestTimeout,
      liveness: { ...DEFAULT_CONNECTION_OPTIONS.liveness, ...options.liveness },
    }
  }

  get peerId(): string {
    return (
      this.#libp2p?.peerId.toString() ?? peerIdFromPrivateKey(toLibp2pPrivateKey(this.#identity)).toString()
    )
  }

  get deviceId(): string {
    return this.#identity.deviceId
  }
  get name(): string {
    return this.#identity.name
  }
  get fingerprint(): string {
    return this.#identity.fingerprint
  }

  addresses(): string[] {
    return this.#libp2p?.getMultiaddrs().map((a) => a.toString()) ?? []
  }

  async start(): Promise<void> {
    if (this.#actor !== undefined) return
    const machine = nodeMachine.provide({
      actors: {
        startTransport: fromPromise(async () => this.#startTransport()),
        stopTransport: fromPromise(async () => this.#stopTransport()),
      },
    })
    const { rekeyAfterFrames, timeouts } = this.#connectionOptions
    const actor = createActor(machine, {
      input: { timeouts: { start: 30_000, stop: 10_000 }, connection: { rekeyAfterFrames, timeouts } },
      inspect: withInspector(traceTransitions(this.#log, this.#events), this.#options.inspect),
    })
    this.#actor = actor
    actor.start()
    const snapshot = await waitFor(actor, (s) => s.matches('Running') || s.status === 'done')
    if (!snapshot.matches('Running')) {
      await this.#stopTransport()
      this.#actor = undefined
      throw new NodeStartError(snapshot.error ?? snapshot.output)
    }
    await this.#connections?.start()
    await this.#drops?.start()
    this.#log.info({ peerId: this.peerId, addresses: this.addresses() }, 'node running')
  }

  async stop(): Promise<void> {
    const actor = this.#actor
    if (actor === undefined) return
    actor.send({ type: 'cmd.stop' })
    await waitFor(actor, (s) => s.status === 'done', { timeout: 20_000 }).catch(() => undefined)
    actor.stop()
    this.#actor = undefined
  }

  async #startTransport(): Promise<{ peerId: string; addresses: string[] }> {
    const libp2p = await createTransport({
      privateKey: toLibp2pPrivateKey(this.#identity),
      listen: this.#options.listen ?? ['/ip4/0.0.0.0/tcp/0'],
      mdns: this.#options.mdns ?? {},
      dht: this.#options.dht ?? true,
      // libp2p's own monitor is only a backstop: its adaptive ping timeout (clamped to 500 ms here by default)
      // aborts healthy connections that are busy moving data. Links watch their own liveness (see liveness).
      connectionMonitor: { pingInterval: 5_000, minTimeout: 5_000, maxTimeout: 10_000 },
    })
    const actor = this.#actor
    if (
      actor === undefined ||
      actor.getSnapshot().status !== 'active' ||
      !actor.getSnapshot().matches('Starting')
    ) {
      // The start timed out (or the node was stopped) while libp2p was starting: do not leave it running.
      await libp2p.stop()
      throw new NodeNotRunningError()
    }
    this.#libp2p = libp2p
    const send = (event: { type: string }) => actor.send(event as Parameters<NodeActor['send']>[0])
    const connections = new ConnectionService({
      libp2p,
      identity: this.#identity,
      store: this.#store,
      events: this.#events,
      log: this.#log,
      options: this.#connectionOptions,
      ...(this.#options.rewriteOutgoing !== undefined && { rewriteOutgoing: this.#options.rewriteOutgoing }),
      node: { send, child: (id) => actor.getSnapshot().children[id] },
    })
    for (const [protocol, handler] of this.#handlers) connections.handle(protocol, handler)
    this.#connections = connections
    this.#pairing = new PairingService({
      libp2p,
      identity: this.#identity,
      store: this.#store,
      log: this.#log,
      timeouts: this.#timeouts,
      events: this.#events,
      onPaired: (device) => connections.add(device),
      node: { send, child: (sessionId) => actor.getSnapshot().children[`pair:${sessionId}`] },
    })
    await this.#pairing.start()
    const drop = this.#options.drop ?? {}
    const drops = new DropService({
      libp2p,
      dataDir: this.#options.dataDir,
      dir: drop.dir ?? defaultDropDir(),
      // Resolved when an offer comes (as every DEVICE argument is), so a device paired after the start counts too.
      acceptFrom: (device) =>
        (drop.acceptFrom ?? []).some((query) => {
          try {
            return connections.resolve(query).id === device.id
          } catch {
            return false // not (or no longer) a unique paired device
          }
        }),
      connections,
      devices: () => this.#store.list(),
      node: { send, child: (id) => actor.getSnapshot().children[id] },
      events: this.#events,
      log: this.#log,
      timeouts: { ...DEFAULT_DROP_TIMEOUTS, ...drop.timeouts },
      ...(drop.limits !== undefined && { limits: drop.limits }),
      ...(drop.rewriteChunk !== undefined && { rewriteChunk: drop.rewriteChunk }),
    })
    drops.on((offer) => {
      for (const listener of this.#offerListeners) listener(offer)
    })
    this.#drops = drops
    this.#unwatchPeers = connectionEvents(libp2p, {
      onConnect: () => {},
      onDisconnect: (peer) => this.#events.emit({ type: 'PeerDisconnected', peerId: peer.toString() }),
    })
    // Connections start once the node machine runs (the device children are spawned in Running).
    return { peerId: libp2p.peerId.toString(), addresses: this.addresses() }
  }

  async #stopTransport(): Promise<void> {
    this.#unwatchPeers?.()
    this.#drops?.stop()
    this.#drops = undefined
    this.#connections?.stop()
    this.#connections = undefined
    this.#pairing?.stop()
    await this.#libp2p?.stop()
    this.#libp2p = undefined
  }

  #service(): PairingService {
    if (this.#pairing === undefined || this.#actor === undefined) throw new NodeNotRunningError()
    return this.#pairing
  }

  #handle(service: PairingService, sessionId: string): PairingHandle {
    return {
      sessionId,
      result: service.result(sessionId)!,
      on: (listener) => service.subscribe(sessionId, listener),
    }
  }

  readonly pair: SdnetNode['pair'] = {
    generate: (opts = {}) => {
      const service = this.#service()
      const { sessionId, code, expiresAt } = service.generate({
        autoAccept: opts.autoAccept ?? false,
        ...(opts.codeTtlMs !== undefined && { codeTtl: opts.codeTtlMs }),
      })
      return { ...this.#handle(service, sessionId), code, expiresAt }
    },
    join: (code) => {
      const service = this.#service()
      return this.#handle(service, service.join(code).sessionId)
    },
    accept: (sessionId) => this.#command(sessionId, 'cmd.accept'),
    reject: (sessionId) => this.#command(sessionId, 'cmd.reject'),
    cancel: (sessionId) => this.#command(sessionId, 'cmd.cancel'),
    list: () => this.#pairing?.list() ?? [],
  }

  #command(sessionId: string, type: 'cmd.accept' | 'cmd.reject' | 'cmd.cancel'): void {
    const problem = this.#service().command(sessionId, type)
    if (problem === 'unknown') throw new UnknownSessionError(sessionId, this.pair.list())
    if (problem === 'not-waiting') {
      const state = this.pair.list().find((s) => s.sessionId === sessionId)?.state ?? 'unknown'
      throw new SessionNotWaitingError(sessionId, state)
    }
  }

  devices(): DeviceStatus[] {
    if (this.#connections !== undefined) return this.#connections.devices()
    return this.#store.list().map(({ id, name, fingerprint, peerId, pairedAt }) => ({
      id,
      name,
      fingerprint,
      peerId,
      pairedAt,
      state: 'offline' as const,
      rttMs: null,
      lastSeen: null,
      rejected: { replayed: 0, tampered: 0 },
    }))
  }

  /** Runs `use` on the connection service; before start and after stop it rejects NodeNotRunningError. */
  #withLinks<T>(use: (links: ConnectionService) => Promise<T>): Promise<T> {
    const links = this.#connections
    return links === undefined ? Promise.reject(new NodeNotRunningError()) : use(links)
  }

  send(device: string, protocol: string, body: Uint8Array | string): Promise<void> {
    // #withLinks without its closure: this is the call a fast sender makes millions of times.
    const links = this.#connections
    return links === undefined
      ? Promise.reject(new NodeNotRunningError())
      : links.send(device, protocol, bytes(body))
  }

  request(device: string, protocol: string, body: Uint8Array | string, opts: { timeoutMs?: number } = {}) {
    return this.#withLinks((links) => links.request(device, protocol, bytes(body), opts.timeoutMs))
  }

  handle(protocol: string, handler: MessageHandler): () => void {
    const off = this.#connections?.handle(protocol, handler)
    this.#handlers.set(protocol, handler)
    return () => {
      off?.()
      if (this.#handlers.get(protocol) === handler) this.#handlers.delete(protocol)
    }
  }

  ping(device: string, opts: { timeoutMs?: number } = {}): Promise<number> {
    return this.#withLinks((links) => links.ping(device, opts.timeoutMs))
  }

  revoke(device: string): Promise<{ deviceId: string; notified: boolean } | false> {
    return this.#withLinks((links) => links.revoke(device))
  }

  on(type: NodeEventType | '*', listener: (event: NodeEvent) => void): () => void {
    return this.#events.on(type, listener)
  }

  #dropService(): DropService {
    if (this.#drops === undefined) throw new NodeNotRunningError()
    return this.#drops
  }

  readonly drop: DropApi = {
    send: (device, paths, opts) => {
      const drops = this.#drops
      return drops === undefined ? Promise.reject(new NodeNotRunningError()) : drops.send(device, paths, opts)
    },
    on: (_type, listener) => {
      this.#offerListeners.add(listener)
      return () => this.#offerListeners.delete(listener)
    },
    list: () => this.#drops?.list() ?? [],
    accept: (transferId) => this.#dropService().accept(transferId),
    reject: (transferId) => this.#dropService().reject(transferId),
    cancel: (transferId) => this.#dropService().cancel(transferId),
    get: (transferId) => this.#dropService().get(transferId),
  }
}

/** `$XDG_DOWNLOAD_DIR/sdnet`, else `~/Downloads/sdnet`. */
export function defaultDropDir(): string {
  const downloads = process.env.XDG_DOWNLOAD_DIR
  return join(downloads !== undefined && downloads !== '' ? downloads : join(homedir(), 'Downloads'), 'sdnet')
}

const bytes = (body: Uint8Array | string) =>
  typeof body === 'string' ? new TextEncoder().encode(body) : body
