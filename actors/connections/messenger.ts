// The sealed-message protocol on an established link (ARCHITECTURE.md "Sealed messages"): sealing and writing
// messages (batched by the outbox, held while a re-key is in flight), reading and opening the peer's sealed
// frames, and what they carry: pings, one-way messages, requests and their answers, revocation. Key frames
// (`rekey`, `rekeyAck`) and the end of a link go to the link keeper through `LinkHooks`.
import { performance } from 'node:perf_hooks'
import { concatBytes } from '@noble/hashes/utils.js'
import type { Link } from '../../transport/link.ts'
import {
  decodeSealedMessage,
  encodeSealedMessageParts,
  MAX_BODY_BYTES,
  type OutgoingMessage,
  type SealedErrorCode,
  type SealedMessage,
} from '../../transport/msg-codec.ts'
import { DeviceNotConnectedError, RemoteError, RequestTimeoutError } from '../errors.ts'
import { type Connection, type ConnectionContext, type MessageHandler, publicState } from './connection.ts'
import { addToOutbox, BATCH_ALONE_BYTES, joinRun, openOutbox, queued, sizeOf } from './outbox.ts'

/** Messages queued while a link is re-keying or not yet up; past this, sending fails instead of growing memory. */
const MAX_QUEUED_MESSAGES = 4096

/** What the messenger hands back to the link keeper. */
export interface LinkHooks {
  /** The read loop of `link` ended: the link is lost. */
  ended(conn: Connection, link: Link): void
  rekey(conn: Connection, message: Extract<SealedMessage, { t: 'rekey' }>): void
  rekeyAck(conn: Connection, message: Extract<SealedMessage, { t: 'rekeyAck' }>): void
}

export class Messenger {
  readonly #ctx: ConnectionContext
  readonly #hooks: LinkHooks
  readonly #handlers = new Map<string, MessageHandler>()

  constructor(ctx: ConnectionContext, hooks: LinkHooks) {
    this.#ctx = ctx
    this.#hooks = hooks
  }

  handle(protocol: string, handler: MessageHandler): () => void {
    this.#handlers.set(protocol, handler)
    return () => {
      if (this.#handlers.get(protocol) === handler) this.#handlers.delete(protocol)
    }
  }

  /** A one-way message; resolves once it is queued on the link (see `ConnectionService.send`). */
  send(conn: Connection, protocol: string, body: Uint8Array): Promise<void> {
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
    return this.sendMessage(conn, { t: 'msg', protocol, body })
  }

  async request(
    conn: Connection,
    protocol: string,
    body: Uint8Array,
    timeoutMs: number,
  ): Promise<Uint8Array> {
    const id = conn.nextId++
    const reply = await this.#ask(conn, { t: 'req', id, protocol, body }, protocol, timeoutMs)
    if (reply.t === 'err') throw new RemoteError(conn.device.name, reply.code, reply.message)
    return reply.t === 'res' ? reply.body : new Uint8Array()
  }

  async ping(conn: Connection, timeoutMs: number): Promise<number> {
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
      await this.sendMessage(conn, message)
    } catch (err) {
      clearTimeout(conn.waiters.get(id)?.timer)
      conn.waiters.delete(id)
      answer.catch(() => {})
      throw err
    }
    return answer
  }

  /**
   * Seals one message under the current keys and queues it on `link`. Only then is the frame count reported: a
   * re-key it triggers must go out *after* this frame, which the peer still opens with the old keys.
   */
  writeSealed(conn: Connection, link: Link, message: OutgoingMessage): Promise<void> {
    const channel = conn.channel!
    const { n, ct } = channel.sealParts(encodeSealedMessageParts(message))
    conn.sentAt = performance.now()
    const rewrite = this.#ctx.init.rewriteOutgoing
    const written =
      rewrite === undefined
        ? link.write({ t: 'sealed', n, ct })
        : link.writeMany(rewrite({ t: 'sealed', n, ct: concatBytes(...ct) }))
    if (!conn.rekeyReported && channel.sent >= this.#ctx.init.options.rekeyAfterFrames) {
      conn.rekeyReported = true
      this.#ctx.forward(conn, { type: 'keys.framesSent', count: channel.sent })
    }
    return written
  }

