// The `/sdnet/msg/1.0.0` codec: every frame and sealed message round-trips, the hand-written sealed-frame path
// agrees with plain CBOR both ways, and every malformed input is refused with a named error.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { Encoder } from 'cbor-x'
import type { LinkFrame, SealedMessage } from '../../transport/msg-codec.ts'
import {
  decodeLinkFrame,
  decodeSealedMessage,
  EncodedBodies,
  encodeLinkFrame,
  encodeLinkFrameParts,
  encodeSealedMessage,
  encodeSealedMessageParts,
  MAX_BATCH_MESSAGES,
  MAX_BODY_BYTES,
  MAX_LINK_FRAME_BYTES,
  MSG_PROTOCOL,
  SEPARATE_BODY_BYTES,
  varintLength,
} from '../../transport/msg-codec.ts'

// The same settings as the codec: plain RFC 8949, so tests can build any map, valid or not.
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false })

function bytes(n: number): Uint8Array {
  return new Uint8Array(randomBytes(n))
}

const exchange = () => ({ eph: bytes(32), nonce: bytes(32), sig: bytes(64) })

const LINK_FRAMES: LinkFrame[] = [
  { t: 'hello', v: 1, ...exchange() },
  { t: 'welcome', v: 1, ...exchange() },
  { t: 'sealed', n: 0, ct: bytes(16) },
  { t: 'sealed', n: 7, ct: bytes(100) },
]

const SEALED_MESSAGES: SealedMessage[] = [
  { t: 'ping', id: 0 },
  { t: 'pong', id: 2 ** 53 - 1 },
  { t: 'msg', protocol: 'chat/1', body: bytes(10) },
  { t: 'msg', protocol: 'a', body: new Uint8Array(0) },
  { t: 'msg', protocol: 'files/1', body: bytes(SEPARATE_BODY_BYTES + 1) },
  { t: 'msgs', protocol: 'chat/1', bodies: [bytes(64), new Uint8Array(0), bytes(70_000), bytes(300)] },
  { t: 'req', id: 42, protocol: 'files.v2/list-dir_x', body: bytes(300) },
  { t: 'res', id: 42, body: bytes(3) },
  { t: 'res', id: 2 ** 53 - 1, body: bytes(3) },
  { t: 'err', id: 42, code: 'UnknownProtocol', message: 'no handler for chat/9' },
  { t: 'err', id: 1, code: 'HandlerFailed', message: '' },
  { t: 'err', id: 1, code: 'Timeout', message: 'über 5 s' },
  { t: 'err', id: 1, code: 'TooLarge', message: 'x'.repeat(256) },
  { t: 'revoke' },
  { t: 'rekey', ...exchange() },
  { t: 'rekeyAck', ...exchange() },
]

