// CBOR codec for file drops (ARCHITECTURE.md "File drop `/sdnet/drop/1.0.0`: frames and manifest"): the control
// messages that travel sealed over the link under DROP_MESSAGE_PROTOCOL, the frames of the data stream
// `/sdnet/drop/1.0.0`, and the hashes that check the data. Like codec.ts and msg-codec.ts, decoding is the edge
// where untrusted bytes become typed values: each message type lists its fields with a reader that checks the
// field's type and size, and anything else (an unknown `t`, a missing, extra or wrong field, an oversized frame)
// is a named FrameError. The manifest itself is checked in drop-manifest.ts.
//
// Throughput: a chunk frame is written by hand, as a fixed 84-byte head in front of the data, which is passed on by
// reference (`encodeDataFrameParts`), and read back from that head without cbor-x, the data a view of the input.
// Any other valid CBOR encoding of a chunk still decodes, through cbor-x.

import { createHash, timingSafeEqual } from 'node:crypto'
import { decodeChecked, encodeChecked } from './cbor.ts'
import { MalformedFrameError, UnknownFrameError, UnsupportedVersionError } from './errors.ts'
import { MAX_BODY_BYTES } from './msg-codec.ts'

/** The data stream's protocol id: one stream per transfer (or more), on the paired device's connection. */
export const DROP_PROTOCOL = '/sdnet/drop/1.0.0'
/** The sealed-message protocol name under which the control messages travel over the link. */
export const DROP_MESSAGE_PROTOCOL = 'drop/1'
/**
 * Files travel in chunks of this size, each starting at a multiple of it; only a file's last chunk is shorter.
 * Fixed by the protocol, because a file's hash is built from its chunks' hashes (`FileHasher`).
 */
export const CHUNK_BYTES = 256 * 1024
/** Largest data stream frame: a full chunk plus room for its head (84 bytes by hand, more from other encoders). */
export const MAX_DATA_FRAME_BYTES = CHUNK_BYTES + 1024
/** Largest encoded control message: what one sealed message body can carry. */
export const MAX_DROP_MESSAGE_BYTES = MAX_BODY_BYTES
/** The encoded manifest travels in parts of at most this size: the first in `offer`, the rest in `manifestPart`. */
export const MAX_MANIFEST_PART_BYTES = 512 * 1024
/** The most any receiver may accept, whatever its limits: the encoded manifest's length, its entries. */
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024
export const MAX_MANIFEST_ENTRIES = 1_000_000
/** Files a `resume` may list as partly received. */
export const MAX_RESUME_PARTIAL = 1024
export const HASH_BYTES = 32
export const TOKEN_BYTES = 32

/** Why a receiver refused an offer: its user declined, or it refused the offer by itself. */
export type DropRejectReason = 'Declined' | 'InvalidManifest' | 'TooLarge' | 'DiskFull' | 'RateLimited'
/**
 * Why a side gave up on an accepted transfer (the names of machines/drop.ts, which transport/ may not import):
 * `Corrupted` a file failed its hash twice, `SourceChanged` the sender's files no longer match the manifest,
 * `ProtocolError` the peer broke the protocol (a resume for a transfer this side does not know, among others).
 */
export type DropFailReason =
  | 'Timeout'
  | 'SourceChanged'
  | 'Corrupted'
  | 'DiskFull'
  | 'IoError'
  | 'ProtocolError'

export const DROP_REJECT_REASONS: readonly DropRejectReason[] = [
  'Declined',
  'InvalidManifest',
  'TooLarge',
  'DiskFull',
  'RateLimited',
]
export const DROP_FAIL_REASONS: readonly DropFailReason[] = [
  'Timeout',
  'SourceChanged',
  'Corrupted',
  'DiskFull',
  'IoError',
  'ProtocolError',
]

/** A file the receiver holds in part: its bytes up to `offset` (a multiple of CHUNK_BYTES) are verified. */
export interface ResumePoint {
  file: number
  offset: number
}