  /** Settles once `message` is queued on the link, or waiting for a re-key to end; never throws. */
  sendMessage(conn: Connection, message: OutgoingMessage): Promise<void> {
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
        if (conn.held !== undefined) return this.sendMessage(conn, message)
        return this.writeSealed(conn, link, message)
      }
      if (outbox === undefined || outbox.link !== link) {
        // The first message of a turn goes out at once (a lone ping or request waits for nothing); the rest of
        // the turn's messages gather in the outbox.
        conn.outbox = openOutbox(
          link,
          (closing) => {
            if (conn.outbox === closing) conn.outbox = undefined
          },
          (messages) => this.#flushOutbox(conn, link, messages),
        )
        return this.writeSealed(conn, link, message)
      }
      addToOutbox(outbox, message, size)
      return queued(outbox)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  async #flushOutbox(conn: Connection, link: Link, messages: OutgoingMessage[]): Promise<void> {
    // Queued for a link that has gone: lost with it, like the frames it had not sent yet.
    if (conn.link !== link || conn.channel === undefined) return
    if (conn.held !== undefined) {
      // A re-key started during the turn: these wait for its end with the others.
      for (const message of messages) conn.held.push({ message, resolve: () => {}, reject: () => {} })
      return
    }
    await this.writeSealed(conn, link, messages.length === 1 ? messages[0]! : { t: 'batch', messages })
  }

  /** Opens and handles the peer's sealed frames until the link ends, then reports its loss. */
  async readLoop(conn: Connection, link: Link): Promise<void> {
    const log = this.#ctx.init.log
    conn.reading = link
    try {
      for await (const frame of link.frames()) {
        if (conn.link !== link || conn.channel === undefined) return
        conn.heardAt = performance.now()
        if (frame.t !== 'sealed') {
          log.warn({ device: conn.device.id, frame: frame.t }, 'unexpected handshake frame on a live link')
          continue
        }
        const before = conn.channel.stats.rejectedReplay
        const plaintext = conn.channel.open(frame)
        if (plaintext === undefined) {
          // Replayed, reordered or tampered: dropped and counted; the link stays up.
          const replay = conn.channel.stats.rejectedReplay > before
          if (replay) conn.rejected.replayed++
          else conn.rejected.tampered++
          log.warn({ device: conn.device.id, replay }, 'rejected a sealed frame')
          continue
        }
        let message: SealedMessage
        try {
          message = decodeSealedMessage(plaintext)
        } catch (err) {
          log.warn({ err, device: conn.device.id }, 'dropped a malformed sealed message')
          continue
        }
        conn.lastSeen = this.#ctx.now()
        this.#onMessage(conn, link, message)
      }
    } catch (err) {
      log.warn({ err, device: conn.device.id }, 'link read failed')
      if (conn.link === link) link.abort(err as Error)
    } finally {
      if (conn.reading === link) conn.reading = undefined
      this.#hooks.ended(conn, link)
    }
  }

  #onMessage(conn: Connection, link: Link, message: SealedMessage): void {
    switch (message.t) {
      case 'ping':
        void this.sendMessage(conn, { t: 'pong', id: message.id }).catch(() => {})
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
        this.#ctx.forward(conn, { type: 'peer.revoked', peerId: conn.device.peerId })
        return
      case 'rekey':
        this.#hooks.rekey(conn, message)
        return
      case 'batch':
        for (const inner of message.messages) this.#onMessage(conn, link, inner)
        return
      case 'rekeyAck':
        this.#hooks.rekeyAck(conn, message)
        return
      default:
        this.#ctx.init.log.warn(
          { device: conn.device.id, link: link.remotePeer.toString() },
          'unknown sealed message',
        )
    }
  }

  /** A one-way message: its handler runs, and what goes wrong is logged (the sender is not waiting for it). */
  #receive(conn: Connection, protocol: string, body: Uint8Array): void {
    const failed = (err: unknown) => this.#ctx.init.log.warn({ err, protocol }, 'message handler failed')
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
    this.#ctx.init.events.emit({
      type: 'MessageReceived',
      deviceId: conn.device.id,
      protocol,
      size: body.length,
    })
    const handler = this.#handlers.get(protocol)
    if (handler === undefined) return undefined
    return handler({ deviceId: conn.device.id, name: conn.device.name, protocol, body })
  }

  async #answer(conn: Connection, request: Extract<SealedMessage, { t: 'req' }>): Promise<void> {
    const reply = (message: SealedMessage) => this.sendMessage(conn, message).catch(() => {})
    if (!this.#handlers.has(request.protocol)) {
      this.#ctx.init.events.emit({
        type: 'MessageReceived',
        deviceId: conn.device.id,
        protocol: request.protocol,
        size: request.body.length,
      })
      const me = this.#ctx.init.identity.name
      return reply(err(request.id, 'UnknownProtocol', `No handler for "${request.protocol}" on ${me}.`))
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
}

function err(id: number, code: SealedErrorCode, message: string): SealedMessage {
  return { t: 'err', id, code, message }
}
