import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  comparisonString,
  createProof,
  type DeviceInfo,
  deriveSecrets,
  type Proof,
  type Transcript,
  transcriptHash,
  verifyProof,
} from '../../actors/pairing/pairing-crypto.ts'
import { deviceIdFromPublicKey, fingerprint } from '../../actors/store/device-id.ts'

// The pinned hex below was computed once with an independent implementation: Node's crypto.hkdfSync / createHmac /
// createHash / sign (Ed25519 from a PKCS#8 seed) and a hand-written RFC 8949 CBOR encoder.
const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'))
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const seq = (n: number, start: number) => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff)

const entropy = seq(16, 0)
const seedI = seq(32, 0x40)
const seedJ = seq(32, 0x80)
const pubI = hex('2543b92ff1095511476adc8369db6ddc933665a11978dda1404ee1066ca9559d')
const pubJ = hex('cd14b37f956e953194ff7fb73b3d81dcc561d61a7538094b7c3e1a643ee5f3aa')
const idI = 'c1ca8cb1a3ef58705f3b9caa45ed87be'
const idJ = '1dfc0ad6e6c33bc28601b366aa8f6365'

function transcript(names: [string, string] = ['laptop', 'phone']): Transcript {
  const { rendezvous } = deriveSecrets(entropy)
  return {
    rendezvous,
    initiatorPeerId: seq(38, 0x10),
    joinerPeerId: seq(38, 0x20),
    initiatorNonce: seq(32, 0xa0),
    joinerNonce: seq(32, 0xc0),
    initiator: { id: idI, name: names[0], publicKey: pubI },
    joiner: { id: idJ, name: names[1], publicKey: pubJ },
  }
}

describe('pairing-crypto: fixed vectors', () => {
  it('derives the rendezvous id and proof key with HKDF-SHA256', () => {
    const { rendezvous, proofKey } = deriveSecrets(entropy)
    assert.equal(toHex(rendezvous), 'a3201e5cb7451e68f19c72bc1d03fe2b5a10de7a0b3e6c50667ea59bf3426c37')
    assert.equal(toHex(proofKey), '9c305ba873081526517519773c919446a588bdffbf3e8a78a0725736bb0f9596')
  })

  it('rejects entropy that is not 16 bytes', () => {
    assert.throws(() => deriveSecrets(seq(15, 0)), RangeError)
    assert.throws(() => deriveSecrets(seq(32, 0)), RangeError)
  })

  it('hashes the transcript as canonical CBOR', () => {
    assert.equal(
      toHex(transcriptHash(transcript())),
      '119cc2c28678e77f10509cd93e4cbb69b401ad887a3d198718a56834f29a3545',
    )
    // Multi-byte UTF-8 and names longer than 23 / 255 bytes exercise the 1- and 2-byte length headers.
    assert.equal(
      toHex(transcriptHash(transcript(['Zoë’s living-room media computer', 'x'.repeat(300)]))),
      '5e1ea21f30921e501eb848804a04cf4c7c9e6785328dec984b301af0c01eb201',
    )
  })

  it('does not depend on the key order of the device objects or on Buffer vs Uint8Array', () => {
    const t = transcript()
    const reordered: DeviceInfo = { publicKey: Buffer.from(pubJ), name: 'phone', id: idJ }
    assert.deepEqual(transcriptHash({ ...t, joiner: reordered }), transcriptHash(t))
  })

  it('computes the joiner and initiator proofs', () => {
    const { proofKey } = deriveSecrets(entropy)
    const th = transcriptHash(transcript())
    const joiner = createProof('joiner', proofKey, th, seedJ)
    assert.equal(toHex(joiner.mac), '022607eb63347dbf98a1ffabd757afa3a5521046ec72e885049ffb20b15895fb')
    assert.equal(
      toHex(joiner.sig),
      'd58a125ad1ca1ac2c5b78584f2582902004d74d5093e52b6a593d19f8a544d61994c14d2f3812ac241fdc69bf928c50248c52d8bc88b9354204ce77c32555007',
    )
    const initiator = createProof('initiator', proofKey, th, seedI)
    assert.equal(toHex(initiator.mac), 'b80562b1d24106ca6841e5ef5491c0db5bfef1c14e470dd09c8dc27347151e1f')
    assert.equal(
      toHex(initiator.sig),
      '6fc2c435bbd1efe6e38f523de0573c379fb89c97ac9ee9f66beda7b034ef2b1e4065376786d26dc50418f712e51e19ad48661ebb85348ff4a3f0f6b304ee6808',
    )
  })

  it('computes the comparison string, keeping leading zeros', () => {
    const { proofKey } = deriveSecrets(entropy)
    assert.equal(comparisonString(proofKey, transcriptHash(transcript())), '052 251')
  })

  it('computes fingerprints and device ids', () => {
    assert.equal(fingerprint(pubI), '0339-6219-237F-75A6')
    assert.equal(fingerprint(pubJ), '519C-AE93-E93A-D011')
    assert.equal(deviceIdFromPublicKey(pubI), idI)
    assert.equal(deviceIdFromPublicKey(pubJ), idJ)
  })
})