/** Opens a transfer: what is offered, and the token that binds the data stream(s) to this link. */
export interface OfferMessage {
  t: 'offer'
  v: 1
  /** 16 random bytes as 32 lowercase hex digits. */
  transferId: string
  /** 32 random bytes; the data stream's `open` frame must carry them. */
  token: Uint8Array
  /** How many entries are files, and their sizes added up: the receiver can refuse before it has the manifest. */
  files: number
  bytes: number
  /** The encoded manifest's length and SHA-256; `part` is its first MAX_MANIFEST_PART_BYTES at most. */
  manifestBytes: number
  manifestHash: Uint8Array
  part: Uint8Array
}

/** The next part of the encoded manifest, right after the offer or the previous part. */
export interface ManifestPartMessage {
  t: 'manifestPart'
  transferId: string
  offset: number
  part: Uint8Array
}

/**
 * Control messages, sealed over the link. The sender sends offer and manifestPart; the receiver accept, reject,
 * resume and completed; either side cancel and failed.
 */
export type DropMessage =
  | OfferMessage
  | ManifestPartMessage
  | { t: 'accept'; transferId: string }
  | { t: 'reject'; transferId: string; reason: DropRejectReason; message: string }
  | { t: 'cancel'; transferId: string; message: string }
  /**
   * Where to go on after an interruption: bit i of `complete` (byte i >> 3, bit i & 7) is set when entry i is in
   * place (`completeBitmap`); `partial` lists the files received in part. Every other file starts from 0.
   */
  | { t: 'resume'; transferId: string; complete: Uint8Array; partial: ResumePoint[] }
  /**
   * Every file is verified and in place; `hash` is `transferHash` over the files' hashes as the receiver verified
   * them, for the sender to compare with its own.
   */
  | { t: 'completed'; transferId: string; hash: Uint8Array }
  /** `file`: the manifest index of the file concerned, when one is. */
  | { t: 'failed'; transferId: string; reason: DropFailReason; message: string; file?: number }

/** A file's bytes from `offset`; `hash` is SHA-256 of `data`. */
export interface ChunkFrame {
  t: 'chunk'
  /** The file's index in the manifest's entries. */
  file: number
  /** A multiple of CHUNK_BYTES. */
  offset: number
  hash: Uint8Array
  /** CHUNK_BYTES, or what is left of the file (at least 1 byte). */
  data: Uint8Array
}

/** Frames the sender writes on the data stream: `open` first, then chunks and file ends. */
export type SenderFrame =
  | { t: 'open'; v: 1; transferId: string; token: Uint8Array }
  | ChunkFrame
  /** All of the file was sent (also for an empty file); `hash` is its `FileHasher` digest. */
  | { t: 'fileEnd'; file: number; hash: Uint8Array }

/**
 * Frames the receiver writes back: `ack` once the file's bytes up to `offset` are verified and written (at the
 * file's size: the whole file is verified and in place), `nack` to have them sent again from `offset`.
 */
export type ReceiverFrame =
  | { t: 'ack'; file: number; offset: number }
  | { t: 'nack'; file: number; offset: number }

export type DataFrame = SenderFrame | ReceiverFrame

// --- encoding and decoding

/** Encodes a control message; throws a FrameError for one the other side would reject. */
export function encodeDropMessage(message: DropMessage): Uint8Array {
  return encodeChecked(fromFields(MESSAGES, message), MAX_DROP_MESSAGE_BYTES)
}

/** Decodes and validates a control message; throws a FrameError naming what was wrong. */
export function decodeDropMessage(bytes: Uint8Array): DropMessage {
  return fromFields(MESSAGES, decodeChecked(bytes, MAX_DROP_MESSAGE_BYTES, 'file drop'))
}

/** Encodes a data stream frame as one buffer (a chunk's data copied): for tests, or where a copy does not matter. */
export function encodeDataFrame(frame: DataFrame): Uint8Array {
  const [head, data] = encodeDataFrameParts(frame) as [Uint8Array, Uint8Array?]
  if (data === undefined) return head
  const out = new Uint8Array(head.byteLength + data.byteLength)
  out.set(head)
  out.set(data, head.byteLength)
  return out
}

/**
 * A data stream frame in parts that add up to `encodeDataFrame(frame)`: a chunk is its head, then its data as it
 * is (the caller's buffer, not a copy: keep it unchanged until sent). Write it as one length-prefixed message,
 * `lp.write(new Uint8ArrayList(...parts))`. Throws a FrameError for a frame the other side would reject.
 */