describe('link frames', () => {
  it('names the protocol and its limits', () => {
    assert.equal(MSG_PROTOCOL, '/sdnet/msg/1.0.0')
    assert.equal(MAX_BODY_BYTES, 1_048_576)
    assert.equal(MAX_LINK_FRAME_BYTES, 1_048_576 + 1024)
  })

  for (const frame of LINK_FRAMES) {
    it(`round-trips ${frame.t}`, () => {
      const decoded = decodeLinkFrame(encodeLinkFrame(frame))
      assert.deepEqual(decoded, frame)
    })
  }

  it('writes sealed frames in the shortest form, which any CBOR decoder reads back', () => {
    const ct = bytes(16)
    const encoded = encodeLinkFrame({ t: 'sealed', n: 5, ct })
    assert.deepEqual(
      Buffer.from(encoded.subarray(0, 17)).toString('hex'),
      // map(3) "t" "sealed" "n" 5 "ct" bytes(16)
      `a3 6174 667365616c6564 616e 05 626374 50`.replaceAll(' ', ''),
    )
    assert.equal(encoded.byteLength, 17 + 16)
    const plain = cbor.decode(encoded)
    assert.deepEqual({ t: plain.t, n: plain.n, ct: new Uint8Array(plain.ct) }, { t: 'sealed', n: 5, ct })
  })

  // Each size class of CBOR's integer heads, for the counter and for the ciphertext length.
  const counters = [0, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1]
  // The last leaves room for cbor-x's longer encoding of the same map.
  const lengths = [16, 23, 24, 255, 256, 65_535, 65_536, MAX_LINK_FRAME_BYTES - 40]
  it('round-trips sealed frames at every size boundary, agreeing with cbor-x both ways', () => {
    for (const n of counters) {
      for (const length of lengths) {
        const frame: LinkFrame = { t: 'sealed', n, ct: bytes(length) }
        const ours = encodeLinkFrame(frame)
        assert.deepEqual(decodeLinkFrame(ours), frame, `n=${n} length=${length}`)
        const plain = cbor.decode(ours)
        assert.equal(Number(plain.n), n) // a bigint from 2^32 on
        assert.equal(plain.ct.byteLength, length)
        // cbor-x writes its own (longer) map header; that form decodes too.
        assert.deepEqual(decodeLinkFrame(cbor.encode({ t: 'sealed', n, ct: frame.ct })), frame)
        assert.deepEqual(decodeLinkFrame(cbor.encode({ t: 'sealed', n: BigInt(n), ct: frame.ct })), frame)
      }
    }
  })

  it('gives the frame for the wire in parts: its length as an unsigned varint, then the frame', () => {
    for (const frame of [...LINK_FRAMES, { t: 'sealed', n: 1, ct: bytes(200_000) } as LinkFrame]) {
      const plain = new Uint8Array(encodeLinkFrame(frame))
      const parts = encodeLinkFrameParts(frame)
      // The ciphertext is passed through, not copied.
      if (frame.t === 'sealed') assert.equal(parts.at(-1), frame.ct)
      const prefixed = new Uint8Array(Buffer.concat(parts))
      const prefix = varintLength(plain.byteLength)
      assert.equal(prefixed.byteLength, prefix + plain.byteLength)
      assert.deepEqual(prefixed.subarray(prefix), plain)
      let length = 0
      for (let i = prefix - 1; i >= 0; i--) length = length * 128 + ((prefixed[i] as number) & 0x7f)
      assert.equal(length, plain.byteLength)
    }
    assert.deepEqual(
      [1, 127, 128, 16_383, 16_384, MAX_LINK_FRAME_BYTES].map(varintLength),
      [1, 1, 2, 2, 3, 3],
    )
  })

  it('hands out the ciphertext without copying it and small fields as copies', () => {
    const encoded = encodeLinkFrame({ t: 'sealed', n: 1, ct: bytes(1000) })
    const sealed = decodeLinkFrame(encoded)
    assert.ok(sealed.t === 'sealed')
    assert.equal(sealed.ct.constructor, Uint8Array)
    assert.equal(sealed.ct.buffer, encoded.buffer)
    const input = cbor.encode({ t: 'sealed', n: 1, ct: bytes(1000) })
    const viaCbor = decodeLinkFrame(input)
    assert.ok(viaCbor.t === 'sealed')
    assert.equal(viaCbor.ct.constructor, Uint8Array)
    assert.equal(viaCbor.ct.buffer, input.buffer)

    const helloBytes = encodeLinkFrame({ t: 'hello', v: 1, ...exchange() })
    const hello = decodeLinkFrame(helloBytes)
    assert.ok(hello.t === 'hello')
    assert.notEqual(hello.eph.buffer, helloBytes.buffer)
    assert.equal(hello.eph.constructor, Uint8Array)
  })
})

// Decoding `value` as CBOR must fail with this error name.
function rejectsLink(value: unknown, name: string, because: string): void {
  assert.throws(() => decodeLinkFrame(cbor.encode(value)), { name }, because)
}

