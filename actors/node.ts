// The composition root: loads the identity and trust store, builds the libp2p transport, provides the node
// machine's effects and runs it. `createNode` is the library's public entry.
import { hostname } from 'node:os'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { type Actor, createActor, fromPromise, type InspectionEvent, waitFor } from 'xstate'
import { nodeMachine } from '../machines/node.machine.ts'
import { createTransport, type SdnetLibp2p } from '../transport/libp2p-node.ts'
import type { MdnsInit } from '../transport/mdns.ts'
import { NodeNotRunningError, NodeStartError, SessionNotWaitingError, UnknownSessionError } from './errors.ts'
import { type Identity, loadOrCreateIdentity, toLibp2pPrivateKey } from './identity.ts'
import { type Logger, silentLogger } from './logger.ts'
import {
  DEFAULT_PAIRING_TIMEOUTS,
  PairingService,
  type PairingTimeouts,
  type PairResult,
  type SessionEvent,
  type SessionSummary,
} from './pairing-service.ts'
import { TrustStore } from './trust-store.ts'

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
  logger?: Logger
}

export interface DeviceRecord {
  id: string
  name: string
  fingerprint: string
  peerId: string
  pairedAt: number
  addresses: string[]
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
  devices(): DeviceRecord[]
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
function traceTransitions(log: Logger): (event: InspectionEvent) => void {
  const last = new WeakMap<object, string>()
  return (inspection) => {
    if (inspection.type !== '@xstate.snapshot') return
    const snapshot = inspection.snapshot as { value?: unknown }
    if (snapshot.value === undefined) return
    const value = typeof snapshot.value === 'string' ? snapshot.value : JSON.stringify(snapshot.value)
    const before = last.get(inspection.actorRef)
    last.set(inspection.actorRef, value)
    if (before === value || !log.isLevelEnabled('debug')) return
    const id = (inspection.actorRef as { id?: string }).id ?? '?'
    log.debug(`${id} [${before ?? '-'}] ${inspection.event.type} -> ${value}`)
  }
}

type NodeActor = Actor<typeof nodeMachine>

class Node implements SdnetNode {
  readonly #options: NodeOptions
  readonly #identity: Identity
  readonly #store: TrustStore
  readonly #log: Logger
  readonly #timeouts: PairingTimeouts
  #actor?: NodeActor
  #libp2p?: SdnetLibp2p
  #pairing?: PairingService

  constructor(options: NodeOptions, identity: Identity, store: TrustStore, log: Logger) {
    this.#options = options
    this.#identity = identity
    this.#store = store
    this.#log = log
    this.#timeouts = { ...DEFAULT_PAIRING_TIMEOUTS, ...options.timeouts }
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
    const actor = createActor(machine, {
      input: { timeouts: { start: 30_000, stop: 10_000 } },
      inspect: traceTransitions(this.#log),
    })
    this.#actor = actor
    actor.start()
    const snapshot = await waitFor(actor, (s) => s.matches('Running') || s.status === 'done')
    if (!snapshot.matches('Running')) {
      await this.#stopTransport()
      this.#actor = undefined
      throw new NodeStartError(snapshot.error ?? snapshot.output)
    }
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
    this.#pairing = new PairingService({
      libp2p,
      identity: this.#identity,
      store: this.#store,
      log: this.#log,
      timeouts: this.#timeouts,
      node: {
        send: (event) => actor.send(event as Parameters<NodeActor['send']>[0]),
        child: (sessionId) => actor.getSnapshot().children[`pair:${sessionId}`],
      },
    })
    await this.#pairing.start()
    return { peerId: libp2p.peerId.toString(), addresses: this.addresses() }
  }

  async #stopTransport(): Promise<void> {
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

  devices(): DeviceRecord[] {
    return this.#store.list().map(({ id, name, fingerprint, peerId, pairedAt, addresses }) => ({
      id,
      name,
      fingerprint,
      peerId,
      pairedAt,
      addresses,
    }))
  }
}
