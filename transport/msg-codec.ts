// CBOR codec for `/sdnet/msg/1.0.0` (ARCHITECTURE.md "Connections between paired devices"): the link frames
// (`hello`, `welcome`, `sealed`) and the messages sealed inside them. Like codec.ts, decoding is the edge where
// untrusted bytes become typed values: every field's type and size is checked, anything else is a named FrameError.
//
// Throughput: bodies travel as CBOR byte strings. Encoding a sealed message gives parts (`encodeSealedMessageParts`):
// a large body is a part of its own, never copied, and small ones are copied once into shared buffers; the link sends
// a sealed frame's ciphertext parts as they are (`encodeLinkFrameParts`). Decoding never copies a body: `sealed.ct`
// and a message `body` are views of the input bytes. The small fixed-size fields (keys, nonces, signatures) are
// copied, so they never pin a large input buffer. The hot shapes (sealed frames; `msg`, `msgs`, `req`, `res` and
// `batch` messages) are written without cbor-x, which spends ~200 ns on each small map; decoding uses cbor-x.

import { cbor, decodeChecked, encodeChecked } from './cbor.ts'
import {
  MalformedFrameError,
  OversizedFrameError,
  UnknownFrameError,
  UnsupportedVersionError,
} from './errors.ts'

export const MSG_PROTOCOL = '/sdnet/msg/1.0.0'
/** Largest application body of `msg`, `req` and `res`. */
export const MAX_BODY_BYTES = 1024 * 1024
/** Largest encoded link frame (ARCHITECTURE.md: "at most 1 MiB + 1 KiB each"): a full body plus room for headers. */
export const MAX_LINK_FRAME_BYTES = MAX_BODY_BYTES + 1024

export type LinkFrame =
  | { t: 'hello'; v: 1; eph: Uint8Array; nonce: Uint8Array; sig: Uint8Array }
  | { t: 'welcome'; v: 1; eph: Uint8Array; nonce: Uint8Array; sig: Uint8Array }
  | { t: 'sealed'; n: number; ct: Uint8Array }

/** A sealed frame as it is written: its ciphertext in parts that add up to `ct` (see `SealedChannel.sealParts`). */
export type SealedFrameParts = { t: 'sealed'; n: number; ct: readonly Uint8Array[] }

export type SealedErrorCode = 'UnknownProtocol' | 'HandlerFailed' | 'Timeout' | 'TooLarge'

export type SealedMessage =
  | { t: 'ping'; id: number }
  | { t: 'pong'; id: number }
  | { t: 'msg'; protocol: string; body: Uint8Array }
  /** One-way messages of one protocol, in order: how a run of `msg` travels inside a batch, ~2 bytes each. */
  | { t: 'msgs'; protocol: string; bodies: Uint8Array[] }
  | { t: 'req'; id: number; protocol: string; body: Uint8Array }
  | { t: 'res'; id: number; body: Uint8Array }
  | { t: 'err'; id: number; code: SealedErrorCode; message: string }
  | { t: 'revoke' }
  | { t: 'rekey'; eph: Uint8Array; nonce: Uint8Array; sig: Uint8Array }
  | { t: 'rekeyAck'; eph: Uint8Array; nonce: Uint8Array; sig: Uint8Array }
  | { t: 'batch'; messages: SealedMessage[] }

/** How many messages one sealed `batch`, and one `msgs` run, may carry. */
export const MAX_BATCH_MESSAGES = 4096

/**
 * The bodies of a `msgs` run written as CBOR byte strings, back to back, into a buffer the caller owns, as the
 * messages are queued: one copy each on the way out, and no object per body. Encodes exactly as the same bodies
 * in a list do.
 */
export class EncodedBodies {
  #count = 0
  readonly #buffer: Uint8Array
  readonly #start: number
  #end: number

  constructor(buffer: Uint8Array, start: number) {
    this.#buffer = buffer
    this.#start = start
    this.#end = start
  }

  get count(): number {
    return this.#count
  }

  /** Where the written bodies end in the buffer. */
  get end(): number {
    return this.#end
  }

  get bytes(): Uint8Array {
    return this.#buffer.subarray(this.#start, this.#end)
  }

