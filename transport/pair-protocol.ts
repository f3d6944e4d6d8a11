// The `/sdnet/pair/1.0.0` stream as a channel of typed frames (ARCHITECTURE.md "Pairing protocol").
//
// Each side reads frames in the background into a short queue, so `read()` only waits for the queue: a read that
// times out never leaves half a frame consumed, and the channel stays usable after it. Stream inactivity timeouts
// are not enforced by libp2p (PLATFORM.md), so every read carries its own deadline.

import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { LengthPrefixedStream } from '@libp2p/utils'
import { lpStream } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { PairFrame } from './codec.ts'
import { decodePairFrame, encodePairFrame, MAX_PAIR_FRAME_BYTES } from './codec.ts'
import {
  DialFailedError,
  FrameError,
  MalformedFrameError,
  OversizedFrameError,
  StreamClosedError,
  UnsupportedPeerKeyError,
} from './errors.ts'
import { FrameQueue, openProtocolStream } from './streams.ts'

export const PAIR_PROTOCOL = '/sdnet/pair/1.0.0'

/** One pairing conversation with one authenticated peer. */
export interface FrameChannel {
  readonly remotePeer: PeerId
  /** `remotePeer.toMultihash().bytes`: the id Noise authenticated, as the transcript hash takes it. */
  readonly remotePeerIdBytes: Uint8Array
  /** The raw 32-byte Ed25519 public key of `remotePeer`. */
  readonly remotePublicKey: Uint8Array
  /** Next frame; rejects ReadTimeoutError (channel still usable), StreamClosedError or a FrameError. */
  read(opts: { timeoutMs: number; signal?: AbortSignal }): Promise<PairFrame>
  /** Rejects a FrameError for a frame that fails validation, StreamClosedError when the stream is gone. */
  write(frame: PairFrame, opts?: { signal?: AbortSignal }): Promise<void>
  /** Flushes what was written and ends our side; frames the peer already sent can still be read. */
  close(): Promise<void>
  /** Resets the stream at once; pending and later reads reject StreamClosedError. */
  abort(err: Error): void
}

// libp2p's default per-connection limit; the daemon's rate limit, not this, answers a flood of requests.
const DEFAULT_MAX_INBOUND_STREAMS = 32
// The protocol is lock-step: one frame in flight, perhaps an `error` behind it. Past this the reader pauses.
const MAX_QUEUED_FRAMES = 4
// Bytes a paused reader buffers before it gives up on a peer that keeps sending (the stream is then aborted).
const MAX_BUFFERED_BYTES = 4 * MAX_PAIR_FRAME_BYTES
const CLOSE_TIMEOUT_MS = 2_000

/**
 * Serves the pairing protocol: `onChannel` gets one channel per inbound stream and owns it from then on.
 *
 * @example
 * await handlePairProtocol(node, (channel) => void session.accept(channel))
 */
export async function handlePairProtocol(
  node: Libp2p,
  onChannel: (channel: FrameChannel) => void,
  opts: { maxInboundStreams?: number } = {},
): Promise<void> {
  await node.handle(
    PAIR_PROTOCOL,
    (stream: Stream, connection: Connection) => {
      try {
        onChannel(new StreamFrameChannel(stream, connection.remotePeer))
      } catch (err) {
        // A peer without an Ed25519 key, or a throwing callback: drop this stream, keep serving.
        stream.abort(err instanceof Error ? err : new Error(String(err)))
      }
    },
    { maxInboundStreams: opts.maxInboundStreams ?? DEFAULT_MAX_INBOUND_STREAMS },
  )
}

/**
 * Dials `peer` (reusing an open connection) and opens a pairing stream; rejects DialTimeoutError after
 * `timeoutMs`, DialFailedError when it cannot, UnsupportedPeerKeyError for a non-Ed25519 peer, or the reason of
 * `signal` when that aborts first.
 *
 * @example
 * const channel = await openPairChannel(node, peerId, { timeoutMs: 5_000 })
 */
export async function openPairChannel(
  node: Libp2p,
  peer: PeerId | Multiaddr | Multiaddr[],
  opts: { signal?: AbortSignal; timeoutMs: number },
): Promise<FrameChannel> {
  const { stream, connection } = await openProtocolStream(
    node,
    peer,
    PAIR_PROTOCOL,
    opts,
    (target, cause) => new DialFailedError(target, cause),
  )
  try {
    return new StreamFrameChannel(stream, connection.remotePeer)
  } catch (err) {
    // A peer without an Ed25519 key.
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
}

class StreamFrameChannel implements FrameChannel {
  readonly remotePeer: PeerId
  readonly remotePeerIdBytes: Uint8Array
  readonly remotePublicKey: Uint8Array
  readonly #stream: Stream
  readonly #lp: LengthPrefixedStream<Stream>
  // Ended by the background reader with the error that reads get after the queued frames.
  readonly #frames = new FrameQueue<PairFrame>()

  constructor(stream: Stream, remotePeer: PeerId) {
    if (remotePeer.type !== 'Ed25519') {
      throw new UnsupportedPeerKeyError(remotePeer.toString(), remotePeer.type)
    }
    this.remotePeer = remotePeer
    this.remotePeerIdBytes = remotePeer.toMultihash().bytes
    this.remotePublicKey = remotePeer.publicKey.raw
    this.#stream = stream
    this.#lp = lpStream(stream, { maxDataLength: MAX_PAIR_FRAME_BYTES, maxBufferSize: MAX_BUFFERED_BYTES })
    void this.#readFrames()
  }

  read(opts: { timeoutMs: number; signal?: AbortSignal }): Promise<PairFrame> {
    return this.#frames.read(opts)
  }

  async write(frame: PairFrame, opts: { signal?: AbortSignal } = {}): Promise<void> {
    const bytes = encodePairFrame(frame)
    // lpStream hands the bytes to the stream before it looks at the signal.
    opts.signal?.throwIfAborted()
    try {
      await this.#lp.write(bytes, { signal: opts.signal })
    } catch (err) {
      if (opts.signal?.aborted) throw opts.signal.reason
      throw new StreamClosedError(err)
    }
  }

  async close(): Promise<void> {
    try {
      await this.#stream.close({ signal: AbortSignal.timeout(CLOSE_TIMEOUT_MS) })
    } catch (err) {
      this.#stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }

  abort(err: Error): void {
    this.#stream.abort(err)
  }

  async #readFrames(): Promise<void> {
    try {
      while (true) {
        while (this.#frames.size >= MAX_QUEUED_FRAMES) await this.#frames.changed()
        const bytes = await this.#lp.read()
        this.#frames.push(decodePairFrame(bytes.subarray()))
      }
    } catch (err) {
      // A bad frame stops reading but leaves the stream writable, so the caller can still answer
      // `error ProtocolError` before closing.
      this.#frames.finish(toReadError(err))
    }
  }
}

function toReadError(err: unknown): Error {
  if (err instanceof FrameError) return err
  const name = err instanceof Error ? err.name : ''
  // lpStream's names for a length prefix over maxDataLength, or one too long to be a length at all.
  if (name === 'InvalidDataLengthError' || name === 'InvalidDataLengthLengthError') {
    return new OversizedFrameError(undefined, MAX_PAIR_FRAME_BYTES)
  }
  if (name === 'InvalidMessageLengthError') return new MalformedFrameError('invalid length prefix')
  return new StreamClosedError(err)
}
