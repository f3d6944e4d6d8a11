import assert from 'node:assert/strict'
import { createCipheriv, randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { ed25519 } from '@noble/curves/ed25519.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { concatBytes, utf8ToBytes } from '@noble/hashes/utils.js'
import {
  SealedChannel,
  type SealedFrame,
  SendCounterExhaustedError,
} from '../../actors/connections/sealed-channel.ts'
import {
  Handshake,
  type HandshakeIdentity,
  type HandshakePeer,
  type HelloMessage,
  MSG_LABEL,
  Rekey,
  type SessionKeys,
} from '../../actors/connections/session-crypto.ts'
import { cbor } from '../../transport/cbor.ts'

// The pinned hex below was computed once with an independent implementation: Node's crypto (X25519 and Ed25519 keys
// from PKCS#8 seeds, diffieHellman, sign, hkdfSync, createHash, chacha20-poly1305) and a hand-written RFC 8949 CBOR
// encoder, from the same seeds, peer ids and "random" bytes as below.
const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'))
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const seq = (n: number, start: number) => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff)
const flip = (b: Uint8Array, at = b.length - 1) => {
  const c = Uint8Array.from(b)
  c[at]! ^= 1
  return c
}

/** A random source that hands out exactly these chunks, in order. */
function scripted(...chunks: Uint8Array[]) {
  return (length: number) => {
    const chunk = chunks.shift()
    assert.ok(chunk !== undefined && chunk.length === length, `unexpected random(${length})`)
    return chunk
  }
}

// The opener device "O" and the acceptor device "A" (same seeds as pairing-crypto.test.ts).
const meO: HandshakeIdentity = { seed: seq(32, 0x40), peerIdBytes: seq(38, 0x10) }
const meA: HandshakeIdentity = { seed: seq(32, 0x80), peerIdBytes: seq(38, 0x20) }
const pubO = hex('2543b92ff1095511476adc8369db6ddc933665a11978dda1404ee1066ca9559d')
const pubA = hex('cd14b37f956e953194ff7fb73b3d81dcc561d61a7538094b7c3e1a643ee5f3aa')
const peerO: HandshakePeer = { peerIdBytes: meO.peerIdBytes, publicKey: pubO }
const peerA: HandshakePeer = { peerIdBytes: meA.peerIdBytes, publicKey: pubA }

const V = {
  helloEph: '07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c',
  welcomeEph: '5f09b7f97a40b50220697064b43b27411b07a4aa1fe05370b27519826983d30d',
  helloSig:
    'dfa051208f5382a9d7ba677ae4e866e35b88a7547eaeb568f3b7759916a0d553da23606ba507f15e4fd815c5e15a4ad58681a82f787ef88ae2dcef9d31bb9106',
  welcomeSig:
    '93561b9442a48baaf0b8be2f1c0ad42a91ef12aaac9a3ee237b0e6da323f02e3a776856eb5ac6fcd812de4a2ef9e2312005f2d15c324ddbe250b441add34a608',
  th1: '17fa5cc297f1d5ee9eac09e56e9ed9fbd9d81d1313c43e3e460b18f34a0045a9',
  o2a: '7f5c320c50a8d0372b850a28cf8503bf8ee85c9d50696b780dcc07f48b39fad1',
  a2o: '9ef631e9e0eb9c193e7335b87fa7373c52897da37fe269185320c4fb11874d3f',
  // Epoch 1, started by the acceptor device: it is the re-key's initiator, so its send key is the "opener->acceptor".
  rekeyEph: '0233f006ef4bed144ea0a5bb46c7067c7c2acec5f8cc811f3df59fdcd5ac7614',
  rekeyAckEph: '244fe3b963e899dd295baffce248d3530f3a9a7479ba063002680ebfe7adad49',
  rekeySig:
    'e66b807b7e9d503d4b30646e03a7105143bfb4e7372519025bd564754dfdda3d2a9a82792bd71f4bfcdae860d4ca57b5e9e1e7a0ac07ca8f22b7d93457c5da0a',
  rekeyAckSig:
    'ab7e4a2f0757941f8b1274993f461b7508beb4b65f8e84c2d65a04a95a9970beea5c4b0773f71f04741f27aa3e631e7b1304393e61345b811fe65da650ac8f0a',
  rekeyTh1: '0df78ab48cc238fe19a4389a2fd898014a684cf5154fb004c62a5aefd6bff497',
  rekeyI2r: 'd0cde48fb5715ddc8bfc74561331775c189b8f435ce720a676495d8bf1d6fb44',
  rekeyR2i: 'a738f3baae064b7a6134320aefad353e3d482781475888b2da56ad2f8f3a1da5',
  // "ping" sealed under o2a at epoch 0, with n = 0 and n = 2^53 - 1.
  frameN0: 'fdeed68a5d9a019cbbf4b6b9ffef09569bfb0eaf',
  frameMax: 'ee1aa2b1d32588c0ee2419b31010420a00738865',
}