describe('malformed link frames', () => {
  it('refuses bytes that are not one CBOR map', () => {
    assert.throws(() => decodeLinkFrame(new Uint8Array(0)), { name: 'MalformedFrameError' })
    assert.throws(() => decodeLinkFrame(Uint8Array.of(0xff, 0x00)), { name: 'MalformedFrameError' })
    const good = encodeLinkFrame({ t: 'sealed', n: 1, ct: bytes(16) })
    const trailing = new Uint8Array([...good, 0x00])
    assert.throws(() => decodeLinkFrame(trailing), { name: 'MalformedFrameError' })
    assert.throws(() => decodeLinkFrame(good.subarray(0, good.byteLength - 1)), {
      name: 'MalformedFrameError',
    })
    rejectsLink(['sealed', 1, bytes(16)], 'MalformedFrameError', 'an array')
    rejectsLink('sealed', 'MalformedFrameError', 'a string')
    rejectsLink(null, 'MalformedFrameError', 'null')
  })

  it('refuses a missing or unknown type and a wrong version', () => {
    rejectsLink({ v: 1, ...exchange() }, 'MalformedFrameError', 'no t')
    rejectsLink({ t: 1, v: 1 }, 'MalformedFrameError', 't not a string')
    rejectsLink({ t: 'goodbye', v: 1 }, 'UnknownFrameError', 'unknown t')
    rejectsLink({ t: 'ping', id: 1 }, 'UnknownFrameError', 'a sealed message is not a frame')
    rejectsLink({ t: 'hello', ...exchange() }, 'MalformedFrameError', 'no v')
    rejectsLink({ t: 'hello', v: '1', ...exchange() }, 'MalformedFrameError', 'v not a number')
    rejectsLink({ t: 'welcome', v: 2, ...exchange() }, 'UnsupportedVersionError', 'v 2')
  })

  it('refuses hello and welcome fields of the wrong type, size or name', () => {
    for (const t of ['hello', 'welcome']) {
      rejectsLink({ t, v: 1, ...exchange(), extra: 1 }, 'MalformedFrameError', 'extra field')
      rejectsLink({ t, v: 1, ...exchange(), eph: bytes(31) }, 'MalformedFrameError', 'short eph')
      rejectsLink({ t, v: 1, ...exchange(), nonce: bytes(33) }, 'MalformedFrameError', 'long nonce')
      rejectsLink({ t, v: 1, ...exchange(), sig: bytes(63) }, 'MalformedFrameError', 'short sig')
      rejectsLink({ t, v: 1, ...exchange(), sig: 'x'.repeat(64) }, 'MalformedFrameError', 'sig as text')
      const { sig: _, ...withoutSig } = exchange()
      rejectsLink({ t, v: 1, ...withoutSig }, 'MalformedFrameError', 'no sig')
    }
  })

  it('refuses sealed frames with a bad counter or ciphertext', () => {
    const ct = bytes(16)
    rejectsLink({ t: 'sealed', n: -1, ct }, 'MalformedFrameError', 'negative n')
    rejectsLink({ t: 'sealed', n: 1.5, ct }, 'MalformedFrameError', 'fractional n')
    rejectsLink({ t: 'sealed', n: 2 ** 53, ct }, 'MalformedFrameError', 'n past 2^53')
    rejectsLink({ t: 'sealed', n: 2n ** 64n - 1n, ct }, 'MalformedFrameError', 'n as uint64')
    rejectsLink({ t: 'sealed', n: '1', ct }, 'MalformedFrameError', 'n as text')
    rejectsLink({ t: 'sealed', ct }, 'MalformedFrameError', 'no n')
    rejectsLink({ t: 'sealed', n: 1, ct: bytes(15) }, 'MalformedFrameError', 'ct shorter than a tag')
    rejectsLink({ t: 'sealed', n: 1, ct: [1, 2, 3] }, 'MalformedFrameError', 'ct as an array')
    rejectsLink({ t: 'sealed', n: 1 }, 'MalformedFrameError', 'no ct')
    rejectsLink({ t: 'sealed', n: 1, ct, v: 1 }, 'MalformedFrameError', 'extra field')
  })

  it('refuses frames over the size cap, both ways', () => {
    const largest: LinkFrame = { t: 'sealed', n: 0, ct: bytes(MAX_LINK_FRAME_BYTES - 21) }
    assert.equal(encodeLinkFrame(largest).byteLength, MAX_LINK_FRAME_BYTES)
    const over: LinkFrame = { t: 'sealed', n: 0, ct: bytes(MAX_LINK_FRAME_BYTES - 20) }
    assert.throws(() => encodeLinkFrame(over), { name: 'OversizedFrameError' })
    assert.throws(() => encodeLinkFrameParts(over), { name: 'OversizedFrameError' })
    assert.throws(() => decodeLinkFrame(cbor.encode(over)), { name: 'OversizedFrameError' })
  })

  it('refuses to encode an invalid frame', () => {
    const bad = [
      { t: 'sealed', n: -1, ct: bytes(16) },
      { t: 'sealed', n: 0.5, ct: bytes(16) },
      { t: 'sealed', n: 1, ct: bytes(15) },
      { t: 'sealed', n: 1, ct: 'text' },
      { t: 'hello', v: 1, ...exchange(), eph: bytes(1) },
      { t: 'welcome', v: 2, ...exchange() },
      { t: 'nope', v: 1 },
    ] as unknown as LinkFrame[]
    for (const frame of bad) {
      assert.throws(
        () => encodeLinkFrame(frame),
        (err: Error) =>
          ['MalformedFrameError', 'UnsupportedVersionError', 'UnknownFrameError'].includes(err.name),
      )
    }
  })
})

