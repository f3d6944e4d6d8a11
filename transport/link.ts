// The link between two paired devices: one long-lived, bidirectional `/sdnet/msg/1.0.0` stream carrying
// length-prefixed link frames (ARCHITECTURE.md "Connections between paired devices"). This module moves frames;
// the handshake, the sealing and what the frames mean belong to actors/.
//
// Built for throughput. Reading: the stream's 'message' events are parsed in place (a frame that lies inside one
// chunk is decoded without a copy) into a bounded queue; when the queue is full the stream is paused, which stops
// yamux window updates, so a fast sender is held back end to end. Writing: frames wait in an outbox until the
// event loop turns (or 64 KiB are waiting) and go out as one `send`, so a burst of small frames costs one yamux
// frame rather than one each, while a large ciphertext is handed over without a copy. When the muxer cannot keep
// up, `send` buffers; writers wait while more than 4 MiB is unsent, until the stream's 'drain' or 'idle', and
// otherwise give the event loop a turn after every 1 MiB sent without one.

import type { Connection, Libp2p, PeerId, Stream, StreamCloseEvent } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { Uint8ArrayList } from 'uint8arraylist'
import {
  FrameError,
  LinkClosedError,
  LinkOpenFailedError,
  MalformedFrameError,
  OversizedFrameError,
} from './errors.ts'
import type { LinkFrame, SealedFrameParts } from './msg-codec.ts'
import {
  decodeLinkFrame,
  encodeLinkFrameParts,
  MAX_LINK_FRAME_BYTES,
  MSG_PROTOCOL,
  varintLength,
} from './msg-codec.ts'
import { FrameQueue, openProtocolStream, resumeStream } from './streams.ts'

export { MSG_PROTOCOL } from './msg-codec.ts'

/** One link to one paired device. */
export interface Link {
  readonly remotePeer: PeerId
  /** `remotePeer.toMultihash().bytes`: the id Noise authenticated, as the handshake transcript takes it. */
  readonly remotePeerIdBytes: Uint8Array
  readonly connection: Connection
  /**
   * The next frame, for the handshake; rejects ReadTimeoutError (link still usable), the signal's reason,
   * LinkClosedError once the stream has ended, or the FrameError of an invalid frame.
   */
  read(opts: { timeoutMs: number; signal?: AbortSignal }): Promise<LinkFrame>
  /**
   * After the handshake: every frame, in order, until the stream ends (then the iteration ends). An invalid frame
   * ends it with its FrameError; the link stays writable, and the rest of the peer's data is dropped.
   */
  frames(): AsyncIterable<LinkFrame>
  /**
   * Queues a frame. Resolves at once unless the stream is backed up, then when it drains, or unless 1 MiB went to
   * the stream since the last turn of the event loop, then after one. Rejects a FrameError for a frame that fails
   * validation (nothing is sent), LinkClosedError once the link is closing or closed.
   */
  write(frame: LinkFrame | SealedFrameParts): Promise<void>
  /** Like `write` for several frames; none is sent unless all are valid. */
  writeMany(frames: Array<LinkFrame | SealedFrameParts>): Promise<void>
  /** Sends what is queued, ends our side and waits (at most 2 s, then resets) until the peer has ended its side. */
  close(): Promise<void>
  /** Resets the stream at once; queued frames are dropped. */
  abort(err: Error): void
  /** Resolves when the stream is gone for any reason: closed by either side, reset, or the connection dropped. */
  readonly closed: Promise<void>
}