/** The pinned handshake: both sides with scripted randomness, run to completion. */
function pinnedHandshake() {
  const opener = Handshake.open(meO, peerA, scripted(seq(32, 0x01), seq(32, 0xa0)))
  const acceptor = Handshake.accept(meA, peerO, scripted(seq(32, 0x31), seq(32, 0xc0)))
  const hello = opener.hello()
  assert.equal(acceptor.verifyHello(hello), true)
  const welcome = acceptor.welcome()
  assert.equal(opener.verifyWelcome(welcome), true)
  return { opener, acceptor, hello, welcome }
}

/** A handshake between O and A with real randomness. */
function handshake() {
  const opener = Handshake.open(meO, peerA)
  const acceptor = Handshake.accept(meA, peerO)
  const hello = opener.hello()
  assert.equal(acceptor.verifyHello(hello), true)
  const welcome = acceptor.welcome()
  assert.equal(opener.verifyWelcome(welcome), true)
  return { opener, acceptor, hello, welcome, o: opener.keys(), a: acceptor.keys() }
}

/** One re-key where `starter` sends `rekey`; returns both sides' new keys. */
function rekey(starter: 'O' | 'A', keysO: SessionKeys, keysA: SessionKeys) {
  const [meI, peerR, keysI, meR, peerI, keysR] =
    starter === 'O' ? [meO, peerA, keysO, meA, peerO, keysA] : [meA, peerO, keysA, meO, peerA, keysO]
  const initiator = Rekey.open(meI, peerR, keysI)
  const responder = Rekey.accept(meR, peerI, keysR)
  const msg = initiator.rekey()
  assert.equal(responder.verifyRekey(msg), true)
  const ack = responder.rekeyAck()
  assert.equal(initiator.verifyRekeyAck(ack), true)
  const [o, a] = starter === 'O' ? [initiator.keys(), responder.keys()] : [responder.keys(), initiator.keys()]
  return { o, a, msg, ack }
}

/** Compares large byte arrays without asking assert for a diff of a megabyte. */
function assertSameBytes(actual: Uint8Array | undefined, expected: Uint8Array) {
  assert.ok(actual !== undefined, 'expected bytes, got undefined')
  assert.equal(actual.length, expected.length)
  assert.ok(Buffer.from(actual.buffer, actual.byteOffset, actual.length).equals(expected), 'bytes differ')
}

function assertMirrored(o: SessionKeys, a: SessionKeys) {
  assert.deepEqual(o.send, a.receive)
  assert.deepEqual(o.receive, a.send)
  assert.notDeepEqual(o.send, o.receive)
  assert.equal(o.epoch, a.epoch)
  assert.deepEqual(o.transcript, a.transcript)
}