describe('sealed messages', () => {
  for (const message of SEALED_MESSAGES) {
    it(`round-trips ${message.t}${'code' in message ? ` ${message.code}` : ''}`, () => {
      assert.deepEqual(decodeSealedMessage(encodeSealedMessage(message)), message)
    })
  }

  it('fits the largest message, once sealed, in one link frame', () => {
    const message: SealedMessage = {
      t: 'req',
      id: 2 ** 53 - 1,
      protocol: 'p'.repeat(64),
      body: bytes(MAX_BODY_BYTES),
    }
    const plaintext = encodeSealedMessage(message)
    const ct = new Uint8Array(plaintext.byteLength + 16)
    ct.set(plaintext)
    const frame = encodeLinkFrame({ t: 'sealed', n: 2 ** 53 - 1, ct })
    assert.ok(frame.byteLength <= MAX_LINK_FRAME_BYTES)
    assert.deepEqual(decodeSealedMessage(plaintext), message)
  })

  it('writes the shapes it encodes by hand as the same CBOR values cbor-x writes', () => {
    const batch: SealedMessage = {
      t: 'batch',
      messages: [
        { t: 'ping', id: 3 },
        { t: 'msgs', protocol: 'a', bodies: [bytes(2), bytes(5)] },
        { t: 'res', id: 2 ** 32 - 1, body: new Uint8Array(0) },
        { t: 'req', id: 70_000, protocol: 'x.y', body: bytes(300) },
      ],
    }
    for (const message of [...SEALED_MESSAGES, batch]) {
      assert.deepEqual(decodeSealedMessage(cbor.encode(message)), message, message.t)
      // cbor-x writes integers past 32 bits as floats; we write them as integers (RFC 8949 preferred).
      if ('id' in message && message.id >= 2 ** 32) continue
      const theirs = cbor.decode(new Uint8Array(cbor.encode(message)))
      assert.deepEqual(cbor.decode(encodeSealedMessage(message)), theirs, message.t)
    }
  })

  it('encodes in parts: a large body by reference, small ones copied once, the same bytes in all', () => {
    const large = bytes(SEPARATE_BODY_BYTES)
    const small = bytes(SEPARATE_BODY_BYTES - 1)
    const message: SealedMessage = {
      t: 'batch',
      messages: [
        { t: 'msgs', protocol: 'sync/1', bodies: [small, large, small] },
        { t: 'res', id: 9, body: large },
      ],
    }
    const parts = encodeSealedMessageParts(message)
    assert.equal(parts.filter((part) => part === large).length, 2)
    assert.ok(parts.every((part) => part === large || part.buffer !== small.buffer))
    const joined = new Uint8Array(Buffer.concat(parts))
    assert.deepEqual(joined, encodeSealedMessage(message))
    assert.deepEqual(decodeSealedMessage(joined), message)
  })

  it('writes a run whose bodies were encoded as they came exactly as the same bodies in a list', () => {
    const bodies = [bytes(64), new Uint8Array(0), bytes(300), bytes(SEPARATE_BODY_BYTES)]
    const expected = bodies.map((body) => Uint8Array.from(body))
    const slab = new Uint8Array(8 * 1024)
    const encoded = new EncodedBodies(slab, 7)
    for (const body of bodies) assert.equal(encoded.append(body), true)
    assert.equal(encoded.count, 4)
    // Changing a body after it was appended changes nothing: it was copied.
    for (const body of bodies) body.fill(0)
    const run = { t: 'msgs' as const, protocol: 'sync/1', bodies: encoded }
    assert.deepEqual(
      encodeSealedMessage(run),
      encodeSealedMessage({ t: 'msgs', protocol: 'sync/1', bodies: expected }),
    )
    const parts = encodeSealedMessageParts({ t: 'batch', messages: [run, { t: 'ping', id: 1 }] })
    assert.ok(
      parts.some((part) => part.buffer === slab.buffer),
      'a run of 4 KiB or more is sealed from the buffer it was written to',
    )
    assert.deepEqual(decodeSealedMessage(new Uint8Array(Buffer.concat(parts))), {
      t: 'batch',
      messages: [
        { t: 'msgs', protocol: 'sync/1', bodies: expected },
        { t: 'ping', id: 1 },
      ],
    })
  })

  it('writes a run of any body lengths as the list form does, copied when small, by reference when large', () => {
    for (const lengths of [
      [1, 23, 24, 255, 256],
      [0, 4095, 65_535, 65_536],
    ]) {
      const bodies = lengths.map(bytes)
      const slab = new Uint8Array(256 * 1024)
      const encoded = new EncodedBodies(slab, 3)
      for (const body of bodies) assert.equal(encoded.append(body), true)
      const run = { t: 'msgs' as const, protocol: 'a', bodies: encoded }
      const listed = { t: 'msgs' as const, protocol: 'a', bodies }
      assert.deepEqual(encodeSealedMessage(run), encodeSealedMessage(listed), lengths.join())
      const fromSlab = encodeSealedMessageParts(run).some((part) => part.buffer === slab.buffer)
      assert.equal(fromSlab, encoded.bytes.byteLength >= SEPARATE_BODY_BYTES, lengths.join())
    }
  })

  it('refuses a body over the limit in a run, as in a list', () => {
    const encoded = new EncodedBodies(new Uint8Array(MAX_BODY_BYTES + 16), 0)
    assert.throws(() => encoded.append(bytes(MAX_BODY_BYTES + 1)), { name: 'OversizedFrameError' })
    assert.deepEqual([encoded.count, encoded.end], [0, 0])
    assert.equal(encoded.append(bytes(MAX_BODY_BYTES)), true)
  })

  it('ends a run that has no room left or is full, and refuses to encode an empty one', () => {
    const tight = new EncodedBodies(new Uint8Array(70), 0)
    assert.equal(tight.append(bytes(64)), true) // 2-byte head + 64 = 66
    assert.equal(tight.append(bytes(4)), false) // 66 + 5 > 70: nothing written
    assert.deepEqual([tight.count, tight.end], [1, 66])
    assert.equal(tight.append(bytes(3)), true) // 66 + 4 = 70
    assert.deepEqual([tight.count, tight.end], [2, 70])
    const full = new EncodedBodies(new Uint8Array(MAX_BATCH_MESSAGES + 1), 0)
    for (let i = 0; i < MAX_BATCH_MESSAGES; i++) assert.equal(full.append(new Uint8Array(0)), true)
    assert.equal(full.append(new Uint8Array(0)), false)
    const empty = { t: 'msgs' as const, protocol: 'a', bodies: new EncodedBodies(new Uint8Array(8), 0) }
    assert.throws(() => encodeSealedMessageParts(empty), { name: 'MalformedFrameError' })
  })

  it('refuses to encode messages that would not fit in one sealed frame', () => {
    const full = bytes(MAX_BODY_BYTES)
    assert.throws(() => encodeSealedMessageParts({ t: 'msgs', protocol: 'a', bodies: [full, full] }), {
      name: 'OversizedFrameError',
    })
  })

  it('hands out the body without copying it', () => {
    const encoded = encodeSealedMessage({ t: 'msg', protocol: 'chat/1', body: bytes(5000) })
    const message = decodeSealedMessage(encoded)
    assert.ok(message.t === 'msg')
    assert.equal(message.body.constructor, Uint8Array)
    assert.equal(message.body.buffer, encoded.buffer)
  })
})