export function encodeDataFrameParts(frame: DataFrame): Uint8Array[] {
  if (typeof frame === 'object' && frame !== null && frame.t === 'chunk') {
    return [chunkHead(frame), frame.data]
  }
  return [encodeChecked(fromFields(DATA_FRAMES, frame), MAX_DATA_FRAME_BYTES)]
}

/** Decodes a frame from the sender (open, chunk, fileEnd); a chunk's data is a view of `bytes`. */
export function decodeSenderFrame(bytes: Uint8Array): SenderFrame {
  const frame =
    decodeChunkFrame(bytes) ??
    fromFields(DATA_FRAMES, decodeChecked(bytes, MAX_DATA_FRAME_BYTES, 'file drop'))
  if (frame.t === 'ack' || frame.t === 'nack') {
    throw malformed(`"${frame.t}" is sent by the receiver, not the sender`)
  }
  return frame
}

/** Decodes a frame from the receiver (ack, nack). */
export function decodeReceiverFrame(bytes: Uint8Array): ReceiverFrame {
  const frame = fromFields(DATA_FRAMES, decodeChecked(bytes, MAX_DATA_FRAME_BYTES, 'file drop'))
  if (frame.t !== 'ack' && frame.t !== 'nack') {
    throw malformed(`"${frame.t}" is sent by the sender, not the receiver`)
  }
  return frame
}

function malformed(problem: string): MalformedFrameError {
  return new MalformedFrameError(problem, 'file drop')
}

// --- fields: each message type is a table of readers, one per field; decoding and encoding both go through it.

/** Checks one field's value and returns it as the frame holds it. */
type Read<T> = (value: unknown, key: string) => T
type Fields<F> = { readonly [K in Exclude<keyof F, 't'>]-?: Read<F[K]> }
type Table<U extends { t: string }> = { readonly [T in U['t']]: Fields<Extract<U, { t: T }>> }

// Builds a fresh value holding only the known fields (so callers never see extra keys), in the table's order.
function fromFields<U extends { t: string }>(table: Table<U>, value: unknown): U {
  const map = plainMap(value, 'the frame')
  const t = map.t
  if (typeof t !== 'string') throw malformed('field "t" must be a string')
  // `hasOwn`: a `t` such as "constructor" must not find the table's prototype.
  if (!Object.hasOwn(table, t)) throw new UnknownFrameError(t, 'file drop')
  const fields = table[t as U['t']] as Record<string, Read<unknown>>
  return { t, ...readFields(fields, map, 'the frame', ['t']) } as U
}

function readFields(
  fields: Record<string, Read<unknown>>,
  map: Record<string, unknown>,
  where: string,
  read: string[] = [],
): object {
  // Strict: a message has exactly these fields; anything new needs a new protocol version.
  for (const key of Object.keys(map)) {
    if (!Object.hasOwn(fields, key) && !read.includes(key)) {
      throw malformed(`${where} has an unexpected field ${JSON.stringify(key.slice(0, 40))}`)
    }
  }
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(fields)) {
    const value = (fields[key] as Read<unknown>)(map[key], key)
    // An optional field that is absent stays absent (cbor-x would write `undefined` for it).
    if (value !== undefined) out[key] = value
  }
  return out
}

function plainMap(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) {
    throw malformed(`${what} must be a CBOR map with text keys`)
  }
  return value as Record<string, unknown>
}

// Listed first in its tables, so a newer version is told as such before its fields are looked at.
const version: Read<1> = (value) => {
  if (typeof value !== 'number') throw malformed('field "v" must be the number 1')
  if (value !== 1) throw new UnsupportedVersionError(value, 'file drop')
  return 1
}

// CBOR decoders may hand a large integer over as a bigint; JS needs a safe integer.
function uint(max = Number.MAX_SAFE_INTEGER): Read<number> {
  return (raw, key) => {
    const value = typeof raw === 'bigint' && raw >= 0n && raw <= BigInt(max) ? Number(raw) : raw
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) {
      throw malformed(`field "${key}" must be an integer from 0 to ${max}`)
    }
    return value
  }
}

