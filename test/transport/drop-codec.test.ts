// The file drop codec: every control message and data frame round-trips, the hand-written chunk frame agrees with
// plain CBOR both ways, every malformed input is refused with a named FrameError (random and mangled bytes too),
// and the hashes catch a tampered chunk.

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { cbor } from '../../transport/cbor.ts'
import type { ChunkFrame, DataFrame, DropMessage } from '../../transport/drop-codec.ts'
import {
  CHUNK_BYTES,
  checkChunk,
  chunkFrame,
  chunkLength,
  completeBitmap,
  decodeDropMessage,
  decodeReceiverFrame,
  decodeSenderFrame,
  encodeDataFrame,
  encodeDataFrameParts,
  encodeDropMessage,
  equalBytes,
  FileHasher,
  fileHash,
  isComplete,
  MAX_DATA_FRAME_BYTES,
  MAX_DROP_MESSAGE_BYTES,
  MAX_MANIFEST_BYTES,
  MAX_MANIFEST_ENTRIES,
  MAX_MANIFEST_PART_BYTES,
  MAX_RESUME_PARTIAL,
  transferHash,
} from '../../transport/drop-codec.ts'
import { FrameError } from '../../transport/errors.ts'
import { assertFrameError } from '../helpers/frames.ts'

function bytes(n: number): Uint8Array {
  return new Uint8Array(randomBytes(n))
}

const transferId = '0123456789abcdef0123456789abcdef'

const MESSAGES: DropMessage[] = [
  {
    t: 'offer',
    v: 1,
    transferId,
    token: bytes(32),
    files: 3,
    bytes: 2 ** 40,
    manifestBytes: 900_000,
    manifestHash: bytes(32),
    part: bytes(MAX_MANIFEST_PART_BYTES),
  },
  { t: 'manifestPart', transferId, offset: MAX_MANIFEST_PART_BYTES, part: bytes(1000) },
  { t: 'accept', transferId },
  { t: 'reject', transferId, reason: 'Declined', message: '' },
  { t: 'reject', transferId, reason: 'InvalidManifest', message: 'entry 1 "../x" has a ".." segment' },
  { t: 'cancel', transferId, message: 'cancelled on the sending device' },
  {
    t: 'resume',
    transferId,
    complete: completeBitmap(20, [0, 1, 7, 8]),
    partial: [{ file: 9, offset: CHUNK_BYTES }],
  },
  { t: 'resume', transferId, complete: new Uint8Array(0), partial: [] },
  { t: 'completed', transferId, hash: bytes(32) },
  { t: 'failed', transferId, reason: 'Corrupted', message: 'failed its hash twice', file: 4 },
  { t: 'failed', transferId, reason: 'DiskFull', message: 'no space left in ~/Downloads/sdnet' },
]

const data = bytes(CHUNK_BYTES)
const DATA_FRAMES: DataFrame[] = [
  { t: 'open', v: 1, transferId, token: bytes(32) },
  chunkFrame(0, 0, data),
  chunkFrame(MAX_MANIFEST_ENTRIES - 1, 2 ** 40, bytes(1)),
  chunkFrame(7, 2 ** 53 - 2 ** 18 * 2, bytes(100)),
  { t: 'fileEnd', file: 0, hash: bytes(32) },
  { t: 'ack', file: 3, offset: 12_345 },
  { t: 'nack', file: 3, offset: CHUNK_BYTES * 3 },
]

function decodeData(frame: DataFrame, encoded: Uint8Array): DataFrame {
  return frame.t === 'ack' || frame.t === 'nack' ? decodeReceiverFrame(encoded) : decodeSenderFrame(encoded)
}

// Plain Uint8Array all the way down: never cbor-x's Buffer.
function assertPlainBytes(value: unknown): void {
  if (value instanceof Uint8Array) assert.equal(value.constructor, Uint8Array)
  else if (typeof value === 'object' && value !== null)
    for (const v of Object.values(value)) assertPlainBytes(v)
}