describe('session-crypto: fixed vectors', () => {
  it('derives the pinned hello, welcome, th1 and epoch-0 keys', () => {
    const { opener, acceptor, hello, welcome } = pinnedHandshake()
    assert.equal(toHex(hello.eph), V.helloEph)
    assert.deepEqual(hello.nonce, seq(32, 0xa0))
    assert.equal(toHex(hello.sig), V.helloSig)
    assert.equal(toHex(welcome.eph), V.welcomeEph)
    assert.deepEqual(welcome.nonce, seq(32, 0xc0))
    assert.equal(toHex(welcome.sig), V.welcomeSig)
    assert.equal(toHex(opener.transcript), V.th1)
    assert.equal(toHex(acceptor.transcript), V.th1)
    const o = opener.keys()
    assert.deepEqual(
      { send: toHex(o.send), receive: toHex(o.receive), epoch: o.epoch, transcript: toHex(o.transcript) },
      { send: V.o2a, receive: V.a2o, epoch: 0, transcript: V.th1 },
    )
    const a = acceptor.keys()
    assert.deepEqual(
      { send: toHex(a.send), receive: toHex(a.receive), epoch: a.epoch },
      {
        send: V.a2o,
        receive: V.o2a,
        epoch: 0,
      },
    )
  })

  it('derives the pinned epoch-1 re-key, chained on th1, when the acceptor starts it', () => {
    const { opener, acceptor } = pinnedHandshake()
    const starter = Rekey.open(meA, peerO, acceptor.keys(), scripted(seq(32, 0x51), seq(32, 0xe0)))
    const answerer = Rekey.accept(meO, peerA, opener.keys(), scripted(seq(32, 0x61), seq(32, 0x70)))
    assert.equal(starter.epoch, 1)
    const msg = starter.rekey()
    assert.equal(toHex(msg.eph), V.rekeyEph)
    assert.equal(toHex(msg.sig), V.rekeySig)
    assert.equal(answerer.verifyRekey(msg), true)
    const ack = answerer.rekeyAck()
    assert.equal(toHex(ack.eph), V.rekeyAckEph)
    assert.equal(toHex(ack.sig), V.rekeyAckSig)
    assert.equal(starter.verifyRekeyAck(ack), true)
    const a = starter.keys()
    const o = answerer.keys()
    assert.deepEqual(
      { send: toHex(a.send), receive: toHex(a.receive), epoch: a.epoch, transcript: toHex(a.transcript) },
      { send: V.rekeyI2r, receive: V.rekeyR2i, epoch: 1, transcript: V.rekeyTh1 },
    )
    assertMirrored(o, a)
  })

  it('seals the pinned frame and opens frames built with Node crypto up to n = 2^53 - 1', () => {
    const keys: SessionKeys = { send: hex(V.o2a), receive: hex(V.a2o), epoch: 0, transcript: hex(V.th1) }
    const frame = new SealedChannel(keys).seal(utf8ToBytes('ping'))
    assert.equal(frame.n, 0)
    assert.equal(toHex(frame.ct), V.frameN0)

    const receiver = () => new SealedChannel({ ...keys, send: hex(V.a2o), receive: hex(V.o2a) })
    assert.deepEqual(receiver().open({ n: 0, ct: hex(V.frameN0) }), utf8ToBytes('ping'))
    const max = Number.MAX_SAFE_INTEGER
    assert.deepEqual(receiver().open({ n: max, ct: hex(V.frameMax) }), utf8ToBytes('ping'))
    assert.deepEqual(receiver().open({ n: BigInt(max), ct: hex(V.frameMax) }), utf8ToBytes('ping'))
  })
})

