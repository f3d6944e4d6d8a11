// Links and their keys (ARCHITECTURE.md "Handshake and session keys", "Liveness and one link per pair"): dialling
// a paired device and taking its inbound links, one link per device pair, the signed hello/welcome handshake and
// the re-keys that the `keys` child of each `conn:<deviceId>` machine drives, and the end of a link. Verified
// frames go to the machines as `peer.*` events; once keys are installed the messenger reads the link.
import { performance } from 'node:perf_hooks'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { AnyActorRef } from 'xstate'
import { type Link, openLink } from '../../transport/link.ts'
import type { SealedMessage } from '../../transport/msg-codec.ts'
import { DeviceNotConnectedError } from '../errors.ts'
import type { Connection, ConnectionContext, Effect } from './connection.ts'
import type { Messenger } from './messenger.ts'
import { SealedChannel } from './sealed-channel.ts'
import { Handshake, type HandshakePeer, type HelloMessage, Rekey } from './session-crypto.ts'

export class LinkKeeper {
  readonly #ctx: ConnectionContext
  readonly #messenger: Messenger

  constructor(ctx: ConnectionContext, messenger: Messenger) {
    this.#ctx = ctx
    this.#messenger = messenger
  }

  /** The connection machine's `openHandshake`: we opened the link, so we say hello first. */
  openHandshake(conn: Connection): void {
    conn.handshake = Handshake.open(this.#ctx.me, peerOf(conn))
    this.#watchKeys(conn)
  }

  /** The connection machine's `acceptHandshake`: the peer opened the link and says hello first. */
  acceptHandshake(conn: Connection): void {
    conn.handshake = Handshake.accept(this.#ctx.me, peerOf(conn))
    this.#watchKeys(conn)
    void this.#readHello(conn)
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
        conn.rekey = Rekey.open(this.#ctx.me, peerOf(conn), conn.keys)
        void this.#messenger.writeSealed(conn, link, { t: 'rekey', ...conn.rekey.rekey() }).catch(() => {})
        conn.held ??= []
        if (conn.rekeySettled === undefined) {
          const settled = Promise.withResolvers<void>()
          conn.rekeySettled = { promise: settled.promise, resolve: () => settled.resolve() }
        }
        return
      case 'sendRekeyAck':
        if (conn.rekey === undefined) return
        void this.#messenger
          .writeSealed(conn, link, { t: 'rekeyAck', ...conn.rekey.rekeyAck() })
          .catch(() => {})
        return
      default:
        this.#ctx.init.log.warn({ effect: effect.type }, 'unknown effect from a session-key machine')
    }
  }

  /** The peer's `rekey`. Both started one: the opener's wins (ARCHITECTURE.md). */
  onRekey(conn: Connection, message: Extract<SealedMessage, { t: 'rekey' }>): void {
    if (conn.keys === undefined) return
    // The opener keeps its own and waits for the acceptor's ack; the acceptor drops its own and answers this one.
    if (conn.rekey !== undefined && conn.role === 'opener') return
    const rekey = Rekey.accept(this.#ctx.me, peerOf(conn), conn.keys)
    const ok = rekey.verifyRekey(message)
    if (ok) conn.rekey = rekey
    this.#ctx.forward(conn, {
      type: ok ? 'peer.rekeyVerified' : 'peer.badSignature',
      peerId: conn.device.peerId,
    })
  }

  onRekeyAck(conn: Connection, message: Extract<SealedMessage, { t: 'rekeyAck' }>): void {
    const ok = conn.rekey?.verifyRekeyAck(message) === true
    this.#ctx.forward(conn, {
      type: ok ? 'peer.rekeyAckVerified' : 'peer.badSignature',
      peerId: conn.device.peerId,
    })
  }

  async dial(conn: Connection): Promise<void> {
    if (conn.link !== undefined || conn.dialing) return
    conn.dialing = true
    const abort = new AbortController()
    conn.dialAbort = abort
    const { libp2p, options } = this.#ctx.init
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
      if (stored.length > 0) await libp2p.peerStore.merge(id, { multiaddrs: stored })
      link = await openLink(libp2p, id, { timeoutMs: options.timeouts.dial, signal: abort.signal })
    } catch (err) {
      conn.dialing = false
      if (conn.link === undefined && !abort.signal.aborted) {
        this.#ctx.forward(conn, {
          type: 'link.dialFailed',
          peerId: conn.device.peerId,
          message: (err as Error).message,
        })
      }
      return
    }
    conn.dialing = false
    if (conn.link !== undefined || !this.#ctx.byId.has(conn.device.id) || conn.state !== 'Dialing') {
      // The peer's link was taken while we dialled (see onInbound), the device was revoked, or the machine gave
      // up on this dial (its own timer) and moved on: ours is surplus.
      void link.close()
      return
    }
    this.#adopt(conn, link, 'opener')
    this.#ctx.forward(conn, { type: 'link.up', peerId: conn.device.peerId })
  }

  /**
   * One link per device pair (ARCHITECTURE.md). When both devices dial at once, the link opened by the lower peer
   * id wins, decided the same way on both sides: the lower side refuses the inbound link while its own is pending,
   * the higher side gives its own up for the inbound one. While a link is established, a new inbound one is
   * refused: if the peer really lost the old one (it froze, the cable came back), our liveness check notices
   * within `silenceMs` and the peer's next attempt gets through; a restarted peer's old TCP connection closes at
   * once.
   */
  onInbound(link: Link): void {
    const conn = this.#ctx.byPeer.get(link.remotePeer.toString())
    if (conn === undefined) {
      link.abort(new Error('not a paired device'))
      return
    }
    const established = conn.channel !== undefined
    const ownPending = conn.dialing || (conn.role === 'opener' && !established)
    if (established || (ownPending && this.#ctx.init.libp2p.peerId.toString() < conn.device.peerId)) {
      void link.close()
      return
    }
    conn.dialAbort?.abort()
    if (conn.link !== undefined) {
      this.dropLink(conn, new Error('replaced by a newer link'))
      this.#ctx.forward(conn, { type: 'link.lost', peerId: conn.device.peerId })
    }
    this.#adopt(conn, link, 'acceptor')
    this.#ctx.forward(conn, { type: 'link.inbound', peerId: conn.device.peerId })
  }

  #adopt(conn: Connection, link: Link, role: 'opener' | 'acceptor'): void {
    conn.link = link
    conn.role = role
    void link.closed.then(() => {
      // Once keys are installed the read loop owns the end of the link: it first delivers what is still queued
      // (a `revoke`, say), then reports the loss.
      if (conn.link !== link || conn.reading === link) return
      this.lost(conn, link)
    })
  }

  /** `link` ended (closed, reset, silent): the machine hears `link.lost` and reconnects. */
  lost(conn: Connection, link: Link): void {
    if (conn.link !== link) return
    this.dropLink(conn, new Error('the link was lost'))
    this.#ctx.forward(conn, { type: 'link.lost', peerId: conn.device.peerId })
  }

  /** Forgets the link and its keys; waiters fail with a reason a user can act on. */
  dropLink(conn: Connection, reason: Error): void {
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
    await this.#readHandshake(conn, link, 'hello', (frame) => handshake.verifyHello(frame))
  }

  async #readWelcome(conn: Connection, link: Link): Promise<void> {
    const handshake = conn.handshake
    if (handshake === undefined) return
    await this.#readHandshake(conn, link, 'welcome', (frame) => handshake.verifyWelcome(frame))
  }

  /**
   * Reads the peer's `hello` or `welcome` and tells the machine whether its signature holds. Nothing is told when
   * no frame came within the handshake timeout or the link went: the machine's own timer or `link.lost` ends it.
   */
  async #readHandshake(
    conn: Connection,
    link: Link,
    expected: 'hello' | 'welcome',
    verify: (frame: HelloMessage) => boolean,
  ): Promise<void> {
    const { timeouts } = this.#ctx.init.options
    const frame = await link.read({ timeoutMs: timeouts.handshake }).catch(() => undefined)
    if (conn.link !== link || frame === undefined) return
    const ok = frame.t === expected && verify(frame)
    const verified = expected === 'hello' ? 'peer.helloVerified' : 'peer.welcomeVerified'
    this.#ctx.forward(conn, { type: ok ? verified : 'peer.badSignature', peerId: conn.device.peerId })
  }

  #installKeys(conn: Connection, link: Link, epoch: number): void {
    if (epoch === 0) {
      if (conn.handshake === undefined) return
      conn.keys = conn.handshake.keys()
      conn.channel = new SealedChannel(conn.keys)
      conn.handshake = undefined
      conn.heardAt = performance.now()
      void this.#messenger.readLoop(conn, link)
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
    for (const entry of held)
      this.#messenger.sendMessage(conn, entry.message).then(entry.resolve, entry.reject)
  }
}

/** The paired device as the handshake checks it: its peer id and the key stored at pairing time. */
function peerOf(conn: Connection): HandshakePeer {
  return {
    peerIdBytes: peerIdFromString(conn.device.peerId).toMultihash().bytes,
    publicKey: conn.device.publicKey,
  }
}