describe('pairing-crypto: proofs', () => {
  const { proofKey } = deriveSecrets(entropy)
  const t = transcript()
  const th = transcriptHash(t)
  const joinerProof = createProof('joiner', proofKey, th, seedJ)

  it('a proof verifies for its role, key and transcript', () => {
    assert.equal(verifyProof('joiner', proofKey, th, pubJ, joinerProof), 'ok')
    assert.equal(
      verifyProof('initiator', proofKey, th, pubI, createProof('initiator', proofKey, th, seedI)),
      'ok',
    )
  })

  const flip = (b: Uint8Array) => {
    const c = Uint8Array.from(b)
    c[c.length - 1]! ^= 1
    return c
  }
  const tampered: Record<string, Transcript> = {
    rendezvous: { ...t, rendezvous: flip(t.rendezvous) },
    initiatorPeerId: { ...t, initiatorPeerId: flip(t.initiatorPeerId) },
    joinerPeerId: { ...t, joinerPeerId: flip(t.joinerPeerId) },
    initiatorNonce: { ...t, initiatorNonce: flip(t.initiatorNonce) },
    joinerNonce: { ...t, joinerNonce: flip(t.joinerNonce) },
    'initiator.id': { ...t, initiator: { ...t.initiator, id: idJ } },
    'initiator.name': { ...t, initiator: { ...t.initiator, name: 'laptoq' } },
    'initiator.publicKey': { ...t, initiator: { ...t.initiator, publicKey: flip(pubI) } },
    'joiner.id': { ...t, joiner: { ...t.joiner, id: idI } },
    'joiner.name': { ...t, joiner: { ...t.joiner, name: 'phone ' } },
    'joiner.publicKey': { ...t, joiner: { ...t.joiner, publicKey: flip(pubJ) } },
    'swapped peer ids': { ...t, initiatorPeerId: t.joinerPeerId, joinerPeerId: t.initiatorPeerId },
  }
  for (const [field, other] of Object.entries(tampered)) {
    it(`binds ${field}: both the MAC and the signature fail on a changed transcript`, () => {
      const otherTh = transcriptHash(other)
      assert.notDeepEqual(otherTh, th)
      assert.equal(verifyProof('joiner', proofKey, otherTh, pubJ, joinerProof), 'bad-mac')
      // With the MAC recomputed for the changed transcript, the old signature alone must still fail.
      const macOnly: Proof = {
        mac: createProof('joiner', proofKey, otherTh, seedJ).mac,
        sig: joinerProof.sig,
      }
      assert.equal(verifyProof('joiner', proofKey, otherTh, pubJ, macOnly), 'bad-signature')
    })
  }

  it('rejects a proof made with a different proof key (wrong code)', () => {
    const wrongKey = deriveSecrets(seq(16, 1)).proofKey
    assert.equal(verifyProof('joiner', wrongKey, th, pubJ, joinerProof), 'bad-mac')
    assert.equal(
      verifyProof('joiner', proofKey, th, pubJ, createProof('joiner', wrongKey, th, seedJ)),
      'bad-mac',
    )
  })

  it('rejects a joiner proof checked as an initiator proof (role reflection)', () => {
    assert.equal(verifyProof('initiator', proofKey, th, pubJ, joinerProof), 'bad-mac')
    const reflected: Proof = { mac: createProof('initiator', proofKey, th, seedJ).mac, sig: joinerProof.sig }
    assert.equal(verifyProof('initiator', proofKey, th, pubJ, reflected), 'bad-signature')
  })

  it('rejects a proof checked against another public key', () => {
    assert.equal(verifyProof('joiner', proofKey, th, pubI, joinerProof), 'bad-signature')
  })

  it('treats malformed proofs and keys as failed checks, never as exceptions', () => {
    const cases: Array<[Uint8Array, Proof, string]> = [
      [pubJ, { ...joinerProof, mac: joinerProof.mac.subarray(0, 31) }, 'bad-mac'],
      [pubJ, { ...joinerProof, mac: new Uint8Array(0) }, 'bad-mac'],
      [pubJ, { ...joinerProof, sig: joinerProof.sig.subarray(0, 63) }, 'bad-signature'],
      [pubJ, { ...joinerProof, sig: new Uint8Array(65) }, 'bad-signature'],
      [pubJ.subarray(0, 31), joinerProof, 'bad-signature'],
      [new Uint8Array(32).fill(0xff), joinerProof, 'bad-signature'],
      [pubJ, { mac: joinerProof.mac, sig: undefined as unknown as Uint8Array }, 'bad-signature'],
      [pubJ, { mac: 'x' as unknown as Uint8Array, sig: joinerProof.sig }, 'bad-mac'],
    ]
    for (const [key, proof, expected] of cases) {
      assert.equal(verifyProof('joiner', proofKey, th, key, proof), expected)
    }
  })

  it('gives both sides the same comparison string, and a different one for a different transcript', () => {
    const initiatorSide = comparisonString(deriveSecrets(entropy).proofKey, transcriptHash(transcript()))
    const joinerSide = comparisonString(proofKey, th)
    assert.equal(initiatorSide, joinerSide)
    assert.match(joinerSide, /^\d{3} \d{3}$/)
    const relayed = transcriptHash({ ...t, joinerPeerId: flip(t.joinerPeerId) })
    assert.notEqual(comparisonString(proofKey, relayed), joinerSide)
    assert.notEqual(comparisonString(deriveSecrets(seq(16, 1)).proofKey, th), joinerSide)
  })
})
