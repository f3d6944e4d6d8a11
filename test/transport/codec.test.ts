// The pairing frame codec: round trips, and a named error for every way bytes can be wrong.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { Encoder } from 'cbor-x'
import type { PairFrame } from '../../transport/codec.ts'
import { decodePairFrame, encodePairFrame, MAX_PAIR_FRAME_BYTES } from '../../transport/codec.ts'
import { assertFrameError } from '../helpers/frames.ts'

// The wire format, to build frames the codec itself would refuse to produce.
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false })

function bytes(n: number): Uint8Array {
  return new Uint8Array(randomBytes(n))
}

const device = { id: 'laptop-1', name: 'Ana’s laptop', publicKey: bytes(32) }

const frames: PairFrame[] = [
  { t: 'request', v: 1, rendezvous: bytes(32), nonce: bytes(32), device },
  { t: 'challenge', v: 1, nonce: bytes(32), device: { id: 'p', name: 'Phone', publicKey: bytes(32) } },
  { t: 'response', v: 1, sig: bytes(64), mac: bytes(32) },
  { t: 'complete', v: 1, sig: bytes(64), mac: bytes(32) },
  { t: 'error', v: 1, code: 'WrongCode', message: 'no device nearby is waiting for this code' },
  { t: 'error', v: 1, code: 'ProtocolError', message: '' },
]

// Encodes `fields` as the frame would, with no validation.
function raw(fields: unknown): Uint8Array {
  return cbor.encode(fields)
}

// Appends the pair 7 => 1 to an encoded map (cbor-x writes map headers as 0xb9 plus a 16-bit count).
function withIntegerKey(encoded: Uint8Array): Uint8Array {
  const out = Buffer.concat([encoded, Buffer.from([0x07, 0x01])])
  assert.equal(out[0], 0xb9)
  out.writeUInt16BE(out.readUInt16BE(1) + 1, 1)
  return out
}

function assertRefused(input: Uint8Array, name: string, mentions?: string): void {
  assertFrameError(() => decodePairFrame(input), name, mentions)
}