// Per connection and direction: the link, one crossing it when both devices dial at once, and a couple still
// closing (ARCHITECTURE.md: exactly one link per device pair).
const MAX_LINK_STREAMS = 4
// The reader pauses the stream above these and resumes below half of them. Bytes count ciphertext; at least one
// frame of the largest size always fits.
const MAX_QUEUED_BYTES = 4 * 1024 * 1024
const MAX_QUEUED_FRAMES = 4096
// Outbox: flush at once when this much waits; a part this large (a ciphertext) goes out as it is, uncopied.
const BATCH_BYTES = 64 * 1024
const ALONE_BYTES = 4 * 1024
// Writers wait while the stream holds more than this unsent (and resume below half of it).
const MAX_UNSENT_BYTES = 4 * 1024 * 1024
// A writer that has sent this much without a turn of the event loop waits for one, so that a bulk transfer does not
// hold up timers, pings and the links to other devices (without it, a flood of small messages kept the sender's
// loop busy for ~100-480 ms at a time: until the peer's yamux window ran out).
const TURN_BYTES = 1024 * 1024
// A paused yamux stream still receives what the window allowed, up to yamux's MAX_STREAM_WINDOW (16 MiB);
// libp2p resets a stream whose buffer passes maxReadBufferLength (4 MiB by default), so make room for it.
const PAUSED_READ_BUFFER_BYTES = 16 * 1024 * 1024 + MAX_LINK_FRAME_BYTES
const CLOSE_TIMEOUT_MS = 2_000
const MAX_LENGTH_PREFIX_BYTES = varintLength(MAX_LINK_FRAME_BYTES)

/**
 * Serves `/sdnet/msg/1.0.0`. `accept` decides from the authenticated peer id (the trust store): false resets the
 * stream at once. `onLink` gets every accepted link and owns it from then on.
 *
 * @example
 * await handleLinks(node, (peer) => trustStore.has(peer.toString()), (link) => connections.inbound(link))
 */
export async function handleLinks(
  node: Libp2p,
  accept: (remotePeer: PeerId) => boolean,
  onLink: (link: Link) => void,
): Promise<void> {
  await node.handle(
    MSG_PROTOCOL,
    (stream: Stream, connection: Connection) => {
      try {
        if (!accept(connection.remotePeer)) {
          stream.abort(new Error(`${connection.remotePeer.toString()} is not a paired device`))
          return
        }
        onLink(new StreamLink(stream, connection))
      } catch (err) {
        // A throwing callback: drop this stream, keep serving.
        stream.abort(err instanceof Error ? err : new Error(String(err)))
      }
    },
    { maxInboundStreams: MAX_LINK_STREAMS, maxOutboundStreams: MAX_LINK_STREAMS },
  )
}

/**
 * Dials `peer` (reusing an open connection) and opens a link; rejects DialTimeoutError after `timeoutMs`,
 * LinkOpenFailedError when it cannot, or the reason of `signal` when that aborts first. A device that does not
 * accept us resets the link: its first read rejects LinkClosedError.
 *
 * @example
 * const link = await openLink(node, peerId, { timeoutMs: 5_000 })
 * await link.write(hello)
 */
export async function openLink(
  node: Libp2p,
  peer: PeerId | Multiaddr[],
  opts: { timeoutMs: number; signal?: AbortSignal },
): Promise<Link> {
  const { stream, connection } = await openProtocolStream(
    node,
    peer,
    MSG_PROTOCOL,
    { ...opts, maxOutboundStreams: MAX_LINK_STREAMS },
    (target, cause) => new LinkOpenFailedError(target, cause),
  )
  return new StreamLink(stream, connection)
}

class StreamLink implements Link {
  readonly remotePeer: PeerId
  readonly remotePeerIdBytes: Uint8Array
  readonly connection: Connection
  readonly closed: Promise<void>
  readonly #stream: Stream
  readonly #resolveClosed: () => void

  // Reading: decoded frames, their cost in bytes, and whether we paused the stream because of them.
  readonly #frames = new FrameQueue<LinkFrame>()
  #queuedBytes = 0
  #paused = false
  // Set while the stream's resume() hands over what it buffered: see #resume.
  #resuming = false
  // The length prefix being read (value so far, weight of the next 7 bits, bytes seen), then the body of a frame
  // that spans chunks.
  #length = 0
  #lengthScale = 1
  #lengthBytes = 0
  #body: Uint8Array | undefined
  #bodyFilled = 0

