// How a device is named from its key (ARCHITECTURE.md "Pairing protocol"): the stable device id and the short
// fingerprint people compare. Pure functions of the public key, shared by the identity, the trust store and pairing.
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, concatBytes, utf8ToBytes } from '@noble/hashes/utils.js'

/** A short, human-comparable form of a device key: "3F2A-91BC-04DE-77A1" (first 8 bytes of its SHA-256). */
export function fingerprint(publicKey: Uint8Array): string {
  const hex = bytesToHex(sha256(publicKey).subarray(0, 8)).toUpperCase()
  return hex.match(/.{4}/g)!.join('-')
}

/** A device's stable id: 32 lowercase hex chars of SHA-256("sdnet/device-id" || publicKey). */
export function deviceIdFromPublicKey(publicKey: Uint8Array): string {
  return bytesToHex(sha256(concatBytes(utf8ToBytes('sdnet/device-id'), publicKey)).subarray(0, 16))
}