function rejectsSealed(value: unknown, name: string, because: string): void {
  assert.throws(() => decodeSealedMessage(cbor.encode(value)), { name }, because)
  assert.throws(() => encodeSealedMessage(value as SealedMessage), { name }, `encoding: ${because}`)
}

describe('batches', () => {
  it('round-trip several messages sealed together, in order', () => {
    const messages: SealedMessage[] = [
      { t: 'msg', protocol: 'chat/1', body: Uint8Array.of(1, 2) },
      { t: 'ping', id: 7 },
      { t: 'req', id: 8, protocol: 'echo/1', body: new Uint8Array(0) },
    ]
    assert.deepEqual(decodeSealedMessage(encodeSealedMessage({ t: 'batch', messages })), {
      t: 'batch',
      messages,
    })
  })

  it('refuse a run of one-way messages that is empty, too long or holds anything but byte strings', () => {
    rejectsSealed({ t: 'msgs', protocol: 'chat/1', bodies: [] }, 'MalformedFrameError', 'an empty run')
    rejectsSealed({ t: 'msgs', protocol: 'chat/1', bodies: bytes(3) }, 'MalformedFrameError', 'not a list')
    rejectsSealed({ t: 'msgs', protocol: 'chat/1' }, 'MalformedFrameError', 'no bodies')
    rejectsSealed(
      { t: 'msgs', protocol: 'chat/1', bodies: [bytes(1), 'text'] },
      'MalformedFrameError',
      'text in the run',
    )
    rejectsSealed(
      {
        t: 'msgs',
        protocol: 'chat/1',
        bodies: Array.from({ length: MAX_BATCH_MESSAGES + 1 }, () => bytes(1)),
      },
      'MalformedFrameError',
      'too many bodies',
    )
    rejectsSealed(
      { t: 'msgs', protocol: 'chat 1', bodies: [bytes(1)] },
      'MalformedFrameError',
      'bad protocol',
    )
    assert.throws(
      () =>
        decodeSealedMessage(cbor.encode({ t: 'msgs', protocol: 'a', bodies: [bytes(1)], body: bytes(1) })),
      { name: 'MalformedFrameError' },
    )
    assert.throws(
      () =>
        decodeSealedMessage(cbor.encode({ t: 'msgs', protocol: 'a', bodies: [bytes(MAX_BODY_BYTES + 1)] })),
      { name: 'OversizedFrameError' },
    )
  })

  it('refuse an empty, oversized or nested batch, and a malformed message inside one', () => {
    rejectsSealed({ t: 'batch', messages: [] }, 'MalformedFrameError', 'an empty batch')
    rejectsSealed({ t: 'batch', messages: 'x' }, 'MalformedFrameError', 'not a list')
    const ping = { t: 'ping', id: 1 }
    rejectsSealed(
      { t: 'batch', messages: Array.from({ length: MAX_BATCH_MESSAGES + 1 }, () => ping) },
      'MalformedFrameError',
      'too many messages',
    )
    rejectsSealed(
      { t: 'batch', messages: [{ t: 'batch', messages: [ping] }] },
      'MalformedFrameError',
      'nested',
    )
    rejectsSealed(
      { t: 'batch', messages: [ping, { t: 'ping', id: -1 }] },
      'MalformedFrameError',
      'a bad id inside',
    )
  })
})