  // Writing: encoded frame parts not yet handed to the stream.
  #outbox: Uint8Array[] = []
  #outboxBytes = 0
  #flushScheduled = false
  // Bytes handed to the stream since the event loop last turned, as far as the writing side can tell: since a writer
  // last waited, or a scheduled flush ran.
  #sentThisTurn = 0
  // Set while the stream holds more than MAX_UNSENT_BYTES; writers wait on it.
  #backedUp: PromiseWithResolvers<void> | undefined
  // Set once writing is over (closing, closed or aborted): what later writes reject with.
  #writeEnd: Error | undefined
  #ending: Promise<void> | undefined

  constructor(stream: Stream, connection: Connection) {
    this.remotePeer = connection.remotePeer
    this.remotePeerIdBytes = connection.remotePeer.toMultihash().bytes
    this.connection = connection
    this.#stream = stream
    const { promise, resolve } = Promise.withResolvers<void>()
    this.closed = promise
    this.#resolveClosed = resolve
    stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, PAUSED_READ_BUFFER_BYTES)
    stream.addEventListener('message', (event) => this.#receive(event.data))
    // Every byte the peer sent has been delivered, after it closed its side. (After a reset or an abort, 'close'
    // follows with the reason.)
    stream.addEventListener('end', () => {
      if (stream.status !== 'reset' && stream.status !== 'aborted') this.#frames.finish(new LinkClosedError())
    })
    // A link is not half-open: when the peer ends its side, end ours.
    stream.addEventListener('remoteCloseWrite', () => void this.#endWrites())
    // 'drain' comes with every yamux window update while data waits, 'idle' once none does.
    stream.addEventListener('drain', () => this.#drained())
    stream.addEventListener('idle', () => this.#drained())
    stream.addEventListener('close', (event) => this.#closedBy(event), { once: true })
    // The stream may have changed before it reached us.
    if (stream.status === 'closed' || stream.status === 'aborted' || stream.status === 'reset') {
      this.#closedBy(undefined)
    } else if (stream.remoteWriteStatus === 'closed') {
      void this.#endWrites()
    }
    if (stream.readableEnded) this.#frames.finish(new LinkClosedError())
  }

  async read(opts: { timeoutMs: number; signal?: AbortSignal }): Promise<LinkFrame> {
    const frame = await this.#frames.read(opts)
    this.#consumed(frame)
    return frame
  }

  async *frames(): AsyncGenerator<LinkFrame> {
    while (true) {
      const frame = this.#frames.shift()
      if (frame !== undefined) {
        this.#consumed(frame)
        yield frame
        continue
      }
      const end = this.#frames.end
      if (end instanceof FrameError) throw end
      if (end !== undefined) return
      await this.#frames.changed()
    }
  }

  async write(frame: LinkFrame | SealedFrameParts): Promise<void> {
    const flushed = this.#enqueue(encodeLinkFrameParts(frame))
    await this.#pace(flushed)
  }

  async writeMany(frames: Array<LinkFrame | SealedFrameParts>): Promise<void> {
    const encoded = frames.map(encodeLinkFrameParts)
    let flushed = false
    for (const parts of encoded) flushed = this.#enqueue(parts) || flushed
    await this.#pace(flushed)
  }

  // What a writer waits for: the stream to drain when it is backed up, else a turn of the event loop once
  // TURN_BYTES went out without one.
  async #pace(flushed: boolean): Promise<void> {
    if (this.#backedUp !== undefined) {
      this.#sentThisTurn = 0
      await this.#backedUp.promise
    } else if (flushed && this.#sentThisTurn >= TURN_BYTES) {
      this.#sentThisTurn = 0
      await nextTurn()
    }
  }

  async close(): Promise<void> {
    // The peer ends its side when it sees ours end; one that does not (or does not read) is cut off.
    const timer = setTimeout(
      () => this.#stream.abort(new Error(`the link did not close within ${CLOSE_TIMEOUT_MS} ms`)),
      CLOSE_TIMEOUT_MS,
    )
    await this.#endWrites()
    await this.closed
    clearTimeout(timer)
  }

  abort(err: Error): void {
    this.#writeEnd ??= new LinkClosedError(err)
    this.#stream.abort(err)
  }

  // --- reading

  #receive(data: Uint8Array | Iterable<Uint8Array>): void {
    // After an invalid frame nothing the peer sends is trusted; the data is dropped.
    if (this.#frames.end !== undefined) return
    if (data instanceof Uint8Array) this.#parse(data)
    else for (const chunk of data) this.#parse(chunk)
    if (!this.#resuming) this.#pauseIfFull()
  }

  #pauseIfFull(): void {
    if (
      !this.#paused &&
      this.#frames.end === undefined &&
      (this.#queuedBytes > MAX_QUEUED_BYTES || this.#frames.size > MAX_QUEUED_FRAMES) &&
      this.#stream.readStatus === 'readable'
    ) {
      this.#paused = true
      this.#stream.pause()
    }
  }

  // Splits a chunk into frames: `unsigned-varint length || frame`, a frame possibly spanning chunks.
  #parse(chunk: Uint8Array): void {
    let at = 0
    while (at < chunk.byteLength && this.#frames.end === undefined) {
      if (this.#body !== undefined) {
        at = this.#fillBody(chunk, at)
        continue
      }
      const byte = chunk[at++] as number
      this.#length += (byte & 0x7f) * this.#lengthScale
      this.#lengthScale *= 0x80
      this.#lengthBytes++
      if (byte >= 0x80) {
        // The prefix goes on; past the bytes the largest frame needs, the length is over the cap.
        if (this.#lengthBytes === MAX_LENGTH_PREFIX_BYTES) {
          this.#fail(new OversizedFrameError(undefined, MAX_LINK_FRAME_BYTES))
        }
        continue
      }
      const length = this.#length
      const minimal = byte !== 0 || this.#lengthBytes === 1
      this.#length = 0
      this.#lengthScale = 1
      this.#lengthBytes = 0
      if (!minimal) this.#fail(new MalformedFrameError('invalid length prefix'))
      else if (length > MAX_LINK_FRAME_BYTES)
        this.#fail(new OversizedFrameError(length, MAX_LINK_FRAME_BYTES))
      else if (chunk.byteLength - at >= length) {
        // The whole frame is in this chunk: decode it in place.
        this.#deliver(chunk.subarray(at, at + length))
        at += length
      } else {
        this.#body = this.#allocate(length)
        this.#bodyFilled = 0
      }
    }
  }

  // Copies the next part of a frame that spans chunks; returns where the chunk's unread bytes start.
  #fillBody(chunk: Uint8Array, at: number): number {
    const body = this.#body as Uint8Array
    const take = Math.min(body.byteLength - this.#bodyFilled, chunk.byteLength - at)
    body.set(chunk.subarray(at, at + take), this.#bodyFilled)
    this.#bodyFilled += take
    if (this.#bodyFilled === body.byteLength) {
      this.#body = undefined
      this.#deliver(body)
    }
    return at + take
  }

  // Filled before it is read, so not zeroed (~8 us saved per 64 KiB); a plain Uint8Array view, not a Buffer.
  #allocate(length: number): Uint8Array {
    const buffer = Buffer.allocUnsafeSlow(length)
    return new Uint8Array(buffer.buffer, buffer.byteOffset, length)
  }

  #deliver(bytes: Uint8Array): void {
    let frame: LinkFrame
    try {
      frame = decodeLinkFrame(bytes)
    } catch (err) {
      this.#fail(err as Error)
      return
    }
    this.#queuedBytes += cost(frame)
    this.#frames.push(frame)
  }

  #fail(err: Error): void {
    this.#frames.finish(err)
    // Nothing more is read, so let the peer's data flow (and be dropped) instead of piling up paused.
    this.#resume()
  }

  #consumed(frame: LinkFrame): void {
    this.#queuedBytes -= cost(frame)
    if (
      this.#paused &&
      this.#queuedBytes <= MAX_QUEUED_BYTES / 2 &&
      this.#frames.size <= MAX_QUEUED_FRAMES / 2
    ) {
      this.#resume()
    }
  }

