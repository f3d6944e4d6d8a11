// The sealed-frame channel of a link between two paired devices, I/O-free (ARCHITECTURE.md "Sealed messages"):
// ChaCha20-Poly1305 under one epoch's send and receive keys (session-crypto.ts derives them), a counter nonce per
// frame and a replay window that accepts only counters greater than the last one. A frame from the peer is
// checked without throwing: `open` answers undefined and counts why.

import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto'
import { concatBytes, utf8ToBytes } from '@noble/hashes/utils.js'
import { SdnetError } from '../errors.ts'
import { MSG_LABEL, type SessionKeys } from './session-crypto.ts'

const KEY_LENGTH = 32
const TAG_LENGTH = 16
const LABEL = utf8ToBytes(MSG_LABEL)

/** The wire form of a sealed frame: `n` arrives as a number or, from a CBOR decoder, possibly a bigint. */
export interface SealedFrame {
  n: number | bigint
  ct: Uint8Array
}

export interface SealedChannelStats {
  sent: number
  received: number
  /** Frames whose `n` was not greater than the last accepted one (replayed or reordered). */
  rejectedReplay: number
  /** Frames whose tag failed (tampered, or sealed under other keys such as an old epoch) or that were malformed. */
  rejectedTamper: number
}

/**
 * The send counter reached its limit (2^53 - 1, the largest `n` that travels as a safe integer). sdnet re-keys long
 * before, so this means a re-key never happened.
 */
export class SendCounterExhaustedError extends SdnetError {
  override readonly name = 'SendCounterExhaustedError' as const

  constructor(limit: number) {
    super(
      `This link has sealed every frame its keys allow (${limit}) without re-keying, so it stops sending rather than ` +
        'reuse a nonce. Reconnect the device to start with fresh keys, and report this: sdnet should have re-keyed.',
    )
  }
}

/**
 * Seals and opens the frames of one link under the current epoch's keys. Each direction has its own counter `n`
 * (starting at 0, one per frame); a received frame is accepted only if its `n` is greater than the last accepted one
 * and its tag verifies, and a rejected frame changes nothing but the stats.
 *
 * @example
 * const channel = new SealedChannel(handshake.keys())
 * send({ type: 'sealed', ...channel.seal(bytes) })
 * const plaintext = channel.open(frame) // undefined: dropped (replayed, reordered or tampered)
 */
export class SealedChannel {
  #keys: SessionKeys
  // Made once per epoch: handing raw key bytes to every createCipheriv call costs a key import per frame.
  #sendKey: KeyObject
  #receiveKey: KeyObject
  #aad: Uint8Array
  #nextSend = 0
  #lastReceived = -1
  readonly #maxSendCounter: number
  #stats: SealedChannelStats = { sent: 0, received: 0, rejectedReplay: 0, rejectedTamper: 0 }

  /** `maxSendCounter` is the last `n` this channel will seal before throwing (lower it only to test that limit). */
  constructor(keys: SessionKeys, options: { maxSendCounter?: number } = {}) {
    const max = options.maxSendCounter ?? Number.MAX_SAFE_INTEGER
    if (!Number.isSafeInteger(max) || max < 0) throw new RangeError(`bad maxSendCounter ${max}`)
    this.#maxSendCounter = max
    this.#keys = copyKeys(keys)
    this.#sendKey = createSecretKey(this.#keys.send)
    this.#receiveKey = createSecretKey(this.#keys.receive)
    this.#aad = aadFor(keys.epoch)
  }

  /** Frames sealed in the current epoch (what a re-key after N frames compares), without copying the stats. */
  get sent(): number {
    return this.#stats.sent
  }

