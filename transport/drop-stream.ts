// The data stream of a file drop, `/sdnet/drop/1.0.0` (ARCHITECTURE.md "File drop"): one libp2p stream on the
// paired device's connection, length-prefixed frames (lpStream), sender frames one way and receiver frames back.
// Noise encrypts and authenticates it; which transfer it belongs to is proven by the token of its first frame,
// which the drop service in actors/ checks. Reads have deadlines; a bad frame ends the stream with a FrameError.
// Frames are `unsigned-varint length || frame`, as lpStream writes them.
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import {
  type DataFrame,
  DROP_PROTOCOL,
  decodeReceiverFrame,
  decodeSenderFrame,
  encodeDataFrameParts,
  MAX_DATA_FRAME_BYTES,
  type ReceiverFrame,
  type SenderFrame,
} from './drop-codec.ts'
import { DialFailedError, OversizedFrameError, StreamClosedError } from './errors.ts'
import { writeVarint } from './msg-codec.ts'
import { FrameQueue, openProtocolStream, resumeStream } from './streams.ts'

/** Data streams per connection, each way: one per transfer in flight is the norm. */
const MAX_DROP_STREAMS = 16
const CLOSE_TIMEOUT_MS = 2_000

/** Decoded frames may queue up to this many bytes before the stream is paused (resumed below half). */
const MAX_QUEUED_BYTES = 4 * 1024 * 1024
/** Writers wait while the stream holds more than this unsent, until it is down to half (as link.ts does). */
const MAX_UNSENT_BYTES = 4 * 1024 * 1024
/**
 * A paused yamux stream still takes what its window allowed (up to 16 MiB) into its read buffer, and libp2p resets
 * a stream whose buffer passes maxReadBufferLength (4 MiB by default): make room for it.
 */
const PAUSED_READ_BUFFER_BYTES = 16 * 1024 * 1024 + MAX_DATA_FRAME_BYTES
const LENGTH_PREFIX_MAX = 10

/**
 * One end of a data stream: `In` is what the other end writes, `Out` what this end writes. It reads the stream's
 * messages into a bounded queue of decoded frames and pauses the stream (so the yamux window closes) while the
 * queue is full: a receiver busy writing to disk holds the sender back instead of buffering without end.
 */
export class DropStream<In extends DataFrame, Out extends DataFrame> {
  readonly remotePeer: PeerId
  readonly #stream: Stream
  readonly #decode: (bytes: Uint8Array) => In
  readonly #frames = new FrameQueue<{ frame: In; bytes: number }>()
  readonly #buffer = new Uint8ArrayList()
  #queuedBytes = 0
  #paused = false
  /** Set while the stream holds more than MAX_UNSENT_BYTES; writers wait on it. */
  #backedUp: PromiseWithResolvers<void> | undefined
  #resuming = false