function optional<T>(read: Read<T>): Read<T | undefined> {
  return (value, key) => (value === undefined ? undefined : read(value, key))
}

const fileIndex = uint(MAX_MANIFEST_ENTRIES - 1)
const anyOffset = uint()
const chunkOffset: Read<number> = (raw, key) => {
  const value = anyOffset(raw, key)
  if (value % CHUNK_BYTES !== 0) throw malformed(`field "${key}" must be a multiple of ${CHUNK_BYTES}`)
  return value
}

function rawBytes(value: unknown, key: string, min: number, max: number): Uint8Array {
  if (!(value instanceof Uint8Array)) throw malformed(`field "${key}" must be a byte string`)
  if (value.byteLength < min || value.byteLength > max) {
    const size = min === max ? `${min}` : `${min} to ${max}`
    throw malformed(`field "${key}" must be ${size} bytes, got ${value.byteLength}`)
  }
  return value
}

// A small field: copied into a plain Uint8Array, so it neither shares nor pins the input buffer.
function bytesCopy(min: number, max = min): Read<Uint8Array> {
  return (value, key) => new Uint8Array(rawBytes(value, key, min, max))
}

// A large field: a plain Uint8Array view of the input (cbor-x hands out Buffers), not a copy.
function bytesView(min: number, max: number): Read<Uint8Array> {
  return (value, key) => asView(rawBytes(value, key, min, max))
}

function asView(value: Uint8Array): Uint8Array {
  return value.constructor === Uint8Array
    ? value
    : new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
}

const hash = bytesCopy(HASH_BYTES)
const token = bytesCopy(TOKEN_BYTES)

const TRANSFER_ID = /^[0-9a-f]{32}$/
const transferId: Read<string> = (value) => {
  if (typeof value !== 'string' || !TRANSFER_ID.test(value)) {
    throw malformed('field "transferId" must be 32 lowercase hex digits')
  }
  return value
}