describe('file drop control messages', () => {
  for (const message of MESSAGES) {
    it(`round-trips ${message.t}${'reason' in message ? ` ${message.reason}` : ''}`, () => {
      const decoded = decodeDropMessage(encodeDropMessage(message))
      assert.deepEqual(decoded, message)
      assertPlainBytes(decoded)
    })
  }

  it('keeps the largest offer within one sealed message', () => {
    const offer = MESSAGES[0] as DropMessage
    assert.ok(encodeDropMessage(offer).byteLength < MAX_DROP_MESSAGE_BYTES)
  })

  it('copies small fields and leaves a manifest part a view of the input', () => {
    const encoded = encodeDropMessage(MESSAGES[0] as DropMessage)
    const offer = decodeDropMessage(encoded)
    assert.ok(offer.t === 'offer')
    assert.equal(offer.part.buffer, encoded.buffer)
    assert.notEqual(offer.token.buffer, encoded.buffer)
  })

  it('writes no field for an absent optional one', () => {
    const failed = MESSAGES.at(-1) as DropMessage
    assert.deepEqual(Object.keys(cbor.decode(encodeDropMessage(failed))), [
      't',
      'transferId',
      'reason',
      'message',
    ])
  })

  describe('refuses malformed messages with a named FrameError', () => {
    const offer = { ...(MESSAGES[0] as object) }
    const cases: Array<[string, unknown, string, string?]> = [
      ['a CBOR array', [1, 2], 'MalformedFrameError', 'CBOR map'],
      ['a map without "t"', { transferId }, 'MalformedFrameError', '"t"'],
      ['a numeric "t"', { t: 1, transferId }, 'MalformedFrameError', '"t"'],
      ['an unknown "t"', { t: 'hello', transferId }, 'UnknownFrameError', '"hello"'],
      ['"t" naming a prototype property', { t: 'constructor' }, 'UnknownFrameError'],
      ['"t" as a data stream frame', { t: 'chunk', file: 0 }, 'UnknownFrameError'],
      ['an offer of version 2', { ...offer, v: 2 }, 'UnsupportedVersionError', 'version 2'],
      ['an offer without "v"', { ...offer, v: undefined }, 'MalformedFrameError', '"v"'],
      ['an unexpected field', { t: 'accept', transferId, admin: true }, 'MalformedFrameError', '"admin"'],
      [
        'an upper-case transfer id',
        { t: 'accept', transferId: transferId.toUpperCase() },
        'MalformedFrameError',
      ],
      ['a 31-digit transfer id', { t: 'accept', transferId: transferId.slice(1) }, 'MalformedFrameError'],
      ['a numeric transfer id', { t: 'accept', transferId: 7 }, 'MalformedFrameError', 'transferId'],
      ['a 31-byte token', { ...offer, token: bytes(31) }, 'MalformedFrameError', '"token" must be 32 bytes'],
      ['a token as text', { ...offer, token: 'x'.repeat(32) }, 'MalformedFrameError', 'byte string'],
      ['a negative file count', { ...offer, files: -1 }, 'MalformedFrameError', '"files"'],
      ['a fractional size', { ...offer, bytes: 1.5 }, 'MalformedFrameError', '"bytes"'],
      ['a size past 2^53', { ...offer, bytes: 2 ** 53 }, 'MalformedFrameError', '"bytes"'],
      ['too many files', { ...offer, files: MAX_MANIFEST_ENTRIES + 1 }, 'MalformedFrameError', '"files"'],
      ['too long a manifest', { ...offer, manifestBytes: MAX_MANIFEST_BYTES + 1 }, 'MalformedFrameError'],
      [
        'a 33-byte manifest hash',
        { ...offer, manifestHash: bytes(33) },
        'MalformedFrameError',
        'manifestHash',
      ],
      [
        'an oversized first part',
        { ...offer, part: bytes(MAX_MANIFEST_PART_BYTES + 1) },
        'MalformedFrameError',
      ],
      [
        'an empty further part',
        { t: 'manifestPart', transferId, offset: 5, part: bytes(0) },
        'MalformedFrameError',
      ],
      [
        'an unknown reject reason',
        { t: 'reject', transferId, reason: 'Nope', message: '' },
        'MalformedFrameError',
      ],
      ['a reject without message', { t: 'reject', transferId, reason: 'Declined' }, 'MalformedFrameError'],
      [
        'a 257-character message',
        { t: 'cancel', transferId, message: 'm'.repeat(257) },
        'MalformedFrameError',
      ],
      [
        'an escape sequence in a message',
        { t: 'cancel', transferId, message: 'a\u001b[2J' },
        'MalformedFrameError',
      ],
      [
        'a failure of an unknown reason',
        { t: 'failed', transferId, reason: 'Oops', message: '' },
        'MalformedFrameError',
      ],
      [
        'a failure naming a negative file',
        { t: 'failed', transferId, reason: 'IoError', message: '', file: -1 },
        'MalformedFrameError',
      ],
      [
        'a resume with too many partial files',
        {
          t: 'resume',
          transferId,
          complete: bytes(1),
          partial: Array.from({ length: MAX_RESUME_PARTIAL + 1 }, (_, file) => ({ file, offset: 0 })),
        },
        'MalformedFrameError',
        'at most',
      ],
      [
        'a resume at an offset inside a chunk',
        { t: 'resume', transferId, complete: bytes(1), partial: [{ file: 1, offset: 100 }] },
        'MalformedFrameError',
        'multiple',
      ],
      [
        'a resume point with an extra field',
        { t: 'resume', transferId, complete: bytes(1), partial: [{ file: 1, offset: 0, hash: bytes(32) }] },
        'MalformedFrameError',
        '"hash"',
      ],
      [
        'a resume bitmap longer than the most entries',
        { t: 'resume', transferId, complete: bytes(MAX_MANIFEST_ENTRIES / 8 + 1), partial: [] },
        'MalformedFrameError',
        '"complete"',
      ],
      [
        'a completed with a short hash',
        { t: 'completed', transferId, hash: bytes(16) },
        'MalformedFrameError',
      ],
    ]
    for (const [what, value, name, mentions] of cases) {
      it(what, () => {
        assertFrameError(() => decodeDropMessage(cbor.encode(value)), name, mentions)
        assertFrameError(() => encodeDropMessage(value as DropMessage), name, mentions)
      })
    }

    it('bytes that are not CBOR, or a message followed by more bytes', () => {
      assertFrameError(() => decodeDropMessage(Uint8Array.of(0xff)), 'MalformedFrameError', 'not CBOR')
      assertFrameError(() => decodeDropMessage(new Uint8Array(0)), 'MalformedFrameError', 'not CBOR')
      const accept = encodeDropMessage({ t: 'accept', transferId })
      assertFrameError(
        () => decodeDropMessage(Buffer.concat([accept, Uint8Array.of(0)])),
        'MalformedFrameError',
      )
    })

    it('a message over the sealed body limit', () => {
      const big = cbor.encode({ t: 'cancel', transferId, message: 'x'.repeat(MAX_DROP_MESSAGE_BYTES) })
      assertFrameError(() => decodeDropMessage(big), 'OversizedFrameError', String(MAX_DROP_MESSAGE_BYTES))
    })

    it('escapes an unknown type before it reaches a terminal', () => {
      assert.throws(
        () => decodeDropMessage(cbor.encode({ t: 'x\u001b[2J\u202e\u0085' })),
        // biome-ignore lint/suspicious/noControlCharactersInRegex: what must not be there
        (err: Error) => err.name === 'UnknownFrameError' && !/[\u0000-\u001f\u0085\u202e]/.test(err.message),
      )
    })

    it('names the file drop protocol in its messages', () => {
      assertFrameError(() => decodeDropMessage(cbor.encode({ t: 'x' })), 'UnknownFrameError', 'file drop')
      assertFrameError(() => decodeDropMessage(cbor.encode([])), 'MalformedFrameError', 'Malformed file drop')
    })
  })
})