  /**
   * Appends a copy of `body`; false (and nothing written) when the buffer has no room or the run is full. Throws
   * OversizedFrameError for a body over MAX_BODY_BYTES, as encoding it in a list does.
   */
  append(body: Uint8Array): boolean {
    const length = body.byteLength
    if (length > MAX_BODY_BYTES) throw new OversizedFrameError(length, MAX_BODY_BYTES)
    if (
      this.#count === MAX_BATCH_MESSAGES ||
      this.#end + uintLength(length) + length > this.#buffer.byteLength
    ) {
      return false
    }
    const at = writeUint(this.#buffer, this.#end, MAJOR_BYTES, length)
    this.#buffer.set(body, at)
    this.#end = at + length
    this.#count++
    return true
  }
}

/** What can be encoded for sealing: a message, or a run whose bodies were written as they were queued. */
export type OutgoingMessage =
  | SealedMessage
  | { t: 'msgs'; protocol: string; bodies: EncodedBodies }
  | { t: 'batch'; messages: OutgoingMessage[] }

export const SEALED_ERROR_CODES: ReadonlySet<string> = new Set<SealedErrorCode>([
  'UnknownProtocol',
  'HandlerFailed',
  'Timeout',
  'TooLarge',
])

// X25519 public keys (32), 32-byte nonces, Ed25519 signatures (64), the Poly1305 tag (16) that every ciphertext
// ends with. Protocol names are short ASCII ids such as `chat/1`.
const EPH_BYTES = 32
const NONCE_BYTES = 32
const SIG_BYTES = 64
const TAG_BYTES = 16
const PROTOCOL_NAME = /^[A-Za-z0-9._/-]{1,64}$/
const MAX_ERROR_MESSAGE_CHARS = 256
// An encoded sealed message must fit in one link frame once sealed: ct = plaintext + tag, wrapped in
// `{ t: 'sealed', n, ct }` (at most 32 bytes of CBOR around ct).
const MAX_SEALED_MESSAGE_BYTES = MAX_LINK_FRAME_BYTES - TAG_BYTES - 32

/** Encodes a link frame; throws MalformedFrameError or OversizedFrameError for one the other side would reject. */
export function encodeLinkFrame(frame: LinkFrame): Uint8Array {
  if (frame.t === 'sealed') {
    const head = sealedFrameHead(
      frame.n,
      frame.ct instanceof Uint8Array ? frame.ct.byteLength : Number.NaN,
      false,
    )
    const out = new Uint8Array(head.byteLength + frame.ct.byteLength)
    out.set(head)
    out.set(frame.ct, head.byteLength)
    return out
  }
  return encodeChecked(toLinkFrame(frame), MAX_LINK_FRAME_BYTES)
}

/**
 * The frame as the link sends it, `unsigned-varint length || encodeLinkFrame(frame)`, in parts that add up to it.
 * A sealed frame's ciphertext parts follow its head as they are (the caller's buffers, not copies), so a large
 * frame goes out without being copied; keep them unchanged until they are sent.
 */
export function encodeLinkFrameParts(frame: LinkFrame | SealedFrameParts): Uint8Array[] {
  if (frame.t === 'sealed') {
    if (frame.ct instanceof Uint8Array) return [sealedFrameHead(frame.n, frame.ct.byteLength, true), frame.ct]
    return [sealedFrameHead(frame.n, partsLength(frame.ct), true), ...frame.ct]
  }
  const bytes = encodeLinkFrame(frame)
  const out = new Uint8Array(varintLength(bytes.byteLength) + bytes.byteLength)
  out.set(bytes, writeVarint(out, 0, bytes.byteLength))
  return [out]
}

/** Decodes and validates one link frame; throws a FrameError subclass naming what was wrong. */
export function decodeLinkFrame(bytes: Uint8Array): LinkFrame {
  return decodeSealedFrame(bytes) ?? toLinkFrame(decodeChecked(bytes, MAX_LINK_FRAME_BYTES))
}

/** Encodes a message for sealing; throws MalformedFrameError or OversizedFrameError for an invalid one. */
export function encodeSealedMessage(message: OutgoingMessage): Uint8Array {
  const parts = encodeSealedMessageParts(message)
  return parts.length === 1 ? (parts[0] as Uint8Array) : concatParts(parts)
}

/**
 * `encodeSealedMessage` in parts that add up to it, for sealing without a copy: a body of SEPARATE_BODY_BYTES or
 * more is a part of its own (the caller's buffer: keep it unchanged until sealed), smaller ones are copied.
 */
export function encodeSealedMessageParts(message: OutgoingMessage): Uint8Array[] {
  const writer = new PartsWriter()
  writeSealedMessage(writer, message, false)
  return writer.finish(MAX_SEALED_MESSAGE_BYTES)
}

/** Decodes and validates the plaintext of a sealed frame; throws a FrameError subclass naming what was wrong. */
export function decodeSealedMessage(bytes: Uint8Array): SealedMessage {
  return toSealedMessage(decodeChecked(bytes, MAX_SEALED_MESSAGE_BYTES))
}

type Fields = Record<string, unknown>

// Builds a fresh frame holding only the known fields, so callers never see extra keys.
function toLinkFrame(value: unknown): LinkFrame {
  const map = plainMap(value)
  const t = typeField(map)
  switch (t) {
    case 'hello':
    case 'welcome':
      version(map)
      onlyKeys(map, ['t', 'v', 'eph', 'nonce', 'sig'])
      return { t, v: 1, ...exchangeFields(map) }
    case 'sealed': {
      onlyKeys(map, ['t', 'n', 'ct'])
      return { t, n: counterField(map, 'n'), ct: ciphertextField(map) }
    }
    default:
      throw new UnknownFrameError(t)
  }
}

function toSealedMessage(value: unknown): SealedMessage {
  const map = plainMap(value)
  const t = typeField(map)
  switch (t) {
    case 'ping':
    case 'pong':
      onlyKeys(map, ['t', 'id'])
      return { t, id: counterField(map, 'id') }
    case 'msg':
      onlyKeys(map, ['t', 'protocol', 'body'])
      return { t, protocol: protocolField(map), body: bodyField(map) }
    case 'msgs': {
      onlyKeys(map, ['t', 'protocol', 'bodies'])
      const protocol = protocolField(map)
      const bodies = listField(map, 'bodies', 'byte strings')
      for (let i = 0; i < bodies.length; i++) bodies[i] = bytesView(checkedBody(bodies[i], 'bodies'))
      return { t, protocol, bodies: bodies as Uint8Array[] }
    }
    case 'req':
      onlyKeys(map, ['t', 'id', 'protocol', 'body'])
      return { t, id: counterField(map, 'id'), protocol: protocolField(map), body: bodyField(map) }
    case 'res':
      onlyKeys(map, ['t', 'id', 'body'])
      return { t, id: counterField(map, 'id'), body: bodyField(map) }
    case 'err': {
      onlyKeys(map, ['t', 'id', 'code', 'message'])
      const code = map.code
      if (typeof code !== 'string' || !SEALED_ERROR_CODES.has(code)) {
        throw new MalformedFrameError(`field "code" must be one of ${[...SEALED_ERROR_CODES].join(', ')}`)
      }
      return {
        t,
        id: counterField(map, 'id'),
        code: code as SealedErrorCode,
        message: messageField(map),
      }
    }
    case 'revoke':
      onlyKeys(map, ['t'])
      return { t }
    case 'rekey':
    case 'rekeyAck':
      onlyKeys(map, ['t', 'eph', 'nonce', 'sig'])
      return { t, ...exchangeFields(map) }
    case 'batch': {
      // Several messages sealed together (written in one turn); never nested.
      onlyKeys(map, ['t', 'messages'])
      const messages = map.messages
      if (!Array.isArray(messages) || messages.length < 1 || messages.length > MAX_BATCH_MESSAGES) {
        throw new MalformedFrameError(
          `field "messages" must be a list of 1 to ${MAX_BATCH_MESSAGES} messages`,
        )
      }
      return {
        t,
        messages: messages.map((item) => {
          const message = toSealedMessage(item)
          if (message.t === 'batch') throw new MalformedFrameError('a batch must not contain a batch')
          return message
        }),
      }
    }
    default:
      throw new UnknownFrameError(t)
  }
}

function plainMap(value: unknown): Fields {
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) {
    throw new MalformedFrameError('the frame must be a CBOR map with text keys')
  }
  return value as Fields
}