  /** Counts for the current epoch: `install` resets them, so `sent` is what a re-key after N frames compares. */
  get stats(): Readonly<SealedChannelStats> {
    return { ...this.#stats }
  }

  get epoch(): number {
    return this.#keys.epoch
  }

  seal(plaintext: Uint8Array): { n: number; ct: Uint8Array } {
    const { n, ct } = this.sealParts([plaintext])
    return { n, ct: concatBytes(...ct) }
  }

  /**
   * `seal` for a plaintext in parts (such as `encodeSealedMessageParts` gives), without joining them: `ct` is the
   * ciphertext of each part in order, then the tag.
   */
  sealParts(plaintext: readonly Uint8Array[]): { n: number; ct: Uint8Array[] } {
    const n = this.#nextSend
    if (n > this.#maxSendCounter) throw new SendCounterExhaustedError(this.#maxSendCounter)
    const cipher = createCipheriv('chacha20-poly1305', this.#sendKey, nonceFor(n), {
      authTagLength: TAG_LENGTH,
    })
    let length = 0
    for (const part of plaintext) length += part.byteLength
    cipher.setAAD(this.#aad, { plaintextLength: length })
    const ct: Uint8Array[] = []
    for (const part of plaintext) if (part.byteLength > 0) ct.push(cipher.update(part))
    // ChaCha20 is a stream cipher: `final` has nothing left to give, but it computes the tag.
    const rest = cipher.final()
    if (rest.byteLength > 0) ct.push(rest)
    ct.push(cipher.getAuthTag())
    this.#nextSend = n + 1
    this.#stats.sent++
    return { n, ct }
  }

  open(frame: SealedFrame): Uint8Array | undefined {
    const n = counterOf(frame)
    const ct = typeof frame === 'object' && frame !== null ? frame.ct : undefined
    if (n === undefined || !(ct instanceof Uint8Array) || ct.length < TAG_LENGTH) {
      this.#stats.rejectedTamper++
      return undefined
    }
    if (n <= this.#lastReceived) {
      this.#stats.rejectedReplay++
      return undefined
    }
    let plaintext: Uint8Array
    try {
      const body = ct.subarray(0, ct.length - TAG_LENGTH)
      const decipher = createDecipheriv('chacha20-poly1305', this.#receiveKey, nonceFor(n), {
        authTagLength: TAG_LENGTH,
      })
      decipher.setAuthTag(ct.subarray(ct.length - TAG_LENGTH))
      decipher.setAAD(this.#aad, { plaintextLength: body.length })
      const opened = decipher.update(body)
      const rest = decipher.final()
      // A plain Uint8Array view, not the Buffer Node returns.
      plaintext =
        rest.byteLength === 0
          ? new Uint8Array(opened.buffer, opened.byteOffset, opened.byteLength)
          : concatBytes(opened, rest)
    } catch {
      this.#stats.rejectedTamper++
      return undefined
    }
    this.#lastReceived = n
    this.#stats.received++
    return plaintext
  }

  /** Switches to a new epoch: both counters and the stats restart at 0, and the old keys are wiped. */
  install(keys: SessionKeys): void {
    const next = copyKeys(keys)
    this.#keys.send.fill(0)
    this.#keys.receive.fill(0)
    this.#keys = next
    this.#sendKey = createSecretKey(next.send)
    this.#receiveKey = createSecretKey(next.receive)
    this.#aad = aadFor(next.epoch)
    this.#nextSend = 0
    this.#lastReceived = -1
    this.#stats = { sent: 0, received: 0, rejectedReplay: 0, rejectedTamper: 0 }
  }
}

function isKey(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === KEY_LENGTH
}

function copyKeys(keys: SessionKeys): SessionKeys {
  if (!isKey(keys.send) || !isKey(keys.receive)) {
    throw new RangeError(`session keys must be ${KEY_LENGTH} bytes each`)
  }
  if (!Number.isSafeInteger(keys.epoch) || keys.epoch < 0 || keys.epoch > 0xffffffff) {
    throw new RangeError(`bad session epoch ${keys.epoch}`)
  }
  return {
    send: Uint8Array.from(keys.send),
    receive: Uint8Array.from(keys.receive),
    epoch: keys.epoch,
    transcript: keys.transcript,
  }
}

/** 4 zero bytes || uint64be(n), for n < 2^53. */
export function nonceFor(n: number): Uint8Array {
  const nonce = new Uint8Array(12)
  const view = new DataView(nonce.buffer)
  view.setUint32(4, Math.floor(n / 0x100000000))
  view.setUint32(8, n >>> 0)
  return nonce
}

/** "sdnet/msg/v1" || uint32be(epoch). */
function aadFor(epoch: number): Uint8Array {
  const aad = new Uint8Array(LABEL.length + 4)
  aad.set(LABEL)
  new DataView(aad.buffer).setUint32(LABEL.length, epoch)
  return aad
}

/** The frame's `n` as a number, or undefined unless it is an integer in [0, 2^53 - 1]. */
function counterOf(frame: SealedFrame): number | undefined {
  if (typeof frame !== 'object' || frame === null) return undefined
  const { n } = frame
  if (typeof n === 'number') return Number.isSafeInteger(n) && n >= 0 ? n : undefined
  if (typeof n === 'bigint') return n >= 0n && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : undefined
  return undefined
}