const MAX_MESSAGE_CHARS = 256
// Messages end up on terminals: control characters (escape sequences among them) are refused.
const message: Read<string> = (value, key) => {
  if (typeof value !== 'string') throw malformed(`field "${key}" must be a text string`)
  const chars = [...value].length
  if (chars > MAX_MESSAGE_CHARS) {
    throw malformed(`field "${key}" must be at most ${MAX_MESSAGE_CHARS} characters, got ${chars}`)
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  if (/[\u0000-\u001f\u007f-\u009f]/.test(value)) {
    throw malformed(`field "${key}" must not contain control characters`)
  }
  return value
}

function oneOf<T extends string>(values: readonly T[]): Read<T> {
  return (value, key) => {
    if (typeof value !== 'string' || !(values as readonly string[]).includes(value)) {
      throw malformed(`field "${key}" must be one of ${values.join(', ')}`)
    }
    return value as T
  }
}

const resumePoints: Read<ResumePoint[]> = (value, key) => {
  if (!Array.isArray(value) || value.length > MAX_RESUME_PARTIAL) {
    throw malformed(`field "${key}" must be a list of at most ${MAX_RESUME_PARTIAL} files`)
  }
  const point = { file: fileIndex, offset: chunkOffset }
  const where = `an item of "${key}"`
  return value.map((item) => readFields(point, plainMap(item, where), where) as ResumePoint)
}

const MESSAGES: Table<DropMessage> = {
  offer: {
    v: version,
    transferId,
    token,
    files: uint(MAX_MANIFEST_ENTRIES),
    bytes: uint(),
    manifestBytes: uint(MAX_MANIFEST_BYTES),
    manifestHash: hash,
    part: bytesView(0, MAX_MANIFEST_PART_BYTES),
  },
  manifestPart: {
    transferId,
    offset: uint(MAX_MANIFEST_BYTES - 1),
    part: bytesView(1, MAX_MANIFEST_PART_BYTES),
  },
  accept: { transferId },
  reject: { transferId, reason: oneOf(DROP_REJECT_REASONS), message },
  cancel: { transferId, message },
  resume: { transferId, complete: bytesCopy(0, Math.ceil(MAX_MANIFEST_ENTRIES / 8)), partial: resumePoints },
  completed: { transferId, hash },
  failed: { transferId, reason: oneOf(DROP_FAIL_REASONS), message, file: optional(fileIndex) },
}

const DATA_FRAMES: Table<DataFrame> = {
  open: { v: version, transferId, token },
  chunk: { file: fileIndex, offset: chunkOffset, hash, data: bytesView(1, CHUNK_BYTES) },
  fileEnd: { file: fileIndex, hash },
  ack: { file: fileIndex, offset: anyOffset },
  nack: { file: fileIndex, offset: chunkOffset },
}

// --- chunk frames by hand: `{ "t": "chunk", "file": uint32, "offset": uint64, "hash": bytes(32), "data": bytes }`,
// a 5-entry map in this key order with fixed-width integer heads (valid CBOR, though not its preferred
// serialization), so the head is always 84 bytes and its fields sit at fixed places.

const te = new TextEncoder()
const text = (value: string): number[] => [0x60 | value.length, ...te.encode(value)]
// What comes before each value: the map head and `"t": "chunk"`, then each key with its value's CBOR head
// (0x1a: uint32, 0x1b: uint64, 0x58 0x20: 32 bytes, 0x5a: bytes with a uint32 length).
const BEFORE_FILE = [0xa5, ...text('t'), ...text('chunk'), ...text('file'), 0x1a]
const BEFORE_OFFSET = [...text('offset'), 0x1b]
const BEFORE_HASH = [...text('hash'), 0x58, HASH_BYTES]
const BEFORE_DATA = [...text('data'), 0x5a]
const FILE_AT = BEFORE_FILE.length
const OFFSET_AT = FILE_AT + 4 + BEFORE_OFFSET.length
const HASH_AT = OFFSET_AT + 8 + BEFORE_HASH.length
const LENGTH_AT = HASH_AT + HASH_BYTES + BEFORE_DATA.length
const CHUNK_HEAD_BYTES = LENGTH_AT + 4
const zeros = (n: number): number[] => new Array(n).fill(0)
const CHUNK_HEAD = Uint8Array.of(
  ...[...BEFORE_FILE, ...zeros(4), ...BEFORE_OFFSET, ...zeros(8)],
  ...[...BEFORE_HASH, ...zeros(HASH_BYTES), ...BEFORE_DATA, ...zeros(4)],
)
// The head's fixed bytes: everything but the values.
const FIXED: ReadonlyArray<readonly [number, number]> = [
  [0, FILE_AT],
  [FILE_AT + 4, OFFSET_AT],
  [OFFSET_AT + 8, HASH_AT],
  [HASH_AT + HASH_BYTES, LENGTH_AT],
]

function chunkHead(frame: ChunkFrame): Uint8Array {
  // The same checks decoding makes, on a copy of the fields (the data is not copied).
  const fields = fromFields(DATA_FRAMES, { ...frame }) as ChunkFrame
  const head = new Uint8Array(CHUNK_HEAD)
  const view = new DataView(head.buffer)
  view.setUint32(FILE_AT, fields.file)
  view.setUint32(OFFSET_AT, Math.floor(fields.offset / 0x100000000))
  view.setUint32(OFFSET_AT + 4, fields.offset >>> 0)
  head.set(fields.hash, HASH_AT)
  view.setUint32(LENGTH_AT, fields.data.byteLength)
  return head
}

// A chunk in the form chunkHead writes, or undefined for anything else (which then goes through cbor-x).
function decodeChunkFrame(bytes: Uint8Array): ChunkFrame | undefined {
  if (bytes.byteLength < CHUNK_HEAD_BYTES || bytes.byteLength > CHUNK_HEAD_BYTES + CHUNK_BYTES)
    return undefined
  for (const [from, to] of FIXED) {
    for (let i = from; i < to; i++) if (bytes[i] !== CHUNK_HEAD[i]) return undefined
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (view.getUint32(LENGTH_AT) !== bytes.byteLength - CHUNK_HEAD_BYTES) return undefined
  // The values go through the same readers as in any other encoding.
  const read = DATA_FRAMES.chunk
  return {
    t: 'chunk',
    file: read.file(view.getUint32(FILE_AT), 'file'),
    // Past 2^53 the float is inexact, but then it is over the maximum either way.
    offset: read.offset(view.getUint32(OFFSET_AT) * 0x100000000 + view.getUint32(OFFSET_AT + 4), 'offset'),
    hash: read.hash(bytes.subarray(HASH_AT, HASH_AT + HASH_BYTES), 'hash'),
    data: read.data(bytes.subarray(CHUNK_HEAD_BYTES), 'data'),
  }
}

// --- hashes

/** SHA-256 of a chunk's data, as its frame carries it. */
export function chunkHash(data: Uint8Array): Uint8Array {
  return asView(createHash('sha256').update(data).digest())
}

/** The chunk frame for `data` at `offset` of entry `file`, its hash computed. */
export function chunkFrame(file: number, offset: number, data: Uint8Array): ChunkFrame {
  return { t: 'chunk', file, offset, hash: chunkHash(data), data }
}

/** Whether a chunk's data matches its hash: check before writing it, and ask for it again (`nack`) when not. */
export function checkChunk(frame: ChunkFrame): boolean {
  return equalBytes(chunkHash(frame.data), frame.hash)
}

/** How long the chunk at `offset` of a file of `size` bytes is: CHUNK_BYTES, less for the file's last one. */
export function chunkLength(size: number, offset: number): number {
  return Math.min(CHUNK_BYTES, size - offset)
}

const FILE_LABEL = te.encode('sdnet/drop/v1 file\0')
const TRANSFER_LABEL = te.encode('sdnet/drop/v1 transfer\0')

/**
 * A file's hash: SHA-256 over a label, the file's size (uint64 big-endian) and its chunks' hashes in order (the
 * scheme of Dropbox's content hash), so the file's bytes are hashed once, as chunks, and not a second time whole.
 * Feed it the chunk hashes as the chunks are verified (receiver) or read (sender); after a restart, from the chunks
 * already on disk.
 *
 * @example
 * const hasher = new FileHasher(entry.size)
 * for (const frame of chunks) if (checkChunk(frame)) hasher.add(frame.hash)
 * const ok = equalBytes(hasher.digest(), fileEnd.hash)
 */
export class FileHasher {
  readonly #sha = createHash('sha256')

  constructor(size: number) {
    const head = new Uint8Array(FILE_LABEL.byteLength + 8)
    head.set(FILE_LABEL)
    new DataView(head.buffer).setBigUint64(FILE_LABEL.byteLength, BigInt(size))
    this.#sha.update(head)
  }

  add(chunkHash: Uint8Array): void {
    this.#sha.update(chunkHash)
  }

  digest(): Uint8Array {
    return new Uint8Array(this.#sha.digest())
  }
}

/** The `FileHasher` digest of a whole file in memory: for tests and small files. */
export function fileHash(data: Uint8Array): Uint8Array {
  const hasher = new FileHasher(data.byteLength)
  for (let at = 0; at < data.byteLength; at += CHUNK_BYTES) {
    hasher.add(chunkHash(data.subarray(at, at + CHUNK_BYTES)))
  }
  return hasher.digest()
}

/** What `completed` carries: SHA-256 over a label, the manifest's hash and every file's hash in order. */
export function transferHash(manifestHash: Uint8Array, fileHashes: Iterable<Uint8Array>): Uint8Array {
  const sha = createHash('sha256').update(TRANSFER_LABEL).update(manifestHash)
  for (const h of fileHashes) sha.update(h)
  return new Uint8Array(sha.digest())
}

/** Constant-time comparison, for tokens and hashes. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b)
}

/** `resume.complete` for a manifest of `entries` entries, the given ones in place. */
export function completeBitmap(entries: number, complete: Iterable<number>): Uint8Array {
  const bitmap = new Uint8Array(Math.ceil(entries / 8))
  for (const i of complete) bitmap[i >> 3] = (bitmap[i >> 3] as number) | (1 << (i & 7))
  return bitmap
}

/** Whether `resume.complete` says entry `index` is in place. */
export function isComplete(bitmap: Uint8Array, index: number): boolean {
  return (((bitmap[index >> 3] ?? 0) >> (index & 7)) & 1) === 1
}