describe('malformed sealed messages', () => {
  it('refuses bytes that are not a CBOR map, and unknown types', () => {
    assert.throws(() => decodeSealedMessage(Uint8Array.of(0xff)), { name: 'MalformedFrameError' })
    assert.throws(() => decodeSealedMessage(cbor.encode([1])), { name: 'MalformedFrameError' })
    rejectsSealed({ id: 1 }, 'MalformedFrameError', 'no t')
    rejectsSealed({ t: 'hello', v: 1, ...exchange() }, 'UnknownFrameError', 'a link frame is not a message')
    rejectsSealed({ t: 'Ping', id: 1 }, 'UnknownFrameError', 'types are case-sensitive')
  })

  it('refuses bad ids', () => {
    for (const t of ['ping', 'pong']) {
      rejectsSealed({ t, id: -1 }, 'MalformedFrameError', 'negative id')
      rejectsSealed({ t, id: 0.5 }, 'MalformedFrameError', 'fractional id')
      rejectsSealed({ t, id: 2 ** 53 }, 'MalformedFrameError', 'id past 2^53')
      rejectsSealed({ t }, 'MalformedFrameError', 'no id')
      rejectsSealed({ t, id: 1, body: bytes(1) }, 'MalformedFrameError', 'extra field')
    }
    rejectsSealed({ t: 'res', id: '1', body: bytes(1) }, 'MalformedFrameError', 'id as text')
  })

  it('refuses protocol names outside 1-64 characters of [A-Za-z0-9._/-]', () => {
    for (const protocol of ['', 'p'.repeat(65), 'chat 1', 'chat:1', 'héllo', 'a\n', 7]) {
      rejectsSealed({ t: 'msg', protocol, body: bytes(1) }, 'MalformedFrameError', `protocol ${protocol}`)
      rejectsSealed(
        { t: 'req', id: 1, protocol, body: bytes(1) },
        'MalformedFrameError',
        `protocol ${protocol}`,
      )
    }
    rejectsSealed({ t: 'msg', body: bytes(1) }, 'MalformedFrameError', 'no protocol')
  })

  it('refuses bodies that are not bytes or over 1 MiB', () => {
    rejectsSealed({ t: 'msg', protocol: 'chat/1', body: 'text' }, 'MalformedFrameError', 'body as text')
    rejectsSealed({ t: 'msg', protocol: 'chat/1' }, 'MalformedFrameError', 'no body')
    rejectsSealed({ t: 'res', id: 1 }, 'MalformedFrameError', 'res without body')
    rejectsSealed(
      { t: 'msg', protocol: 'chat/1', body: bytes(MAX_BODY_BYTES + 1) },
      'OversizedFrameError',
      'body over the cap',
    )
    rejectsSealed(
      { t: 'res', id: 1, body: bytes(MAX_BODY_BYTES + 1) },
      'OversizedFrameError',
      'res over the cap',
    )
    assert.throws(() => decodeSealedMessage(new Uint8Array(MAX_LINK_FRAME_BYTES + 1)), {
      name: 'OversizedFrameError',
    })
  })

  it('refuses err with an unknown code or an unprintable or long message', () => {
    const err = { t: 'err', id: 1, code: 'Timeout', message: 'late' }
    rejectsSealed({ ...err, code: 'Oops' }, 'MalformedFrameError', 'unknown code')
    rejectsSealed({ ...err, code: 3 }, 'MalformedFrameError', 'code as a number')
    rejectsSealed({ ...err, message: 'x'.repeat(257) }, 'MalformedFrameError', 'long message')
    rejectsSealed({ ...err, message: 'red \u001b[31m' }, 'MalformedFrameError', 'escape sequence')
    rejectsSealed({ ...err, message: 'bell \u0007' }, 'MalformedFrameError', 'control character')
    rejectsSealed({ ...err, message: 1 }, 'MalformedFrameError', 'message as a number')
    rejectsSealed({ t: 'err', id: 1, code: 'Timeout' }, 'MalformedFrameError', 'no message')
  })

  it('refuses revoke with fields and re-key messages of the wrong sizes', () => {
    rejectsSealed({ t: 'revoke', reason: 'x' }, 'MalformedFrameError', 'revoke with a field')
    for (const t of ['rekey', 'rekeyAck']) {
      rejectsSealed({ t, ...exchange(), eph: bytes(33) }, 'MalformedFrameError', 'long eph')
      rejectsSealed({ t, ...exchange(), nonce: bytes(31) }, 'MalformedFrameError', 'short nonce')
      rejectsSealed({ t, ...exchange(), sig: bytes(32) }, 'MalformedFrameError', 'short sig')
      rejectsSealed({ t, ...exchange(), v: 1 }, 'MalformedFrameError', 'a version field')
    }
  })
})
