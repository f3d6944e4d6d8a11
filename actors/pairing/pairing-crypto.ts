// The pairing protocol's cryptography, I/O-free (ARCHITECTURE.md "Pairing protocol"): key derivation from the code's
// entropy, the transcript hash, the proofs each side sends and the short comparison string (device ids and fingerprints: store/device-id.ts).
// Everything here is a pure function of its arguments, so two sides can be paired in a test with no network.

import { timingSafeEqual } from 'node:crypto'
import { ed25519 } from '@noble/curves/ed25519.js'
import { hkdf } from '@noble/hashes/hkdf.js'
import { hmac } from '@noble/hashes/hmac.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { concatBytes, utf8ToBytes } from '@noble/hashes/utils.js'
import { cbor } from '../../transport/cbor.ts'

export const PAIRING_LABEL = 'sdnet/pair/v1'

export interface DeviceInfo {
  id: string
  name: string
  publicKey: Uint8Array
}

export interface PairingSecrets {
  /** Public lookup key the joiner sends in `request`; one-way, so it reveals nothing about the proof key. */
  rendezvous: Uint8Array
  /** Keys the MACs; never leaves the device. */
  proofKey: Uint8Array
}

export interface Transcript {
  rendezvous: Uint8Array
  /** Bytes of the Noise-authenticated peer ids (`peerId.toMultihash().bytes`). */
  initiatorPeerId: Uint8Array
  joinerPeerId: Uint8Array
  initiatorNonce: Uint8Array
  joinerNonce: Uint8Array
  initiator: DeviceInfo
  joiner: DeviceInfo
}

export interface Proof {
  sig: Uint8Array
  mac: Uint8Array
}

export type Role = 'joiner' | 'initiator'

const ENTROPY_LENGTH = 16
const KEY_LENGTH = 32
const LABEL = utf8ToBytes(PAIRING_LABEL)

/** Derives the rendezvous id and the proof key from the code's 128 bits of entropy. */
export function deriveSecrets(entropy: Uint8Array): PairingSecrets {
  if (entropy.length !== ENTROPY_LENGTH) {
    throw new RangeError(`pairing entropy must be ${ENTROPY_LENGTH} bytes, got ${entropy.length}`)
  }
  return {
    rendezvous: hkdf(sha256, entropy, LABEL, utf8ToBytes('rendezvous'), KEY_LENGTH),
    proofKey: hkdf(sha256, entropy, LABEL, utf8ToBytes('proof'), KEY_LENGTH),
  }
}

/**
 * SHA-256 over the CBOR array of everything both sides agreed on. Device infos are encoded as `[id, name, publicKey]`
 * arrays rather than maps, so no encoder's key order can ever change the hash.
 */
export function transcriptHash(t: Transcript): Uint8Array {
  const device = (d: DeviceInfo) => [d.id, d.name, d.publicKey]
  const encoded = cbor.encode([
    PAIRING_LABEL,
    t.rendezvous,
    t.initiatorPeerId,
    t.joinerPeerId,
    t.initiatorNonce,
    t.joinerNonce,
    device(t.initiator),
    device(t.joiner),
  ])
  return sha256(encoded)
}

/** The proof one role sends: an HMAC under the proof key (knows the code) and a signature (holds the device key). */
export function createProof(role: Role, proofKey: Uint8Array, th: Uint8Array, seed: Uint8Array): Proof {
  const message = proofMessage(role, th)
  return { mac: hmac(sha256, proofKey, message), sig: ed25519.sign(message, seed) }
}

/**
 * Checks the MAC first (in constant time: a bad MAC means a wrong code), then the signature under `publicKey`.
 * Malformed input is a failed check, never a throw.
 */
export function verifyProof(
  role: Role,
  proofKey: Uint8Array,
  th: Uint8Array,
  publicKey: Uint8Array,
  proof: Proof,
): 'ok' | 'bad-mac' | 'bad-signature' {
  const message = proofMessage(role, th)
  const expected = hmac(sha256, proofKey, message)
  if (!(proof.mac instanceof Uint8Array) || proof.mac.length !== expected.length) return 'bad-mac'
  if (!timingSafeEqual(proof.mac, expected)) return 'bad-mac'
  try {
    // zip215: false is strict RFC 8032 verification (rejects non-canonical encodings).
    return ed25519.verify(proof.sig, message, publicKey, { zip215: false }) ? 'ok' : 'bad-signature'
  } catch {
    return 'bad-signature'
  }
}

/**
 * The six digits both users may compare ("123 456"). A uint32 taken mod 10^6 is biased by at most 1 in 4295, which
 * does not matter for a string people eyeball.
 */
export function comparisonString(proofKey: Uint8Array, th: Uint8Array): string {
  const bytes = hkdf(sha256, proofKey, th, utf8ToBytes('sas'), 4)
  const value = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0) % 1_000_000
  const digits = value.toString().padStart(6, '0')
  return `${digits.slice(0, 3)} ${digits.slice(3)}`
}

function proofMessage(role: Role, th: Uint8Array): Uint8Array {
  return concatBytes(utf8ToBytes(`${PAIRING_LABEL} ${role}`), th)
}