function typeField(map: Fields): string {
  if (typeof map.t !== 'string') throw new MalformedFrameError('field "t" must be a string')
  return map.t
}

function version(map: Fields): void {
  if (typeof map.v !== 'number') throw new MalformedFrameError('field "v" must be the number 1')
  if (map.v !== 1) throw new UnsupportedVersionError(map.v)
}

// Strict: a frame has exactly these fields; anything new needs a new protocol version.
function onlyKeys(map: Fields, allowed: string[]): void {
  for (const key of Object.keys(map)) {
    if (!allowed.includes(key)) throw new MalformedFrameError(`the frame has an unexpected field "${key}"`)
  }
}

function exchangeFields(map: Fields): { eph: Uint8Array; nonce: Uint8Array; sig: Uint8Array } {
  return {
    eph: bytesCopy(map, 'eph', EPH_BYTES),
    nonce: bytesCopy(map, 'nonce', NONCE_BYTES),
    sig: bytesCopy(map, 'sig', SIG_BYTES),
  }
}

// Frame counters and request ids. CBOR decoders may hand a large one over as an integer-valued float or a bigint;
// JS needs a safe integer.
function counterField(map: Fields, key: string): number {
  const raw = map[key]
  const value =
    typeof raw === 'bigint' && raw >= 0n && raw <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(raw) : raw
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new MalformedFrameError(`field "${key}" must be a non-negative integer below 2^53`)
  }
  return value
}

