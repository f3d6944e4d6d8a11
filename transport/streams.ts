// Pieces shared by the stream protocols (`/sdnet/pair/1.0.0` in pair-protocol.ts, `/sdnet/msg/1.0.0` in link.ts,
// `/sdnet/drop/1.0.0` in drop-stream.ts):
// the queue between a stream's background reader and the code that reads frames with a deadline, and opening a
// protocol stream within a deadline.

import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { DialTimeoutError, ReadTimeoutError } from './errors.ts'

/**
 * Frames a background reader decoded, waiting to be read. The reader pushes frames and finally ends the queue
 * with the error that readers get once the queued frames are gone. A read that times out takes nothing, so the
 * queue stays usable after it.
 */
export class FrameQueue<T> {
  #items: T[] = []
  #head = 0
  #end: Error | undefined
  // Created only while someone waits, resolved (and dropped) on the next change.
  #changed: PromiseWithResolvers<void> | undefined

  get size(): number {
    return this.#items.length - this.#head
  }

  /** The error the queue ended with, once it has; frames may still be queued before it. */
  get end(): Error | undefined {
    return this.#end
  }

  push(item: T): void {
    this.#items.push(item)
    this.#notify()
  }

  /** No more frames will come; the first call wins. */
  finish(err: Error): void {
    if (this.#end !== undefined) return
    this.#end = err
    this.#notify()
  }

  shift(): T | undefined {
    if (this.#head === this.#items.length) return undefined
    const item = this.#items[this.#head] as T
    // Let go of it now: a queue that never empties would otherwise keep up to 1024 read frames alive.
    this.#items[this.#head] = undefined as T
    this.#head++
    // Drop the consumed prefix now and then, rather than pay Array#shift's move on every frame.
    if (this.#head === this.#items.length) {
      this.#items = []
      this.#head = 0
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
    this.#notify()
    return item
  }

  /** Resolves on the next push, shift or finish. */
  changed(): Promise<void> {
    this.#changed ??= Promise.withResolvers<void>()
    return this.#changed.promise
  }

  /**
   * The next frame; rejects ReadTimeoutError after `timeoutMs` (nothing taken), the signal's reason when it
   * aborts, or the queue's end error once it is empty and ended.
   */
  async read(opts: { timeoutMs: number; signal?: AbortSignal }): Promise<T> {
    opts.signal?.throwIfAborted()
    let timedOut = false
    let wakeUp = (): void => {}
    const stopWaiting = new Promise<void>((resolve) => {
      wakeUp = resolve
    })
    const timer = setTimeout(() => {
      timedOut = true
      wakeUp()
    }, opts.timeoutMs)
    opts.signal?.addEventListener('abort', wakeUp, { once: true })
    try {
      while (true) {
        if (this.size > 0) return this.shift() as T
        if (this.#end !== undefined) throw this.#end
        if (opts.signal?.aborted) throw opts.signal.reason
        if (timedOut) throw new ReadTimeoutError(opts.timeoutMs)
        await Promise.race([this.changed(), stopWaiting])
      }
    } finally {
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', wakeUp)
    }
  }

  #notify(): void {
    const changed = this.#changed
    if (changed === undefined) return
    this.#changed = undefined
    changed.resolve()
  }
}

/**
 * `stream.resume()`, for a stream a reader paused. It hands over what the stream buffered meanwhile, synchronously
 * through the 'message' listeners, and only then reopens the yamux window: a reader that pauses again during that
 * hand-over must do so after this returns, or the window stays open under a paused stream until libp2p resets it.
 * A stream whose connection went while it was paused throws here (the window update had nowhere to go); that is
 * ignored, as its 'close' follows.
 */
export function resumeStream(stream: Stream): void {
  try {
    stream.resume()
  } catch (err) {
    if (stream.status === 'open') throw err
  }
}

/**
 * Dials `peer` (reusing an open connection) and opens a `protocol` stream; rejects DialTimeoutError after
 * `timeoutMs`, the reason of `signal` when that aborts first, or `failed(target, cause)` for any other failure.
 */
export async function openProtocolStream(
  node: Libp2p,
  peer: PeerId | Multiaddr | Multiaddr[],
  protocol: string,
  opts: { signal?: AbortSignal; timeoutMs: number; maxOutboundStreams?: number },
  failed: (target: string, cause: unknown) => Error,
): Promise<{ stream: Stream; connection: Connection }> {
  const deadline = new AbortController()
  const timer = setTimeout(() => deadline.abort(), opts.timeoutMs)
  const signal = opts.signal === undefined ? deadline.signal : AbortSignal.any([opts.signal, deadline.signal])
  try {
    const connection = await node.dial(peer, { signal })
    const stream = await connection.newStream(protocol, {
      signal,
      ...(opts.maxOutboundStreams !== undefined && { maxOutboundStreams: opts.maxOutboundStreams }),
    })
    return { stream, connection }
  } catch (err) {
    if (opts.signal?.aborted) throw opts.signal.reason
    if (deadline.signal.aborted) throw new DialTimeoutError(opts.timeoutMs)
    throw failed(String(peer), err)
  } finally {
    clearTimeout(timer)
  }
}
