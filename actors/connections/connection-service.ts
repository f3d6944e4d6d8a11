// The I/O shell around the connection and session-key machines (ARCHITECTURE.md "Connections between paired
// devices"): one `conn:<deviceId>` actor per paired device, one `/sdnet/msg/1.0.0` link under it. The service
// keeps one `Connection` record per device, turns the machine's effects into work for the link keeper
// (links.ts: dial, inbound links, handshake and re-keys) and the messenger (messenger.ts: sealed messages), and
// is what the public API calls: devices, send, request, ping, handle, revoke.
import { randomBytes } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import type { AnyActorRef } from 'xstate'
import { handleLinks } from '../../transport/link.ts'
import { MAX_BODY_BYTES } from '../../transport/msg-codec.ts'
import {
  AmbiguousDeviceError,
  DeviceNotConnectedError,
  InvalidProtocolNameError,
  MessageTooLargeError,
  UnknownDeviceError,
} from '../errors.ts'
import type { PairedDevice } from '../store/index.ts'
import {
  type Connection,
  type ConnectionContext,
  type ConnectionServiceInit,
  type DeviceStatus,
  type Effect,
  type MessageHandler,
  publicState,
} from './connection.ts'
import { LinkKeeper } from './links.ts'
import { watchLiveness } from './liveness.ts'
import { Messenger } from './messenger.ts'

const PROTOCOL_NAME = /^[A-Za-z0-9._/-]{1,64}$/

export class ConnectionService {
  readonly #init: ConnectionServiceInit
  readonly #byId = new Map<string, Connection>()
  readonly #byPeer = new Map<string, Connection>()
  readonly #ctx: ConnectionContext
  readonly #links: LinkKeeper
  readonly #messenger: Messenger
  #liveness?: NodeJS.Timeout

  constructor(init: ConnectionServiceInit) {
    this.#init = init
    this.#ctx = {
      init,
      now: init.now ?? Date.now,
      me: { seed: init.identity.seed, peerIdBytes: init.libp2p.peerId.toMultihash().bytes },
      byId: this.#byId,
      byPeer: this.#byPeer,
      forward: (conn, event) => this.#forward(conn, event),
    }
    this.#messenger = new Messenger(this.#ctx, {
      ended: (conn, link) => this.#links.lost(conn, link),
      rekey: (conn, message) => this.#links.onRekey(conn, message),
      rekeyAck: (conn, message) => this.#links.onRekeyAck(conn, message),
    })
    this.#links = new LinkKeeper(this.#ctx, this.#messenger)
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
      (link) => this.#links.onInbound(link),
    )
    for (const device of this.#init.store.list()) this.add(device)
    this.#liveness = watchLiveness(this.#ctx, this.#links, this.#messenger)
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
    for (const conn of this.#byId.values()) this.#links.dropLink(conn, new Error('the node is stopping'))
  }

  handle(protocol: string, handler: MessageHandler): () => void {
    checkProtocol(protocol)
    return this.#messenger.handle(protocol, handler)
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
      return this.#messenger.send(this.#connected(query), protocol, body)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  async request(query: string, protocol: string, body: Uint8Array, timeoutMs?: number): Promise<Uint8Array> {
    checkProtocol(protocol)
    checkBody(body)
    const conn = this.#connected(query)
    return this.#messenger.request(conn, protocol, body, timeoutMs ?? this.#init.options.requestTimeout)
  }

  /** One ping over the sealed link; resolves with the round-trip time in milliseconds. */
  async ping(query: string, timeoutMs = 5_000): Promise<number> {
    return this.#messenger.ping(this.#connected(query), timeoutMs)
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
    this.#links.dropLink(conn, new Error('the device was revoked'))
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
        void this.#links.dial(conn)
        return
      case 'openHandshake':
        this.#links.openHandshake(conn)
        return
      case 'acceptHandshake':
        this.#links.acceptHandshake(conn)
        return
      case 'closeLink':
        this.#links.dropLink(conn, new Error('the link was closed'))
        return
      case 'sendRevoke':
        if (conn.channel !== undefined && conn.link !== undefined) {
          // Sealed under the current keys, flushed, then the link closes: the peer learns it before we go. The
          // link is detached first so that `closeLink`, which follows, does not reset it before the frame leaves.
          const link = conn.link
          const written = this.#messenger.writeSealed(conn, link, { t: 'revoke' })
          conn.link = undefined
          void written.then(() => link.close()).catch(() => link.abort(new Error('revoked')))
        }
        return
      case 'announceConnected':
        conn.lastSeen = this.#ctx.now()
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