describe('session-crypto: handshake', () => {
  it('gives opener and acceptor mirrored keys, fresh for every attempt', () => {
    const first = handshake()
    assertMirrored(first.o, first.a)
    assert.equal(first.o.epoch, 0)
    assert.deepEqual(first.o.transcript, first.opener.transcript)
    const second = handshake()
    assertMirrored(second.o, second.a)
    assert.notDeepEqual(second.o.send, first.o.send)
    assert.notDeepEqual(second.o.transcript, first.o.transcript)
  })

  it('refuses a hello or welcome signed by a key other than the stored one', () => {
    const impostor: HandshakeIdentity = { seed: seq(32, 0xf0), peerIdBytes: meO.peerIdBytes }
    const acceptor = Handshake.accept(meA, peerO)
    assert.equal(acceptor.verifyHello(Handshake.open(impostor, peerA).hello()), false)

    // Anyone can check a hello, but only the holder of A's stored key can answer it with a welcome O accepts.
    const opener = Handshake.open(meO, peerA)
    const impostorAcceptor = Handshake.accept({ seed: seq(32, 0xf0), peerIdBytes: meA.peerIdBytes }, peerO)
    assert.equal(impostorAcceptor.verifyHello(opener.hello()), true)
    assert.equal(opener.verifyWelcome(impostorAcceptor.welcome()), false)
    const honest = Handshake.accept(meA, peerO)
    assert.equal(honest.verifyHello(opener.hello()), true)
    assert.equal(opener.verifyWelcome(honest.welcome()), true)
  })

  it('refuses a welcome replayed from another handshake', () => {
    const earlier = handshake()
    const opener = Handshake.open(meO, peerA)
    assert.equal(opener.verifyWelcome(earlier.welcome), false)
    // And the same acceptor answer does not carry over even when only the opener's nonce differs.
    const fixedEph = seq(32, 0x01)
    const o1 = Handshake.open(meO, peerA, scripted(fixedEph, seq(32, 0xa0)))
    const o2 = Handshake.open(meO, peerA, scripted(fixedEph, seq(32, 0xa1)))
    const acceptor = Handshake.accept(meA, peerO)
    assert.equal(acceptor.verifyHello(o1.hello()), true)
    assert.equal(o2.verifyWelcome(acceptor.welcome()), false)
    assert.equal(o1.verifyWelcome(acceptor.welcome()), true)
  })

  it('refuses a hello or welcome with any field changed', () => {
    const opener = Handshake.open(meO, peerA)
    const hello = opener.hello()
    const tamperedHellos: Record<string, HelloMessage> = {
      eph: { ...hello, eph: flip(hello.eph, 0) },
      nonce: { ...hello, nonce: flip(hello.nonce) },
      'sig (R)': { ...hello, sig: flip(hello.sig, 0) },
      'sig (S)': { ...hello, sig: flip(hello.sig, 40) },
      'swapped eph and nonce': { ...hello, eph: hello.nonce, nonce: hello.eph },
    }
    for (const [field, msg] of Object.entries(tamperedHellos)) {
      assert.equal(Handshake.accept(meA, peerO).verifyHello(msg), false, `hello ${field}`)
    }
    // A hello made for another acceptor, or checked as coming from another opener peer id.
    assert.equal(Handshake.accept(meA, peerO).verifyHello(Handshake.open(meO, peerO).hello()), false)
    const otherId = { ...peerO, peerIdBytes: flip(peerO.peerIdBytes) }
    assert.equal(Handshake.accept(meA, otherId).verifyHello(hello), false)

    const acceptor = Handshake.accept(meA, peerO)
    assert.equal(acceptor.verifyHello(hello), true)
    const welcome = acceptor.welcome()
    const tamperedWelcomes: Record<string, HelloMessage> = {
      eph: { ...welcome, eph: flip(welcome.eph, 0) },
      nonce: { ...welcome, nonce: flip(welcome.nonce) },
      sig: { ...welcome, sig: flip(welcome.sig, 0) },
      'the hello reflected back': hello,
    }
    for (const [field, msg] of Object.entries(tamperedWelcomes)) {
      assert.equal(opener.verifyWelcome(msg), false, `welcome ${field}`)
    }
    assert.equal(opener.verifyWelcome(welcome), true)
  })

  it('treats malformed or hostile input as a failed check, never as an exception', () => {
    const hello = Handshake.open(meO, peerA).hello()
    const garbage: unknown[] = [
      undefined,
      null,
      'hello',
      42,
      {},
      { ...hello, eph: hello.eph.subarray(0, 31) },
      { ...hello, eph: concatBytes(hello.eph, new Uint8Array(1)) },
      { ...hello, nonce: hello.nonce.subarray(0, 16) },
      { ...hello, sig: hello.sig.subarray(0, 63) },
      { ...hello, sig: new Uint8Array(0) },
      { ...hello, eph: Array.from(hello.eph) },
      { ...hello, sig: 'x'.repeat(64) },
      { ...hello, sig: new Uint8Array(64).fill(0xff) },
    ]
    for (const msg of garbage) {
      assert.equal(Handshake.accept(meA, peerO).verifyHello(msg as HelloMessage), false)
      assert.equal(Handshake.open(meO, peerA).verifyWelcome(msg as HelloMessage), false)
    }
    // A stored public key that is not a valid point fails the check too.
    const brokenKey = { ...peerO, publicKey: new Uint8Array(32).fill(0xff) }
    assert.equal(Handshake.accept(meA, brokenKey).verifyHello(hello), false)
  })

  it('refuses a correctly signed hello whose ephemeral key is a low-order point', () => {
    // Only the paired device could sign this, but it would make an all-zero shared secret: refuse, do not throw.
    const eph = new Uint8Array(32)
    const nonce = seq(32, 0xa0)
    const th0 = sha256(cbor.encode([MSG_LABEL, meO.peerIdBytes, meA.peerIdBytes, eph, nonce]))
    const sig = ed25519.sign(concatBytes(utf8ToBytes(`${MSG_LABEL} hello`), th0), meO.seed)
    const genuine = Handshake.open(meO, peerA, scripted(seq(32, 0x01), nonce)).hello()
    const genuineTh0 = sha256(cbor.encode([MSG_LABEL, meO.peerIdBytes, meA.peerIdBytes, genuine.eph, nonce]))
    // The hand-made signature follows the same recipe as a genuine hello, so only the point is wrong.
    assert.deepEqual(
      genuine.sig,
      ed25519.sign(concatBytes(utf8ToBytes(`${MSG_LABEL} hello`), genuineTh0), meO.seed),
    )
    assert.equal(Handshake.accept(meA, peerO).verifyHello({ eph, nonce, sig }), false)
  })

  it('accepts the peer message only once and throws on steps taken out of turn', () => {
    const { opener, acceptor, hello, welcome } = handshake()
    assert.equal(acceptor.verifyHello(hello), false)
    assert.equal(opener.verifyWelcome(welcome), false)

    const fresh = Handshake.accept(meA, peerO)
    assert.throws(() => fresh.welcome(), /needs a verified hello/)
    assert.throws(() => fresh.keys(), /verified first/)
    assert.throws(() => fresh.transcript, /once the peer's hello has verified/)
    assert.throws(() => fresh.hello(), /belongs to the side that sends hello/)
    assert.throws(() => Handshake.open(meO, peerA).verifyHello(hello), /belongs to the other side/)
    assert.throws(() => Handshake.open(meO, peerA, () => new Uint8Array(31)), RangeError)
  })
})

describe('session-crypto: sealed channel', () => {
  function channels() {
    const { o, a } = handshake()
    return { o: new SealedChannel(o), a: new SealedChannel(a), keys: { o, a } }
  }
  const text = (s: string) => utf8ToBytes(s)

  it('round-trips frames in both directions with counters from 0', () => {
    const { o, a } = channels()
    for (let i = 0; i < 3; i++) {
      const frame = o.seal(text(`o${i}`))
      assert.equal(frame.n, i)
      assert.equal(frame.ct.length, 2 + 16)
      assert.deepEqual(a.open(frame), text(`o${i}`))
    }
    const back = a.seal(text('a0'))
    assert.equal(back.n, 0)
    assert.deepEqual(o.open(back), text('a0'))
    // A frame sealed in one direction does not open as the other (distinct keys), nor does an empty, untagged body.
    assert.equal(o.open({ ...o.seal(text('mine')), n: 1 }), undefined)
    assert.equal(o.open({ n: 2, ct: new Uint8Array(16) }), undefined)
    assert.deepEqual(o.stats, { sent: 4, received: 1, rejectedReplay: 0, rejectedTamper: 2 })
    assert.deepEqual(a.stats, { sent: 1, received: 3, rejectedReplay: 0, rejectedTamper: 0 })
  })

  it('seals a plaintext in parts to the same frame as joined, without joining it', () => {
    const { keys } = channels()
    const parts = [text('head'), new Uint8Array(0), new Uint8Array(randomBytes(70_000)), text('tail')]
    const joined = concatBytes(...parts)
    const whole = new SealedChannel(keys.o).seal(joined)
    const split = new SealedChannel(keys.o).sealParts(parts)
    assert.equal(split.n, whole.n)
    assert.equal(split.ct.length, 4) // the empty part adds nothing; the tag comes last
    assert.deepEqual(concatBytes(...split.ct), whole.ct)
    assert.deepEqual(new SealedChannel(keys.a).open({ n: split.n, ct: concatBytes(...split.ct) }), joined)
  })

  it('rejects and counts a replayed frame, then opens the next one', () => {
    const { o, a } = channels()
    const first = o.seal(text('once'))
    assert.deepEqual(a.open(first), text('once'))
    assert.equal(a.open(first), undefined)
    assert.equal(a.open({ n: BigInt(first.n), ct: first.ct }), undefined)
    assert.equal(a.stats.rejectedReplay, 2)
    assert.deepEqual(a.open(o.seal(text('next'))), text('next'))
    assert.deepEqual(a.stats, { sent: 0, received: 2, rejectedReplay: 2, rejectedTamper: 0 })
  })

  it('rejects a reordered frame and accepts gaps forward', () => {
    const { o, a } = channels()
    const [f0, f1, f2, f3] = [o.seal(text('0')), o.seal(text('1')), o.seal(text('2')), o.seal(text('3'))]
    assert.deepEqual(a.open(f0), text('0'))
    assert.deepEqual(a.open(f2), text('2'))
    assert.equal(a.open(f1), undefined)
    assert.deepEqual(a.open(f3), text('3'))
    assert.deepEqual(a.stats, { sent: 0, received: 3, rejectedReplay: 1, rejectedTamper: 0 })
  })

  it('rejects a tampered ciphertext, tag or n without advancing, and still opens the genuine frame', () => {
    const { o, a } = channels()
    assert.deepEqual(a.open(o.seal(text('warm-up'))), text('warm-up'))
    const frame = o.seal(text('genuine body'))
    const tampered: SealedFrame[] = [
      { n: frame.n, ct: flip(frame.ct, 0) },
      { n: frame.n, ct: flip(frame.ct) },
      { n: frame.n + 1, ct: frame.ct },
      { n: frame.n + 1000, ct: frame.ct },
      { n: frame.n, ct: frame.ct.subarray(0, frame.ct.length - 1) },
      { n: frame.n, ct: concatBytes(frame.ct, new Uint8Array(1)) },
    ]
    for (const t of tampered) assert.equal(a.open(t), undefined)
    assert.deepEqual(a.stats, { sent: 0, received: 1, rejectedReplay: 0, rejectedTamper: tampered.length })
    // The tampered n + 1000 did not move the window, so the genuine frame (n = 1) still opens.
    assert.deepEqual(a.open(frame), text('genuine body'))
    assert.deepEqual(a.open(o.seal(text('after'))), text('after'))
  })

  it('treats malformed frames as rejected, never as exceptions', () => {
    const { o, a } = channels()
    const frame = o.seal(text('x'))
    const garbage: unknown[] = [
      undefined,
      null,
      'frame',
      { ct: frame.ct },
      { n: -1, ct: frame.ct },
      { n: 0.5, ct: frame.ct },
      { n: Number.NaN, ct: frame.ct },
      { n: Number.POSITIVE_INFINITY, ct: frame.ct },
      { n: 2 ** 53, ct: frame.ct },
      { n: 2n ** 53n, ct: frame.ct },
      { n: -1n, ct: frame.ct },
      { n: '0', ct: frame.ct },
      { n: 0, ct: Array.from(frame.ct) },
      { n: 0, ct: new Uint8Array(15) },
      { n: 0 },
    ]
    for (const g of garbage) assert.equal(a.open(g as SealedFrame), undefined)
    assert.equal(a.stats.rejectedTamper, garbage.length)
    assert.deepEqual(a.open(frame), text('x'))
  })

  it('binds the epoch: the same keys under another epoch do not open a frame', () => {
    const { o, keys } = channels()
    const frame = o.seal(text('epoch 0'))
    assert.equal(new SealedChannel({ ...keys.a, epoch: 1 }).open(frame), undefined)
    assert.deepEqual(new SealedChannel(keys.a).open(frame), text('epoch 0'))
  })

  it('re-keys to new keys; after install the old epoch is refused and counters restart', () => {
    const { o, a, keys } = channels()
    for (let i = 0; i < 3; i++) assert.deepEqual(a.open(o.seal(text(`old ${i}`))), text(`old ${i}`))
    const oldFrame = o.seal(text('late old-epoch frame'))

    const r1 = rekey('O', keys.o, keys.a)
    assertMirrored(r1.o, r1.a)
    assert.equal(r1.o.epoch, 1)
    for (const k of [r1.o.send, r1.o.receive]) {
      assert.notDeepEqual(k, keys.o.send)
      assert.notDeepEqual(k, keys.o.receive)
    }
    assert.notDeepEqual(r1.o.transcript, keys.o.transcript)
    assert.deepEqual(a.stats, { sent: 0, received: 3, rejectedReplay: 0, rejectedTamper: 0 })
    o.install(r1.o)
    a.install(r1.a)
    assert.equal(o.epoch, 1)
    assert.deepEqual(a.stats, { sent: 0, received: 0, rejectedReplay: 0, rejectedTamper: 0 })

    assert.equal(a.open(oldFrame), undefined)
    const fresh = o.seal(text('epoch 1'))
    assert.equal(fresh.n, 0)
    assert.deepEqual(a.open(fresh), text('epoch 1'))
    assert.deepEqual(a.stats, { sent: 0, received: 1, rejectedReplay: 0, rejectedTamper: 1 })
    const back = a.seal(text('back'))
    assert.equal(back.n, 0)
    assert.deepEqual(o.open(back), text('back'))

    // The next re-key chains on epoch 1; a re-key message from epoch 1 cannot be replayed into it.
    const r2 = rekey('A', r1.o, r1.a)
    assertMirrored(r2.o, r2.a)
    assert.equal(r2.a.epoch, 2)
    assert.equal(Rekey.accept(meO, peerA, r1.o).verifyRekey(r1.msg), false) // reflected back to its sender
    assert.equal(Rekey.accept(meA, peerO, keys.a).verifyRekey(r1.msg), true) // its genuine context (epoch 0 -> 1)
    assert.equal(Rekey.accept(meA, peerO, r1.a).verifyRekey(r1.msg), false) // replayed into the 1 -> 2 re-key
    assert.equal(Rekey.open(meO, peerA, r1.o).verifyRekeyAck(r1.ack), false) // the ack of another re-key
    // A hello is not a rekey, even within the same link.
    const hello = Handshake.open(meO, peerA).hello()
    assert.equal(Rekey.accept(meA, peerO, keys.a).verifyRekey(hello), false)
    o.install(r2.o)
    a.install(r2.a)
    assert.deepEqual(a.open(o.seal(text('epoch 2'))), text('epoch 2'))
    assert.deepEqual(o.stats, { sent: 1, received: 0, rejectedReplay: 0, rejectedTamper: 0 })
    assert.deepEqual(a.stats, { sent: 0, received: 1, rejectedReplay: 0, rejectedTamper: 0 })
  })

  it('refuses to seal past its counter limit with a named error, until a new epoch', () => {
    const { keys } = channels()
    const o = new SealedChannel(keys.o, { maxSendCounter: 2 })
    const a = new SealedChannel(keys.a)
    for (let i = 0; i <= 2; i++) assert.deepEqual(a.open(o.seal(text(`${i}`))), text(`${i}`))
    assert.throws(() => o.seal(text('one too many')), SendCounterExhaustedError)
    assert.throws(() => o.seal(text('still')), { name: 'SendCounterExhaustedError' })
    assert.equal(o.stats.sent, 3)
    const next = rekey('O', keys.o, keys.a)
    o.install(next.o)
    a.install(next.a)
    assert.deepEqual(a.open(o.seal(text('fresh'))), text('fresh'))
    assert.equal(o.stats.sent, 1)
  })

  it('keeps its own copy of the keys', () => {
    const { keys } = channels()
    const send = Uint8Array.from(keys.o.send)
    const o = new SealedChannel({ ...keys.o, send })
    send.fill(0)
    assert.deepEqual(new SealedChannel(keys.a).open(o.seal(text('copied'))), text('copied'))
    assert.throws(() => new SealedChannel({ ...keys.o, send: send.subarray(0, 31) }), RangeError)
    assert.throws(() => new SealedChannel({ ...keys.o, epoch: -1 }), RangeError)
  })

  it('round-trips a 64 KiB and a 1 MiB body, and matches Node crypto on the wire format', () => {
    const { o, a, keys } = channels()
    for (const size of [64 * 1024, 1024 * 1024]) {
      const body = Uint8Array.from({ length: size }, (_, i) => (i * 31 + 7) & 0xff)
      const frame = o.seal(body)
      assert.equal(frame.ct.length, size + 16)
      assertSameBytes(a.open(frame), body)
    }
    // The same body sealed by hand: nonce 4 zero bytes || uint64be(n), AAD label || uint32be(epoch), tag appended.
    const body = seq(64 * 1024, 0)
    const frame = o.seal(body)
    const nonce = Buffer.alloc(12)
    nonce.writeBigUInt64BE(BigInt(frame.n), 4)
    const aad = Buffer.concat([Buffer.from(MSG_LABEL), Buffer.from([0, 0, 0, keys.o.epoch])])
    const cipher = createCipheriv('chacha20-poly1305', keys.o.send, nonce, { authTagLength: 16 })
    cipher.setAAD(aad, { plaintextLength: body.length })
    assertSameBytes(frame.ct, Buffer.concat([cipher.update(body), cipher.final(), cipher.getAuthTag()]))
    assertSameBytes(a.open(frame), body)
  })

  it('throughput sanity (printed, not asserted on time)', (t) => {
    const { o, a } = channels()
    const body = seq(64 * 1024, 3)
    const frames = 256
    const start = process.hrtime.bigint()
    let opened = 0
    for (let i = 0; i < frames; i++) opened += a.open(o.seal(body))?.length ?? 0
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    assert.equal(opened, frames * body.length)
    t.diagnostic(`seal+open ${((frames * body.length) / 2 ** 20 / seconds).toFixed(0)} MiB/s (64 KiB frames)`)
  })
})