describe('file drop data frames', () => {
  for (const frame of DATA_FRAMES) {
    const label = frame.t === 'chunk' ? `chunk of ${frame.data.byteLength} bytes at ${frame.offset}` : frame.t
    it(`round-trips ${label}`, () => {
      const decoded = decodeData(frame, encodeDataFrame(frame))
      assert.deepEqual(decoded, frame)
      assertPlainBytes(decoded)
      assert.deepEqual(decodeData(frame, new Uint8Array(Buffer.concat(encodeDataFrameParts(frame)))), frame)
    })
  }

  it('writes a chunk as an 84-byte head and the data by reference, which plain CBOR reads back', () => {
    const frame = chunkFrame(5, CHUNK_BYTES * 2, data)
    const parts = encodeDataFrameParts(frame)
    assert.equal(parts.length, 2)
    assert.equal(parts[0]?.byteLength, 84)
    assert.equal(parts[1], data)
    const plain = cbor.decode(encodeDataFrame(frame))
    assert.deepEqual(Object.keys(plain), ['t', 'file', 'offset', 'hash', 'data'])
    assert.deepEqual(
      {
        ...plain,
        offset: Number(plain.offset),
        hash: new Uint8Array(plain.hash),
        data: new Uint8Array(plain.data),
      },
      frame,
    )
  })

  it('decodes a chunk that another encoder wrote (preferred serialization, other key order)', () => {
    for (const frame of [chunkFrame(1, 0, bytes(10)), chunkFrame(70_000, 2 ** 40, data)]) {
      const { data: body, hash, file, offset } = frame
      for (const encoded of [
        cbor.encode({ t: 'chunk', file, offset, hash, data: body }),
        cbor.encode({ data: body, hash, offset, file, t: 'chunk' }),
      ]) {
        assert.deepEqual(decodeSenderFrame(encoded), frame)
      }
    }
  })

  it('hands out chunk data as a view of the input and its hash as a copy', () => {
    const encoded = encodeDataFrame(chunkFrame(0, 0, bytes(5000)))
    const frame = decodeSenderFrame(encoded)
    assert.ok(frame.t === 'chunk')
    assert.equal(frame.data.constructor, Uint8Array)
    assert.equal(frame.data.buffer, encoded.buffer)
    assert.notEqual(frame.hash.buffer, encoded.buffer)
    // Also from a Buffer (what stream chunks are).
    const fromBuffer = decodeSenderFrame(Buffer.from(encoded))
    assert.ok(fromBuffer.t === 'chunk')
    assert.equal(fromBuffer.data.constructor, Uint8Array)
  })

  describe('refuses malformed frames with a named FrameError', () => {
    const chunk = { ...chunkFrame(1, 0, bytes(64)) }
    const cases: Array<[string, unknown, string, string?]> = [
      ['a chunk at an offset inside a chunk', { ...chunk, offset: 100 }, 'MalformedFrameError', 'multiple'],
      ['an empty chunk', { ...chunk, data: new Uint8Array(0) }, 'MalformedFrameError', '"data"'],
      [
        'a chunk over the chunk size',
        { ...chunk, data: bytes(CHUNK_BYTES + 1) },
        'MalformedFrameError',
        '"data"',
      ],
      ['a chunk with a 31-byte hash', { ...chunk, hash: bytes(31) }, 'MalformedFrameError', '"hash"'],
      [
        'a chunk of a file past the most entries',
        { ...chunk, file: MAX_MANIFEST_ENTRIES },
        'MalformedFrameError',
      ],
      ['a chunk without data', { t: 'chunk', file: 1, offset: 0, hash: bytes(32) }, 'MalformedFrameError'],
      ['an open of version 2', { t: 'open', v: 2, transferId, token: bytes(32) }, 'UnsupportedVersionError'],
      ['an open with a short token', { t: 'open', v: 1, transferId, token: bytes(8) }, 'MalformedFrameError'],
      [
        'a file end with an extra field',
        { t: 'fileEnd', file: 1, hash: bytes(32), size: 3 },
        'MalformedFrameError',
      ],
      ['an unknown frame', { t: 'chunks', file: 1 }, 'UnknownFrameError'],
      ['an ack, from the sender', { t: 'ack', file: 1, offset: 0 }, 'MalformedFrameError', 'receiver'],
    ]
    for (const [what, value, name, mentions] of cases) {
      it(what, () => {
        assertFrameError(() => decodeSenderFrame(cbor.encode(value)), name, mentions)
        if ((value as { t: string }).t !== 'ack') {
          assertFrameError(() => encodeDataFrame(value as DataFrame), name, mentions)
        }
      })
    }

    it('a sender frame, from the receiver', () => {
      for (const frame of DATA_FRAMES.filter((f) => f.t !== 'ack' && f.t !== 'nack')) {
        assertFrameError(() => decodeReceiverFrame(encodeDataFrame(frame)), 'MalformedFrameError', 'sender')
      }
    })

    it('a nack inside a chunk, and acks and nacks with bad fields', () => {
      assertFrameError(
        () => decodeReceiverFrame(cbor.encode({ t: 'nack', file: 1, offset: 5 })),
        'MalformedFrameError',
      )
      assertFrameError(
        () => decodeReceiverFrame(cbor.encode({ t: 'ack', file: '1', offset: 5 })),
        'MalformedFrameError',
      )
      assertFrameError(() => decodeReceiverFrame(cbor.encode({ t: 'ack', file: 1 })), 'MalformedFrameError')
    })

    it('a hand-written chunk head whose fields are out of range', () => {
      const encoded = encodeDataFrame(chunkFrame(1, 0, bytes(64)))
      const view = new DataView(encoded.buffer, encoded.byteOffset)
      const unaligned = encoded.slice()
      new DataView(unaligned.buffer).setUint32(31, 100) // the offset's low word
      assertFrameError(() => decodeSenderFrame(unaligned), 'MalformedFrameError', 'multiple')
      const farFile = encoded.slice()
      new DataView(farFile.buffer).setUint32(15, MAX_MANIFEST_ENTRIES)
      assertFrameError(() => decodeSenderFrame(farFile), 'MalformedFrameError', '"file"')
      const past53 = encoded.slice()
      new DataView(past53.buffer).setUint32(27, 0x00200000) // offset 2^53
      assertFrameError(() => decodeSenderFrame(past53), 'MalformedFrameError', '"offset"')
      // A length that does not match the bytes: not the hand-written form, and not valid CBOR either.
      const longer = encoded.slice()
      new DataView(longer.buffer).setUint32(80, view.getUint32(80) + 1)
      assertFrameError(() => decodeSenderFrame(longer), 'MalformedFrameError', 'not CBOR')
      assertFrameError(
        () => decodeSenderFrame(Buffer.concat([encoded, Uint8Array.of(0)])),
        'MalformedFrameError',
      )
    })

    it('a frame over the data frame limit', () => {
      const big = new Uint8Array(MAX_DATA_FRAME_BYTES + 1)
      assertFrameError(() => decodeSenderFrame(big), 'OversizedFrameError')
      assertFrameError(() => decodeReceiverFrame(big), 'OversizedFrameError')
    })
  })
})