function rawBytes(map: Fields, key: string): Uint8Array {
  const value = map[key]
  if (!(value instanceof Uint8Array)) throw new MalformedFrameError(`field "${key}" must be a byte string`)
  return value
}

// A small field: copied into a plain Uint8Array, so it neither shares nor pins the input buffer.
function bytesCopy(map: Fields, key: string, length: number): Uint8Array {
  const value = rawBytes(map, key)
  if (value.byteLength !== length) {
    throw new MalformedFrameError(`field "${key}" must be ${length} bytes, got ${value.byteLength}`)
  }
  return new Uint8Array(value)
}

// A large field: a plain Uint8Array view of the input, not a copy.
function bytesView(value: Uint8Array): Uint8Array {
  return value.constructor === Uint8Array
    ? value
    : new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
}

function ciphertextField(map: Fields): Uint8Array {
  const ct = rawBytes(map, 'ct')
  // Every ciphertext carries its tag; the frame size bounds the rest.
  if (ct.byteLength < TAG_BYTES) {
    throw new MalformedFrameError(`field "ct" must be at least ${TAG_BYTES} bytes, got ${ct.byteLength}`)
  }
  return bytesView(ct)
}

function bodyField(map: Fields): Uint8Array {
  return bytesView(checkedBody(map.body, 'body'))
}

function checkedBody(value: unknown, key: 'body' | 'bodies'): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new MalformedFrameError(
      key === 'body' ? 'field "body" must be a byte string' : 'field "bodies" must hold only byte strings',
    )
  }
  if (value.byteLength > MAX_BODY_BYTES) throw new OversizedFrameError(value.byteLength, MAX_BODY_BYTES)
  return value
}

function protocolField(map: Fields): string {
  return protocolValue(map.protocol)
}

function protocolValue(value: unknown): string {
  if (typeof value !== 'string' || !PROTOCOL_NAME.test(value)) {
    throw new MalformedFrameError('field "protocol" must be 1 to 64 characters of A-Z a-z 0-9 . _ / -')
  }
  return value
}

/** A list of 1 to MAX_BATCH_MESSAGES items. */
function listField(map: Fields, key: string, what: string): unknown[] {
  const value = map[key]
  if (!Array.isArray(value) || value.length < 1 || value.length > MAX_BATCH_MESSAGES) {
    throw new MalformedFrameError(`field "${key}" must be a list of 1 to ${MAX_BATCH_MESSAGES} ${what}`)
  }
  return value
}

function messageField(map: Fields): string {
  const value = map.message
  if (typeof value !== 'string') throw new MalformedFrameError('field "message" must be a text string')
  const chars = [...value].length
  if (chars > MAX_ERROR_MESSAGE_CHARS) {
    throw new MalformedFrameError(
      `field "message" must be at most ${MAX_ERROR_MESSAGE_CHARS} characters, got ${chars}`,
    )
  }
  // Messages end up on terminals: control characters (escape sequences among them) are refused.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  if (/[\u0000-\u001f\u007f-\u009f]/.test(value)) {
    throw new MalformedFrameError('field "message" must not contain control characters')
  }
  return value
}