  constructor(stream: Stream, remotePeer: PeerId, decode: (bytes: Uint8Array) => In) {
    this.remotePeer = remotePeer
    this.#stream = stream
    this.#decode = decode
    stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, PAUSED_READ_BUFFER_BYTES)
    stream.addEventListener('message', (event) => this.#receive(event.data))
    stream.addEventListener('drain', () => this.#drained())
    stream.addEventListener('idle', () => this.#drained())
    stream.addEventListener('close', (event) => {
      const err = new StreamClosedError(event.error)
      this.#frames.finish(err)
      this.#backedUp?.reject(err)
      this.#backedUp = undefined
    })
    stream.addEventListener('remoteCloseWrite', () => this.#frames.finish(new StreamClosedError()))
  }

  /** The next frame, within `timeoutMs`; rejects ReadTimeoutError, a FrameError, or StreamClosedError. */
  async read(timeoutMs: number): Promise<In> {
    const { frame, bytes } = await this.#frames.read({ timeoutMs })
    this.#queuedBytes -= bytes
    if (this.#paused && this.#queuedBytes <= MAX_QUEUED_BYTES / 2) this.#resume()
    return frame
  }

  /** Writes a frame; waits while the stream is backed up. Chunk data is not copied. */
  async write(frame: Out): Promise<void> {
    const parts = encodeDataFrameParts(frame)
    let length = 0
    for (const part of parts) length += part.byteLength
    const prefix = new Uint8Array(LENGTH_PREFIX_MAX)
    const list = new Uint8ArrayList(prefix.subarray(0, writeVarint(prefix, 0, length)), ...parts)
    try {
      this.#stream.send(list)
    } catch (err) {
      throw new StreamClosedError(err)
    }
    if (this.#stream.writeBufferLength > MAX_UNSENT_BYTES) {
      this.#backedUp ??= Promise.withResolvers<void>()
      await this.#backedUp.promise
    }
  }

  #drained(): void {
    if (this.#backedUp === undefined || this.#stream.writeBufferLength > MAX_UNSENT_BYTES / 2) return
    const backedUp = this.#backedUp
    this.#backedUp = undefined
    backedUp.resolve()
  }

  async close(): Promise<void> {
    try {
      await this.#stream.close({ signal: AbortSignal.timeout(CLOSE_TIMEOUT_MS) })
    } catch (err) {
      this.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }

  abort(err: Error): void {
    this.#stream.abort(err)
  }

  #receive(data: Uint8Array | Uint8ArrayList): void {
    if (this.#frames.end !== undefined) return
    this.#buffer.append(data)
    try {
      for (;;) {
        const head = readVarint(this.#buffer)
        if (head === undefined) break
        if (head.value > MAX_DATA_FRAME_BYTES) throw new OversizedFrameError(head.value, MAX_DATA_FRAME_BYTES)
        if (this.#buffer.byteLength < head.length + head.value) break
        const bytes = this.#buffer.subarray(head.length, head.length + head.value)
        this.#buffer.consume(head.length + head.value)
        this.#queuedBytes += bytes.byteLength
        this.#frames.push({ frame: this.#decode(bytes), bytes: bytes.byteLength })
      }
    } catch (err) {
      // After a bad frame nothing more the peer sends is read.
      this.#frames.finish(err as Error)
      this.#resume()
      return
    }
    if (!this.#resuming) this.#pauseIfFull()
  }

  #pauseIfFull(): void {
    if (!this.#paused && this.#queuedBytes > MAX_QUEUED_BYTES && this.#stream.readStatus === 'readable') {
      this.#paused = true
      this.#stream.pause()
    }
  }

  #resume(): void {
    if (!this.#paused) return
    this.#paused = false
    if (this.#stream.readStatus !== 'paused') return
    // As in link.ts: resume() hands over what the stream buffered (through #receive) before it reopens the yamux
    // window, so a queue that filled up meanwhile pauses again only afterwards.
    this.#resuming = true
    try {
      resumeStream(this.#stream)
    } finally {
      this.#resuming = false
    }
    this.#pauseIfFull()
  }
}

/** An unsigned varint at the start of `list`: its value and how many bytes it takes; undefined until complete. */
function readVarint(list: Uint8ArrayList): { value: number; length: number } | undefined {
  let value = 0
  let scale = 1
  for (let i = 0; i < Math.min(list.byteLength, LENGTH_PREFIX_MAX); i++) {
    const byte = list.get(i)
    value += (byte & 0x7f) * scale
    if (byte < 0x80) return { value, length: i + 1 }
    scale *= 0x80
  }
  if (list.byteLength >= LENGTH_PREFIX_MAX) throw new OversizedFrameError(undefined, MAX_DATA_FRAME_BYTES)
  return undefined
}

/** The receiver's end: it reads what the sender writes. */
export type ReceivingStream = DropStream<SenderFrame, ReceiverFrame>
/** The sender's end. */
export type SendingStream = DropStream<ReceiverFrame, SenderFrame>

/**
 * Serves `/sdnet/drop/1.0.0`. `accept` decides from the Noise-authenticated peer id (a paired device): false
 * resets the stream before a byte is read. `onStream` owns every accepted stream.
 */
export async function handleDropStreams(
  node: Libp2p,
  accept: (remotePeer: PeerId) => boolean,
  onStream: (stream: ReceivingStream, connection: Connection) => void,
): Promise<void> {
  await node.handle(
    DROP_PROTOCOL,
    (stream: Stream, connection: Connection) => {
      try {
        if (!accept(connection.remotePeer)) {
          stream.abort(new Error(`${connection.remotePeer.toString()} is not a paired device`))
          return
        }
        onStream(new DropStream(stream, connection.remotePeer, decodeSenderFrame), connection)
      } catch (err) {
        stream.abort(err instanceof Error ? err : new Error(String(err)))
      }
    },
    { maxInboundStreams: MAX_DROP_STREAMS, maxOutboundStreams: MAX_DROP_STREAMS },
  )
}

/** Opens a data stream to a paired device (on its open connection); rejects DialTimeoutError or DialFailedError. */
export async function openDropStream(
  node: Libp2p,
  peer: PeerId,
  opts: { timeoutMs: number; signal?: AbortSignal },
): Promise<SendingStream> {
  const { stream } = await openProtocolStream(
    node,
    peer,
    DROP_PROTOCOL,
    { ...opts, maxOutboundStreams: MAX_DROP_STREAMS },
    (target, cause) => new DialFailedError(target, cause),
  )
  return new DropStream(stream, peer, decodeReceiverFrame)
}