  #resume(): void {
    if (!this.#paused) return
    this.#paused = false
    if (this.#stream.readStatus !== 'paused') return
    // resume() delivers what the stream buffered meanwhile, synchronously, through #receive, and only then reopens
    // the yamux window, which would undo a pause made during that delivery: the window would stay open under a
    // paused stream until its read buffer overflowed and libp2p reset it. So a full queue pauses again after.
    this.#resuming = true
    try {
      resumeStream(this.#stream) // a stream whose connection went meanwhile: its 'close' ends the link
    } finally {
      this.#resuming = false
    }
    this.#pauseIfFull()
  }

  // --- writing

  // Queues a frame's parts; true when that filled the outbox and it went to the stream.
  #enqueue(parts: Uint8Array[]): boolean {
    if (this.#writeEnd !== undefined) throw this.#writeEnd
    for (const part of parts) {
      this.#outbox.push(part)
      this.#outboxBytes += part.byteLength
    }
    if (this.#outboxBytes >= BATCH_BYTES) {
      this.#flush()
      return true
    }
    if (!this.#flushScheduled) {
      // After the current turn of the event loop, so that frames written meanwhile share one send.
      this.#flushScheduled = true
      setImmediate(this.#scheduledFlush)
    }
    return false
  }

  readonly #scheduledFlush = (): void => {
    this.#flushScheduled = false
    this.#sentThisTurn = 0
    this.#flush()
  }

  // Hands the outbox to the stream in one `send`: runs of small parts joined into one buffer, large parts (a
  // ciphertext) as they are.
  #flush(): void {
    if (this.#outbox.length === 0 || this.#writeEnd !== undefined) return
    const outbox = this.#outbox
    this.#outbox = []
    this.#outboxBytes = 0
    const data = new Uint8ArrayList()
    let run: Uint8Array[] = []
    let runBytes = 0
    for (const bytes of outbox) {
      if (bytes.byteLength < ALONE_BYTES) {
        run.push(bytes)
        runBytes += bytes.byteLength
        continue
      }
      if (run.length > 0) data.append(concat(run, runBytes))
      run = []
      runBytes = 0
      data.append(bytes)
    }
    if (run.length > 0) data.append(concat(run, runBytes))
    this.#sentThisTurn += data.byteLength
    try {
      this.#stream.send(data)
    } catch (err) {
      // The stream stopped taking data (closed or reset); its 'close' event reports it.
      this.#writeEnd ??= new LinkClosedError(err)
      return
    }
    // `send` keeps what the muxer cannot take yet. Letting a little pile up keeps the muxer busy between
    // window updates; past that, writers wait.
    if (this.#stream.writeBufferLength > MAX_UNSENT_BYTES && this.#backedUp === undefined) {
      this.#backedUp = Promise.withResolvers<void>()
      // Rejected when the stream closes; only writers that wait should see that.
      this.#backedUp.promise.catch(() => {})
    }
  }

  #drained(): void {
    if (this.#backedUp === undefined || this.#stream.writeBufferLength > MAX_UNSENT_BYTES / 2) return
    const backedUp = this.#backedUp
    this.#backedUp = undefined
    backedUp.resolve()
  }

  #endWrites(): Promise<void> {
    this.#ending ??= (async () => {
      this.#flush()
      this.#writeEnd ??= new LinkClosedError()
      try {
        // Resolves once everything queued has gone to the muxer.
        await this.#stream.close({ signal: AbortSignal.timeout(CLOSE_TIMEOUT_MS) })
      } catch (err) {
        this.#stream.abort(err instanceof Error ? err : new Error(String(err)))
      }
    })()
    return this.#ending
  }

  #closedBy(event: StreamCloseEvent | undefined): void {
    const error = event?.error
    this.#writeEnd ??= new LinkClosedError(error)
    this.#outbox = []
    this.#outboxBytes = 0
    this.#backedUp?.reject(this.#writeEnd)
    // Frames already queued stay readable. After a clean close a paused stream still holds data, which arrives
    // (and then 'end') once the reader catches up and resumes it.
    if (error !== undefined || !this.#paused) this.#frames.finish(new LinkClosedError(error))
    this.#resolveClosed()
  }
}

// What a queued frame counts against MAX_QUEUED_BYTES.
function cost(frame: LinkFrame): number {
  return frame.t === 'sealed' ? frame.ct.byteLength : 128
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

function concat(parts: Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array
  const out = new Uint8Array(length)
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.byteLength
  }
  return out
}