describe('pairing frame codec', () => {
  for (const frame of frames) {
    it(`round-trips ${frame.t}${frame.t === 'error' ? ` ${frame.code}` : ''}`, () => {
      const decoded = decodePairFrame(encodePairFrame(frame))
      assert.deepEqual(decoded, frame)
      for (const value of [
        ...Object.values(decoded),
        ...('device' in decoded ? Object.values(decoded.device) : []),
      ]) {
        // Byte strings come back as plain Uint8Array, never cbor-x's Buffer.
        if (value instanceof Uint8Array) assert.equal(value.constructor, Uint8Array)
      }
    })
  }

  it('writes plain CBOR: a text-keyed map with untagged byte strings', () => {
    const frame: PairFrame = {
      t: 'response',
      v: 1,
      sig: new Uint8Array(64).fill(7),
      mac: new Uint8Array(32).fill(9),
    }
    const encoded = Buffer.from(encodePairFrame(frame))
    assert.equal(encoded[0]! >> 5, 5, 'major type 5: a map')
    assert.ok(encoded.includes(Buffer.concat([Buffer.from([0x58, 64]), Buffer.from(frame.sig)])))
    assert.ok(!encoded.includes(Buffer.from([0xd8, 0x40])), 'no tag 64 (typed array) on byte strings')
  })

  it('returns byte strings that do not share memory with the input', () => {
    const frame: PairFrame = { t: 'complete', v: 1, sig: bytes(64), mac: bytes(32) }
    const input = encodePairFrame(frame)
    const decoded = decodePairFrame(input)
    input.fill(0)
    assert.deepEqual(decoded, frame)
  })

  it('keeps the largest valid frame under the cap', () => {
    const name = '🙂'.repeat(64) // 64 characters, 4 bytes each in UTF-8
    const big: PairFrame = {
      t: 'request',
      v: 1,
      rendezvous: bytes(32),
      nonce: bytes(32),
      device: { ...device, name },
    }
    assert.ok(encodePairFrame(big).byteLength < MAX_PAIR_FRAME_BYTES)
    assert.deepEqual(decodePairFrame(encodePairFrame(big)), big)
  })

  describe('rejects malformed input with MalformedFrameError', () => {
    const valid = { t: 'request', v: 1, rendezvous: bytes(32), nonce: bytes(32), device }
    const cases: Array<[string, Uint8Array, string]> = [
      ['empty input', new Uint8Array(0), 'not CBOR'],
      ['bytes that are not CBOR', new Uint8Array([0xff, 0x00]), 'not CBOR'],
      ['a valid frame followed by extra bytes', Buffer.concat([raw(valid), Buffer.from([0x00])]), 'not CBOR'],
      ['a CBOR array', raw([1, 2, 3]), 'CBOR map'],
      ['a CBOR text string', raw('request'), 'CBOR map'],
      ['a CBOR null', raw(null), 'CBOR map'],
      ['a map with an array key', Buffer.from('a1810102', 'hex'), 'not CBOR'],
      ['a map with an integer key', withIntegerKey(raw(valid)), 'unexpected field "7"'],
      [
        'a map tagged as a JS Map (tag 259)',
        raw(new Map<unknown, unknown>(Object.entries(valid))),
        'CBOR map',
      ],
      ['a missing "t"', raw({ v: 1, sig: bytes(64), mac: bytes(32) }), '"t"'],
      ['a numeric "t"', raw({ t: 3, v: 1 }), '"t"'],
      ['a missing "v"', raw({ t: 'response', sig: bytes(64), mac: bytes(32) }), '"v"'],
      ['a text "v"', raw({ t: 'response', v: '1', sig: bytes(64), mac: bytes(32) }), '"v"'],
      ['a missing field', raw({ t: 'request', v: 1, rendezvous: bytes(32), device }), '"nonce"'],
      ['an unexpected field', raw({ ...valid, extra: true }), '"extra"'],
      [
        'a 31-byte rendezvous',
        raw({ ...valid, rendezvous: bytes(31) }),
        '"rendezvous" must be 32 bytes, got 31',
      ],
      ['a 33-byte nonce', raw({ ...valid, nonce: bytes(33) }), '"nonce" must be 32 bytes, got 33'],
      ['a nonce as an array', raw({ ...valid, nonce: [...bytes(32)] }), '"nonce" must be a byte string'],
      ['a nonce as text', raw({ ...valid, nonce: 'a'.repeat(32) }), '"nonce" must be a byte string'],
      [
        'a 63-byte sig',
        raw({ t: 'response', v: 1, sig: bytes(63), mac: bytes(32) }),
        '"sig" must be 64 bytes',
      ],
      [
        'a 31-byte mac',
        raw({ t: 'complete', v: 1, sig: bytes(64), mac: bytes(31) }),
        '"mac" must be 32 bytes',
      ],
      ['a device that is not a map', raw({ ...valid, device: 'laptop' }), '"device" must be a CBOR map'],
      [
        'a device without a name',
        raw({ ...valid, device: { id: 'x', publicKey: bytes(32) } }),
        '"device.name"',
      ],
      [
        'an empty device name',
        raw({ ...valid, device: { ...device, name: '' } }),
        '"device.name" must be 1 to 64',
      ],
      [
        'a 65-character device name',
        raw({ ...valid, device: { ...device, name: 'n'.repeat(65) } }),
        'got 65',
      ],
      [
        'a 65-character device id',
        raw({ ...valid, device: { ...device, id: 'i'.repeat(65) } }),
        '"device.id"',
      ],
      ['a numeric device id', raw({ ...valid, device: { ...device, id: 5 } }), '"device.id" must be a text'],
      [
        'a 31-byte public key',
        raw({ ...valid, device: { ...device, publicKey: bytes(31) } }),
        'device.publicKey',
      ],
      ['a device with an extra field', raw({ ...valid, device: { ...device, admin: true } }), '"admin"'],
      ['an unknown error code', raw({ t: 'error', v: 1, code: 'Oops', message: '' }), '"code"'],
      ['an error without a message', raw({ t: 'error', v: 1, code: 'Timeout' }), '"message"'],
      [
        'a 257-character message',
        raw({ t: 'error', v: 1, code: 'Timeout', message: 'm'.repeat(257) }),
        'got 257',
      ],
      ['a numeric message', raw({ t: 'error', v: 1, code: 'Timeout', message: 404 }), '"message"'],
      [
        'a device name with a terminal escape sequence',
        raw({ ...valid, device: { ...device, name: 'bob\u001b[2J' } }),
        'control characters',
      ],
    ]
    for (const [what, input, mentions] of cases) {
      it(what, () => assertRefused(input, 'MalformedFrameError', mentions))
    }
  })

  it('rejects input over 8 KiB with OversizedFrameError', () => {
    const big = raw({ t: 'error', v: 1, code: 'Timeout', message: 'x'.repeat(MAX_PAIR_FRAME_BYTES) })
    assert.ok(big.byteLength > MAX_PAIR_FRAME_BYTES)
    assertRefused(big, 'OversizedFrameError', String(MAX_PAIR_FRAME_BYTES))
  })

  it('rejects an unknown "t" with UnknownFrameError', () => {
    assertRefused(raw({ t: 'hello', v: 1 }), 'UnknownFrameError', '"hello"')
  })

  it('rejects a "v" other than 1 with UnsupportedVersionError, before looking at "t"', () => {
    assertRefused(
      raw({ t: 'response', v: 2, sig: bytes(64), mac: bytes(32) }),
      'UnsupportedVersionError',
      '2',
    )
    assertRefused(raw({ t: 'rekey', v: 2 }), 'UnsupportedVersionError', 'version 2')
    assertRefused(raw({ t: 'response', v: 0, sig: bytes(64), mac: bytes(32) }), 'UnsupportedVersionError')
  })

  it('refuses to encode a frame the other side would reject', () => {
    const short = { t: 'response', v: 1, sig: bytes(64), mac: bytes(16) } as PairFrame
    assert.throws(() => encodePairFrame(short), { name: 'MalformedFrameError' })
    const unnamed = { t: 'challenge', v: 1, nonce: bytes(32), device: { ...device, name: '' } } as PairFrame
    assert.throws(() => encodePairFrame(unnamed), { name: 'MalformedFrameError' })
  })
})
