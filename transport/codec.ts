// CBOR codec for the frames of `/sdnet/pair/1.0.0` (ARCHITECTURE.md "Pairing protocol").
// Decoding is the edge where untrusted bytes become typed frames: it checks every field's type and size and
// rejects anything else with a named FrameError, so nothing past here ever sees raw or partial input.

import { cbor } from './cbor.ts'
import {
  MalformedFrameError,
  OversizedFrameError,
  UnknownFrameError,
  UnsupportedVersionError,
} from './errors.ts'

/** Largest encoded frame (ARCHITECTURE.md: "at most 8 KiB"). */
export const MAX_PAIR_FRAME_BYTES = 8192

export interface WireDevice {
  id: string
  name: string
  publicKey: Uint8Array
}

export type PairErrorCode =
  | 'UnknownSession'
  | 'SessionBusy'
  | 'WrongCode'
  | 'Rejected'
  | 'Expired'
  | 'Cancelled'
  | 'Timeout'
  | 'RateLimited'
  | 'ProtocolError'

export type PairFrame =
  | { t: 'request'; v: 1; rendezvous: Uint8Array; nonce: Uint8Array; device: WireDevice }
  | { t: 'challenge'; v: 1; nonce: Uint8Array; device: WireDevice }
  | { t: 'response'; v: 1; sig: Uint8Array; mac: Uint8Array }
  | { t: 'complete'; v: 1; sig: Uint8Array; mac: Uint8Array }
  | { t: 'error'; v: 1; code: PairErrorCode; message: string }

export const PAIR_ERROR_CODES: ReadonlySet<string> = new Set<PairErrorCode>([
  'UnknownSession',
  'SessionBusy',
  'WrongCode',
  'Rejected',
  'Expired',
  'Cancelled',
  'Timeout',
  'RateLimited',
  'ProtocolError',
])

// Sizes from the frame table: 32-byte rendezvous and nonces, Ed25519 keys (32) and signatures (64),
// HMAC-SHA256 tags (32). Text limits keep every valid frame far below MAX_PAIR_FRAME_BYTES.
const RENDEZVOUS_BYTES = 32
const NONCE_BYTES = 32
const PUBLIC_KEY_BYTES = 32
const SIG_BYTES = 64
const MAC_BYTES = 32
const MAX_DEVICE_ID_CHARS = 64
const MAX_DEVICE_NAME_CHARS = 64
const MAX_ERROR_MESSAGE_CHARS = 256

/** Encodes a frame; throws MalformedFrameError for a frame the other side would reject. */
export function encodePairFrame(frame: PairFrame): Uint8Array {
  const checked = toPairFrame(frame)
  const bytes: Uint8Array = cbor.encode(checked)
  if (bytes.byteLength > MAX_PAIR_FRAME_BYTES)
    throw new OversizedFrameError(bytes.byteLength, MAX_PAIR_FRAME_BYTES)
  return bytes
}

/** Decodes and validates one frame; throws a FrameError subclass naming what was wrong. */
export function decodePairFrame(bytes: Uint8Array): PairFrame {
  if (bytes.byteLength > MAX_PAIR_FRAME_BYTES)
    throw new OversizedFrameError(bytes.byteLength, MAX_PAIR_FRAME_BYTES)
  let value: unknown
  try {
    value = cbor.decode(bytes)
  } catch (err) {
    throw new MalformedFrameError(`not CBOR: ${(err as Error).message}`)
  }
  return toPairFrame(value)
}

type Fields = Record<string, unknown>

// Builds a fresh frame holding only the known fields, so callers never see extra keys or shared buffers.
function toPairFrame(value: unknown): PairFrame {
  const map = plainMap(value, 'the frame')
  if (typeof map.v !== 'number') throw new MalformedFrameError('field "v" must be the number 1')
  // The version is checked before the type: a future version may add frame types.
  if (map.v !== 1) throw new UnsupportedVersionError(map.v)
  if (typeof map.t !== 'string') throw new MalformedFrameError('field "t" must be a string')
  switch (map.t) {
    case 'request':
      onlyKeys(map, ['t', 'v', 'rendezvous', 'nonce', 'device'])
      return {
        t: 'request',
        v: 1,
        rendezvous: bytesField(map, 'rendezvous', RENDEZVOUS_BYTES),
        nonce: bytesField(map, 'nonce', NONCE_BYTES),
        device: deviceField(map),
      }
    case 'challenge':
      onlyKeys(map, ['t', 'v', 'nonce', 'device'])
      return { t: 'challenge', v: 1, nonce: bytesField(map, 'nonce', NONCE_BYTES), device: deviceField(map) }
    case 'response':
    case 'complete':
      onlyKeys(map, ['t', 'v', 'sig', 'mac'])
      return {
        t: map.t,
        v: 1,
        sig: bytesField(map, 'sig', SIG_BYTES),
        mac: bytesField(map, 'mac', MAC_BYTES),
      }
    case 'error': {
      onlyKeys(map, ['t', 'v', 'code', 'message'])
      const code = map.code
      if (typeof code !== 'string' || !PAIR_ERROR_CODES.has(code)) {
        throw new MalformedFrameError(`field "code" must be one of ${[...PAIR_ERROR_CODES].join(', ')}`)
      }
      const message = textField(map, 'message', 0, MAX_ERROR_MESSAGE_CHARS)
      return { t: 'error', v: 1, code: code as PairErrorCode, message }
    }
    default:
      throw new UnknownFrameError(map.t)
  }
}

function plainMap(value: unknown, what: string): Fields {
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) {
    throw new MalformedFrameError(`${what} must be a CBOR map with text keys`)
  }
  return value as Fields
}

// Strict: a version-1 frame has exactly these fields; anything new needs a new `v`.
function onlyKeys(map: Fields, allowed: string[], where = 'the frame'): void {
  for (const key of Object.keys(map)) {
    if (!allowed.includes(key)) throw new MalformedFrameError(`${where} has an unexpected field "${key}"`)
  }
}

function bytesField(map: Fields, key: string, length: number, path = key): Uint8Array {
  const value = map[key]
  if (!(value instanceof Uint8Array)) throw new MalformedFrameError(`field "${path}" must be a byte string`)
  if (value.byteLength !== length) {
    throw new MalformedFrameError(`field "${path}" must be ${length} bytes, got ${value.byteLength}`)
  }
  // cbor-x hands out Buffers that may share memory with the input: copy into a plain Uint8Array.
  return new Uint8Array(value)
}

function textField(map: Fields, key: string, min: number, max: number, path = key): string {
  const value = map[key]
  if (typeof value !== 'string') throw new MalformedFrameError(`field "${path}" must be a text string`)
  const chars = [...value].length
  if (chars < min || chars > max) {
    throw new MalformedFrameError(`field "${path}" must be ${min} to ${max} characters, got ${chars}`)
  }
  // Names and messages end up on terminals: control characters (escape sequences among them) are refused.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  if (/[\u0000-\u001f\u007f-\u009f]/.test(value)) {
    throw new MalformedFrameError(`field "${path}" must not contain control characters`)
  }
  return value
}

function deviceField(map: Fields): WireDevice {
  const device = plainMap(map.device, 'field "device"')
  onlyKeys(device, ['id', 'name', 'publicKey'], 'field "device"')
  return {
    id: textField(device, 'id', 1, MAX_DEVICE_ID_CHARS, 'device.id'),
    name: textField(device, 'name', 1, MAX_DEVICE_NAME_CHARS, 'device.name'),
    publicKey: bytesField(device, 'publicKey', PUBLIC_KEY_BYTES, 'device.publicKey'),
  }
}
