// Batching of small sealed messages (ARCHITECTURE.md "Sealed messages"): the messages written after the first one
// in a turn of the event loop gather in an outbox and are sealed together as one `batch` frame when the turn ends,
// so a burst of small messages pays for one seal instead of one each. One-way messages of one protocol join a
// run (`msgs`), written straight into its encoding. Pure bookkeeping: the messenger seals and writes.
import type { Link } from '../../transport/link.ts'
import { EncodedBodies, MAX_BATCH_MESSAGES, type OutgoingMessage } from '../../transport/msg-codec.ts'

/** An outbox this large is sealed at once rather than at the end of the turn (and its writer waits for it). */
export const BATCH_FLUSH_BYTES = 64 * 1024
/** Messages larger than this are sealed on their own. */
export const BATCH_ALONE_BYTES = 16 * 1024
/** Queued bodies are copied into slabs of this size: an outbox is flushed at 64 KiB, so one slab mostly does. */
const SLAB_BYTES = 80 * 1024
/** The most a CBOR byte string's head takes. */
const MAX_BYTES_HEAD = 9

const SENT: Promise<void> = Promise.resolve()

/** Messages gathering for one sealed `batch`. */
export interface Outbox {
  link: Link
  messages: OutgoingMessage[]
  /** The last entry when it is a run of one-way messages: the next message of its protocol joins it. */
  run: { t: 'msgs'; protocol: string; bodies: EncodedBodies } | undefined
  /** Messages, counting each one of a run. */
  count: number
  bytes: number
  /** Where queued bodies are copied to (runs, copyBody), and how much of it is used. */
  slab: Uint8Array
  slabUsed: number
  flushed: Promise<void>
  flush: () => void
}

/**
 * An empty outbox for `link`, flushed at the end of this turn (or earlier, when full): `detach` runs first, then
 * `write` gets what gathered, unless nothing did.
 */
export function openOutbox(
  link: Link,
  detach: (outbox: Outbox) => void,
  write: (messages: OutgoingMessage[]) => Promise<void>,
): Outbox {
  const done = Promise.withResolvers<void>()
  done.promise.catch(() => {})
  const outbox: Outbox = {
    link,
    messages: [],
    run: undefined,
    count: 0,
    bytes: 0,
    slab: new Uint8Array(0),
    slabUsed: 0,
    flushed: done.promise,
    flush: () => {
      detach(outbox)
      if (outbox.messages.length === 0) return done.resolve()
      write(outbox.messages).then(done.resolve, done.reject)
      outbox.messages = []
      outbox.run = undefined
    },
  }
  setImmediate(outbox.flush)
  return outbox
}

/** Makes room for `bytes` more in the outbox's slab: a new slab when the current one is too full. */
function slabRoom(outbox: Outbox, bytes: number): void {
  if (outbox.slab.byteLength - outbox.slabUsed >= bytes) return
  const slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, bytes))
  outbox.slab = new Uint8Array(slab.buffer, slab.byteOffset, slab.byteLength)
  outbox.slabUsed = 0
}

/** A copy of `body` in the outbox's slab (one allocation for many small bodies, not one each). */
function copyBody(outbox: Outbox, body: Uint8Array): Uint8Array {
  const length = body.byteLength
  slabRoom(outbox, length)
  const copy = new Uint8Array(outbox.slab.buffer, outbox.slab.byteOffset + outbox.slabUsed, length)
  copy.set(body)
  outbox.slabUsed += length
  return copy
}

/** Roughly what a message adds to a batch: a one-way message its body and a byte string head; others more. */
export function sizeOf(message: OutgoingMessage): number {
  if (message.t === 'msg') return message.body.length + 3
  if (message.t === 'msgs') {
    const { bodies } = message
    const length =
      bodies instanceof EncodedBodies ? bodies.bytes.byteLength : totalLength(bodies) + 3 * bodies.length
    return length + message.protocol.length + 16
  }
  if (message.t === 'batch') return message.messages.reduce((sum, inner) => sum + sizeOf(inner), 16)
  return 'body' in message ? message.body.length + 32 : 64
}

function totalLength(bodies: readonly Uint8Array[]): number {
  let length = 0
  for (const body of bodies) length += body.byteLength
  return length
}

/**
 * Appends to the outbox; a one-way message joins the run before it when the protocol is the same. Its sender is
 * told it went out before it is sealed, and may reuse its buffer at once: bodies are copied (at most 16 KiB each),
 * a run's straight into its encoding.
 */
export function addToOutbox(outbox: Outbox, message: OutgoingMessage, size: number): void {
  if (message.t === 'msg' && joinRun(outbox, message.protocol, message.body)) return
  outbox.count++
  outbox.bytes += size
  if (message.t !== 'msg') {
    outbox.messages.push('body' in message ? { ...message, body: copyBody(outbox, message.body) } : message)
    outbox.run = undefined
    return
  }
  // A new run: another protocol came between, or the slab (or the run) is full.
  slabRoom(outbox, message.body.byteLength + MAX_BYTES_HEAD)
  const bodies = new EncodedBodies(outbox.slab, outbox.slabUsed)
  bodies.append(message.body)
  outbox.slabUsed = bodies.end
  outbox.run = { t: 'msgs', protocol: message.protocol, bodies }
  outbox.messages.push(outbox.run)
  outbox.bytes += message.protocol.length + 16
}

/** Appends a one-way body to the outbox's run when that run is of `protocol` and has room; false otherwise. */
export function joinRun(outbox: Outbox, protocol: string, body: Uint8Array): boolean {
  const run = outbox.run
  if (run?.protocol !== protocol || !run.bodies.append(body)) return false
  outbox.slabUsed = run.bodies.end
  outbox.count++
  outbox.bytes += body.byteLength + 3
  return true
}

/**
 * What a sender whose message was just queued waits for. Like the link itself, a queued message counts as
 * written; a writer that outpaces the link waits here, for the full outbox to be sealed and taken by the link.
 */
export function queued(outbox: Outbox): Promise<void> {
  if (outbox.bytes < BATCH_FLUSH_BYTES && outbox.count < MAX_BATCH_MESSAGES) return SENT
  outbox.flush()
  return outbox.flushed
}