// Sealed messages, written by hand. The shapes that carry application bytes (`msg`, `msgs`, `req`, `res`, and the
// `batch` around them) are maps written in a fixed key order with the same checks decoding makes; the rest (pings,
// errors, re-keys: rare and small) go through cbor-x after `toSealedMessage` checked them. Any CBOR decoder reads
// the result, and cbor-x decodes it to the same values (tested).

/** Bodies this large are parts of their own when a message is encoded in parts; smaller ones are copied. */
export const SEPARATE_BODY_BYTES = 4 * 1024
// The buffers small items are copied into: the first is small (most messages are), each next one 4x larger, up to
// this; a new one starts when one is full.
const FIRST_SCRATCH_BYTES = 256
const SCRATCH_BYTES = 16 * 1024
const MAJOR_TEXT = 0x60
const MAJOR_ARRAY = 0x80
const MAJOR_MAP = 0xa0
const text = (value: string): Uint8Array => cbor.encode(value)
const KEY = {
  t: text('t'),
  id: text('id'),
  protocol: text('protocol'),
  body: text('body'),
  bodies: text('bodies'),
  messages: text('messages'),
}
const TYPE = {
  msg: text('msg'),
  msgs: text('msgs'),
  req: text('req'),
  res: text('res'),
  batch: text('batch'),
}

/** Writes CBOR as parts: small items into a shared buffer, large bodies by reference. */
class PartsWriter {
  readonly #parts: Uint8Array[] = []
  #buffer = new Uint8Array(0)
  #next = FIRST_SCRATCH_BYTES
  #at = 0
  #length = 0

  head(major: number, value: number): void {
    this.#room(9)
    this.#at = writeUint(this.#buffer, this.#at, major, value)
    this.#length += uintLength(value)
  }

  /** Bytes that are already CBOR (a key, a value encoded by cbor-x). */
  raw(bytes: Uint8Array): void {
    this.#room(bytes.byteLength)
    this.#buffer.set(bytes, this.#at)
    this.#at += bytes.byteLength
    this.#length += bytes.byteLength
  }

  /** A protocol name: ASCII, checked by the caller. */
  ascii(value: string): void {
    this.head(MAJOR_TEXT, value.length)
    this.#room(value.length)
    for (let i = 0; i < value.length; i++) this.#buffer[this.#at + i] = value.charCodeAt(i)
    this.#at += value.length
    this.#length += value.length
  }

  /** Bytes that are already CBOR: copied when small, a part of their own (by reference) when large. */
  encoded(value: Uint8Array): void {
    if (value.byteLength < SEPARATE_BODY_BYTES) {
      this.raw(value)
      return
    }
    this.#cut()
    this.#parts.push(value)
    this.#length += value.byteLength
  }