// A small seeded generator, so a failing case can be replayed.
function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

describe('decoding hostile bytes', () => {
  const decoders = [decodeDropMessage, decodeSenderFrame, decodeReceiverFrame]

  function survives(input: Uint8Array, label: string): void {
    for (const decode of decoders) {
      try {
        decode(input)
      } catch (err) {
        assert.ok(err instanceof FrameError, `${decode.name} on ${label}: ${String(err)}`)
      }
    }
  }

  it('never throws anything but a FrameError on random bytes', () => {
    const random = mulberry32(11)
    for (let i = 0; i < 3000; i++) {
      const length = Math.floor(random() ** 3 * 2000)
      const input = Uint8Array.from({ length }, () => Math.floor(random() * 256))
      // Many CBOR items start with a map head; give some inputs one.
      if (length > 0 && i % 3 === 0) input[0] = 0xa0 | Math.floor(random() * 6)
      survives(input, `random input ${i}`)
    }
  })

  it('never throws anything but a FrameError on valid frames with bytes changed', () => {
    const random = mulberry32(12)
    const valid = [
      ...MESSAGES.map(encodeDropMessage),
      ...DATA_FRAMES.map((f) =>
        encodeDataFrame(f.t === 'chunk' ? { ...f, ...chunkFrame(f.file, 0, bytes(40)) } : f),
      ),
    ]
    for (let i = 0; i < 3000; i++) {
      const input = (valid[i % valid.length] as Uint8Array).slice(0, 4096)
      for (let flips = 1 + Math.floor(random() * 3); flips > 0; flips--) {
        input[Math.floor(random() * input.byteLength)] = Math.floor(random() * 256)
      }
      survives(input, `mangled input ${i}`)
    }
  })
})