  bytes(value: Uint8Array): void {
    const length = value.byteLength
    if (length < SEPARATE_BODY_BYTES) {
      // Head and body copied together: the common case in a batch of small messages.
      this.#room(3 + length)
      const at = writeUint(this.#buffer, this.#at, MAJOR_BYTES, length)
      this.#buffer.set(value, at)
      this.#length += at - this.#at + length
      this.#at = at + length
      return
    }
    this.head(MAJOR_BYTES, length)
    this.#cut()
    this.#parts.push(value)
    this.#length += value.byteLength
  }

  /** The parts; throws OversizedFrameError when together they pass `limit`. */
  finish(limit: number): Uint8Array[] {
    if (this.#length > limit) throw new OversizedFrameError(this.#length, limit)
    this.#cut()
    return this.#parts
  }

  #room(bytes: number): void {
    if (this.#at + bytes <= this.#buffer.byteLength) return
    this.#cut()
    // Not zeroed (every byte is written before it is read); Node pools the small ones.
    const buffer = Buffer.allocUnsafe(Math.max(bytes, this.#next))
    this.#buffer = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
    this.#next = Math.min(this.#next * 4, SCRATCH_BYTES)
  }

  // Ends the current part; what is left of the buffer serves the next one.
  #cut(): void {
    if (this.#at === 0) return
    this.#parts.push(this.#buffer.subarray(0, this.#at))
    this.#buffer = this.#buffer.subarray(this.#at)
    this.#at = 0
  }
}

function writeSealedMessage(writer: PartsWriter, message: OutgoingMessage, inBatch: boolean): void {
  switch (typeof message === 'object' && message !== null ? message.t : undefined) {
    case 'msg':
    case 'req':
    case 'res': {
      // `{ t, id?, protocol?, body }`: requests and answers carry an id, messages and requests a protocol.
      const { t, id, protocol, body } = message as {
        t: 'msg' | 'req' | 'res'
        id?: unknown
        protocol?: unknown
        body: unknown
      }
      const withId = t !== 'msg'
      const withProtocol = t !== 'res'
      writer.head(MAJOR_MAP, 2 + Number(withId) + Number(withProtocol))
      writeType(writer, TYPE[t])
      if (withId) writeId(writer, id)
      if (withProtocol) writeProtocol(writer, protocol)
      writer.raw(KEY.body)
      writer.bytes(checkedBody(body, 'body'))
      return
    }
    case 'msgs': {
      const { protocol, bodies } = message as Extract<OutgoingMessage, { t: 'msgs' }>
      writer.head(MAJOR_MAP, 3)
      writeType(writer, TYPE.msgs)
      writeProtocol(writer, protocol)
      writer.raw(KEY.bodies)
      if (bodies instanceof EncodedBodies) {
        if (bodies.count < 1) throw new MalformedFrameError('field "bodies" must hold at least one body')
        writer.head(MAJOR_ARRAY, bodies.count)
        writer.encoded(bodies.bytes)
        return
      }
      const list = listField({ bodies }, 'bodies', 'byte strings')
      writer.head(MAJOR_ARRAY, list.length)
      for (const body of list) writer.bytes(checkedBody(body, 'bodies'))
      return
    }
    case 'batch': {
      if (inBatch) throw new MalformedFrameError('a batch must not contain a batch')
      const { messages } = message as Extract<OutgoingMessage, { t: 'batch' }>
      const list = listField({ messages }, 'messages', 'messages')
      writer.head(MAJOR_MAP, 2)
      writeType(writer, TYPE.batch)
      writer.raw(KEY.messages)
      writer.head(MAJOR_ARRAY, list.length)
      for (const item of list) writeSealedMessage(writer, item as OutgoingMessage, true)
      return
    }
    default:
      writer.raw(cbor.encode(toSealedMessage(message)))
  }
}

function writeType(writer: PartsWriter, type: Uint8Array): void {
  writer.raw(KEY.t)
  writer.raw(type)
}

function writeId(writer: PartsWriter, id: unknown): void {
  writer.raw(KEY.id)
  writer.head(MAJOR_UINT, counterField({ id }, 'id'))
}

function writeProtocol(writer: PartsWriter, protocol: unknown): void {
  writer.raw(KEY.protocol)
  writer.ascii(protocolValue(protocol))
}

function partsLength(parts: readonly Uint8Array[]): number {
  let length = 0
  for (const part of parts) length += part instanceof Uint8Array ? part.byteLength : Number.NaN
  return length
}

function concatParts(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(partsLength(parts))
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.byteLength
  }
  return out
}

// The hot path. Every frame after the handshake is `sealed`, so it is written and read by hand in CBOR's
// preferred serialization: `{ "t": "sealed", "n": uint, "ct": bytes }`, a 3-entry map with its keys in this order.
// cbor-x decodes these bytes to the same map; any other valid encoding (such as cbor-x's own 16-bit map header)
// still decodes through cbor-x below, so the fast path only ever saves time.
const SEALED_HEAD = Uint8Array.of(0xa3, 0x61, 0x74, 0x66, ...new TextEncoder().encode('sealed'), 0x61, 0x6e)
const CT_KEY = Uint8Array.of(0x62, 0x63, 0x74)
const MAJOR_UINT = 0x00
const MAJOR_BYTES = 0x40

// Everything of a sealed frame before the ciphertext bytes, after its length prefix when `prefixed`.
function sealedFrameHead(n: number, ctLength: number, prefixed: boolean): Uint8Array {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    throw new MalformedFrameError('field "n" must be a non-negative integer below 2^53')
  }
  if (Number.isNaN(ctLength)) throw new MalformedFrameError('field "ct" must be a byte string')
  if (ctLength < TAG_BYTES) {
    throw new MalformedFrameError(`field "ct" must be at least ${TAG_BYTES} bytes, got ${ctLength}`)
  }
  const headLength = SEALED_HEAD.length + uintLength(n) + CT_KEY.length + uintLength(ctLength)
  const length = headLength + ctLength
  if (length > MAX_LINK_FRAME_BYTES) throw new OversizedFrameError(length, MAX_LINK_FRAME_BYTES)
  const out = new Uint8Array((prefixed ? varintLength(length) : 0) + headLength)
  let at = prefixed ? writeVarint(out, 0, length) : 0
  out.set(SEALED_HEAD, at)
  at = writeUint(out, at + SEALED_HEAD.length, MAJOR_UINT, n)
  out.set(CT_KEY, at)
  writeUint(out, at + CT_KEY.length, MAJOR_BYTES, ctLength)
  return out
}

function decodeSealedFrame(bytes: Uint8Array): LinkFrame | undefined {
  if (bytes.byteLength > MAX_LINK_FRAME_BYTES || bytes.byteLength < SEALED_HEAD.length) return undefined
  for (let i = 0; i < SEALED_HEAD.length; i++) if (bytes[i] !== SEALED_HEAD[i]) return undefined
  const n = readUint(bytes, SEALED_HEAD.length, MAJOR_UINT)
  if (n === undefined) return undefined
  let at = readEnd
  for (let i = 0; i < CT_KEY.length; i++) if (bytes[at + i] !== CT_KEY[i]) return undefined
  const ctLength = readUint(bytes, at + CT_KEY.length, MAJOR_BYTES)
  if (ctLength === undefined || ctLength < TAG_BYTES) return undefined
  at = readEnd
  if (at + ctLength !== bytes.byteLength) return undefined
  return { t: 'sealed', n, ct: new Uint8Array(bytes.buffer, bytes.byteOffset + at, ctLength) }
}

function uintLength(value: number): number {
  if (value < 24) return 1
  if (value < 0x100) return 2
  if (value < 0x10000) return 3
  if (value < 0x100000000) return 5
  return 9
}

function writeUint(out: Uint8Array, at: number, major: number, value: number): number {
  if (value < 24) {
    out[at] = major | value
    return at + 1
  }
  if (value < 0x100) {
    out[at] = major | 24
    out[at + 1] = value
    return at + 2
  }
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
  if (value < 0x10000) {
    out[at] = major | 25
    view.setUint16(at + 1, value)
    return at + 3
  }
  if (value < 0x100000000) {
    out[at] = major | 26
    view.setUint32(at + 1, value)
    return at + 5
  }
  out[at] = major | 27
  view.setUint32(at + 1, Math.floor(value / 0x100000000))
  view.setUint32(at + 5, value >>> 0)
  return at + 9
}

// Where the last readUint stopped (a module variable, so the hot path allocates no tuple).
let readEnd = 0

// A CBOR head of the given major type with a definite value that is a safe integer, or undefined.
function readUint(bytes: Uint8Array, at: number, major: number): number | undefined {
  const head = bytes[at]
  if (head === undefined || (head & 0xe0) !== major) return undefined
  const info = head & 0x1f
  const size = info < 24 ? 0 : info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : -1
  if (size < 0 || at + 1 + size > bytes.byteLength) return undefined
  let value = info < 24 ? info : 0
  for (let i = 1; i <= size; i++) value = value * 256 + (bytes[at + i] as number)
  if (!Number.isSafeInteger(value)) return undefined
  readEnd = at + 1 + size
  return value
}

/** Bytes of the unsigned varint (multiformats unsigned-varint, as `lpStream` writes it) for `value`. */
export function varintLength(value: number): number {
  let length = 1
  while (value >= 0x80) {
    value = Math.floor(value / 0x80)
    length++
  }
  return length
}

/** Writes `value` as an unsigned varint into `out` at `at`; returns where it ends. */
export function writeVarint(out: Uint8Array, at: number, value: number): number {
  while (value >= 0x80) {
    out[at++] = (value & 0x7f) | 0x80
    value = Math.floor(value / 0x80)
  }
  out[at++] = value
  return at
}