describe('chunk and file hashes', () => {
  it('a chunk passes its check, and fails it with one bit of its data or hash changed', () => {
    const frame = chunkFrame(0, 0, bytes(1000))
    assert.equal(checkChunk(frame), true)
    const tamperedData = frame.data.slice()
    tamperedData[500] = (tamperedData[500] as number) ^ 1
    assert.equal(checkChunk({ ...frame, data: tamperedData }), false)
    const tamperedHash = frame.hash.slice()
    tamperedHash[0] = (tamperedHash[0] as number) ^ 0x80
    assert.equal(checkChunk({ ...frame, hash: tamperedHash }), false)
    // Tampered on the wire: the frame still decodes, and then fails its check.
    const encoded = encodeDataFrame(frame)
    encoded[encoded.byteLength - 1] = (encoded[encoded.byteLength - 1] as number) ^ 1
    assert.equal(checkChunk(decodeSenderFrame(encoded) as ChunkFrame), false)
  })

  it('a chunk hash is SHA-256 of its data', () => {
    const frame = chunkFrame(0, 0, bytes(77))
    assert.deepEqual(
      new Uint8Array(frame.hash),
      new Uint8Array(createHash('sha256').update(frame.data).digest()),
    )
  })

  it('cuts a file into chunks of CHUNK_BYTES, the last one shorter', () => {
    assert.equal(chunkLength(CHUNK_BYTES * 2 + 5, 0), CHUNK_BYTES)
    assert.equal(chunkLength(CHUNK_BYTES * 2 + 5, CHUNK_BYTES * 2), 5)
    assert.equal(chunkLength(CHUNK_BYTES, 0), CHUNK_BYTES)
  })

  it('hashes a file from its chunk hashes, the same incrementally as at once', () => {
    const file = bytes(CHUNK_BYTES * 2 + 10)
    const hasher = new FileHasher(file.byteLength)
    for (let offset = 0; offset < file.byteLength; offset += CHUNK_BYTES) {
      const frame = chunkFrame(
        0,
        offset,
        file.subarray(offset, offset + chunkLength(file.byteLength, offset)),
      )
      assert.equal(checkChunk(frame), true)
      hasher.add(frame.hash)
    }
    assert.deepEqual(hasher.digest(), fileHash(file))
    // Other bytes, a different split or another length give another hash; so does an empty file.
    const other = file.slice()
    other[CHUNK_BYTES + 1] = (other[CHUNK_BYTES + 1] as number) ^ 1
    assert.equal(equalBytes(fileHash(other), fileHash(file)), false)
    assert.equal(equalBytes(fileHash(file.subarray(1)), fileHash(file)), false)
    assert.equal(fileHash(new Uint8Array(0)).byteLength, 32)
    assert.equal(equalBytes(fileHash(new Uint8Array(0)), fileHash(new Uint8Array(1))), false)
  })

  it('hashes a transfer over its manifest and its files, in order', () => {
    const manifest = bytes(32)
    const [a, b] = [bytes(32), bytes(32)]
    assert.deepEqual(transferHash(manifest, [a, b]), transferHash(manifest, [a, b]))
    assert.equal(equalBytes(transferHash(manifest, [a, b]), transferHash(manifest, [b, a])), false)
    assert.equal(equalBytes(transferHash(manifest, [a, b]), transferHash(bytes(32), [a, b])), false)
  })

  it('tells which entries a resume bitmap holds', () => {
    const bitmap = completeBitmap(10, [0, 3, 9])
    assert.equal(bitmap.byteLength, 2)
    assert.deepEqual(
      Array.from({ length: 12 }, (_, i) => isComplete(bitmap, i)),
      [true, false, false, true, false, false, false, false, false, true, false, false],
    )
  })
})
