// The device's long-term identity: an Ed25519 key (also its libp2p peer key), a user-chosen name and the ids derived
// from the key, kept in `<dataDir>/identity.json` (mode 0600, directory 0700). With a password the 32-byte seed is
// sealed: scrypt derives a key, ChaCha20-Poly1305 encrypts the seed with the device id as associated data. Without
// one the seed is stored as base64 and the file mode is the only protection.

import { createCipheriv, createDecipheriv, randomBytes, scrypt, timingSafeEqual } from 'node:crypto'
import { mkdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { privateKeyFromRaw } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ed25519 } from '@noble/curves/ed25519.js'
import {
  CorruptIdentityError,
  IdentityExistsError,
  IdentityNotFoundError,
  InvalidDeviceNameError,
  PasswordRequiredError,
  WrongPasswordError,
} from '../errors.ts'
import { writeFileAtomic } from './atomic-file.ts'
import { deviceIdFromPublicKey, fingerprint } from './device-id.ts'

export interface Identity {
  deviceId: string
  name: string
  seed: Uint8Array
  publicKey: Uint8Array
  fingerprint: string
  createdAt: number
}

const FILE_NAME = 'identity.json'
const MAX_NAME_LENGTH = 64
// scrypt cost: 128 * N * r = 32 MiB and ~0.1 s per unlock. The parameters are recorded in the file, so they can be
// raised later without breaking old files; the limits stop a damaged file from asking for gigabytes or minutes.
const SCRYPT = { N: 2 ** 15, r: 8, p: 1 }
const SCRYPT_MAX_MEMORY = 256 * 1024 * 1024
const SCRYPT_MAX_P = 16
const CIPHER = 'chacha20-poly1305'

interface PlainSecret {
  format: 'plain'
  seed: string
}
interface SealedSecret {
  format: 'sealed'
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string }
  cipher: typeof CIPHER
  nonce: string
  ciphertext: string
  tag: string
}
interface IdentityFile {
  version: 1
  deviceId: string
  name: string
  publicKey: string
  createdAt: number
  secret: PlainSecret | SealedSecret
}

/**
 * Creates a new identity in `dataDir` (created with mode 0700 if missing). An empty password means none.
 * Throws `IdentityExistsError` rather than replace an existing key.
 *
 * @example const identity = await createIdentity(dataDir, { name: 'laptop', password })
 */
export async function createIdentity(
  dataDir: string,
  opts: { name: string; password?: string },
): Promise<Identity> {
  const name = checkName(opts.name)
  const path = join(dataDir, FILE_NAME)
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  if (await exists(path)) throw new IdentityExistsError(path)

  const seed = Uint8Array.from(randomBytes(32))
  const publicKey = ed25519.getPublicKey(seed)
  const deviceId = deviceIdFromPublicKey(publicKey)
  const file: IdentityFile = {
    version: 1,
    deviceId,
    name,
    publicKey: toBase64(publicKey),
    createdAt: Date.now(),
    secret: opts.password
      ? await seal(seed, opts.password, deviceId)
      : { format: 'plain', seed: toBase64(seed) },
  }
  await writeFileAtomic(path, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 })
  return { deviceId, name, seed, publicKey, fingerprint: fingerprint(publicKey), createdAt: file.createdAt }
}

/**
 * Loads the identity from `dataDir`. A sealed key needs `password` (`PasswordRequiredError` without one,
 * `WrongPasswordError` when it does not unlock); a plain key ignores it. A damaged file is reported as
 * `CorruptIdentityError` and left untouched.
 */
export async function loadIdentity(dataDir: string, opts: { password?: string } = {}): Promise<Identity> {
  const path = join(dataDir, FILE_NAME)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new IdentityNotFoundError(path)
    throw error
  }
  const file = parseIdentityFile(path, text)
  const publicKey = fromBase64(path, 'publicKey', file.publicKey, 32)
  if (deviceIdFromPublicKey(publicKey) !== file.deviceId) {
    throw new CorruptIdentityError(path, 'the device id does not match the public key')
  }

  let seed: Uint8Array
  if (file.secret.format === 'plain') {
    seed = fromBase64(path, 'secret.seed', file.secret.seed, 32)
  } else {
    if (!opts.password) throw new PasswordRequiredError(path)
    seed = await unseal(path, file.secret, opts.password, file.deviceId)
  }
  if (!equalBytes(ed25519.getPublicKey(seed), publicKey)) {
    throw new CorruptIdentityError(path, 'the private key does not match the public key')
  }
  return {
    deviceId: file.deviceId,
    name: file.name,
    seed,
    publicKey,
    fingerprint: fingerprint(publicKey),
    createdAt: file.createdAt,
  }
}

/** Loads the identity, or creates it on first run; `created` tells which happened. */
export async function loadOrCreateIdentity(
  dataDir: string,
  opts: { name: string; password?: string },
): Promise<{ identity: Identity; created: boolean }> {
  try {
    return { identity: await loadIdentity(dataDir, opts), created: false }
  } catch (error) {
    if (!(error instanceof IdentityNotFoundError)) throw error
  }
  try {
    return { identity: await createIdentity(dataDir, opts), created: true }
  } catch (error) {
    // Another process created it between our load and create: use theirs.
    if (error instanceof IdentityExistsError)
      return { identity: await loadIdentity(dataDir, opts), created: false }
    throw error
  }
}

/** The identity's key in the form libp2p takes (`createLibp2p({ privateKey })`), so the peer id is this key. */
export function toLibp2pPrivateKey(identity: Identity): PrivateKey {
  const raw = new Uint8Array(64)
  raw.set(identity.seed, 0)
  raw.set(identity.publicKey, 32)
  const key = privateKeyFromRaw(raw)
  // libp2p trusts the public half we hand it; a mismatch would give a peer id whose key cannot sign as this device.
  const peerKey = peerIdFromPrivateKey(key).publicKey?.raw
  if (
    !equalBytes(ed25519.getPublicKey(identity.seed), identity.publicKey) ||
    peerKey === undefined ||
    !equalBytes(peerKey, identity.publicKey)
  ) {
    throw new CorruptIdentityError(undefined, 'the private key does not match the public key')
  }
  return key
}

function checkName(name: string): string {
  const trimmed = name.trim()
  if (trimmed.length === 0 || [...trimmed].length > MAX_NAME_LENGTH)
    throw new InvalidDeviceNameError(MAX_NAME_LENGTH)
  return trimmed
}

async function seal(seed: Uint8Array, password: string, deviceId: string): Promise<SealedSecret> {
  const kdf = { name: 'scrypt' as const, ...SCRYPT, salt: toBase64(randomBytes(16)) }
  const key = await deriveKey(password, Buffer.from(kdf.salt, 'base64'), kdf)
  const nonce = randomBytes(12)
  const cipher = createCipheriv(CIPHER, key, nonce, { authTagLength: 16 })
  cipher.setAAD(Buffer.from(deviceId, 'utf8'), { plaintextLength: seed.length })
  const ciphertext = Buffer.concat([cipher.update(seed), cipher.final()])
  return {
    format: 'sealed',
    kdf,
    cipher: CIPHER,
    nonce: toBase64(nonce),
    ciphertext: toBase64(ciphertext),
    tag: toBase64(cipher.getAuthTag()),
  }
}

async function unseal(
  path: string,
  secret: SealedSecret,
  password: string,
  deviceId: string,
): Promise<Uint8Array> {
  const { N, r, p } = secret.kdf
  const valid =
    secret.kdf.name === 'scrypt' &&
    secret.cipher === CIPHER &&
    [N, r, p].every(Number.isSafeInteger) &&
    N >= 2 &&
    (N & (N - 1)) === 0 &&
    r >= 1 &&
    128 * N * r <= SCRYPT_MAX_MEMORY &&
    p >= 1 &&
    p <= SCRYPT_MAX_P
  if (!valid) throw new CorruptIdentityError(path, 'unsupported key protection parameters')
  const salt = fromBase64(path, 'secret.kdf.salt', secret.kdf.salt)
  const nonce = fromBase64(path, 'secret.nonce', secret.nonce, 12)
  const ciphertext = fromBase64(path, 'secret.ciphertext', secret.ciphertext, 32)
  const tag = fromBase64(path, 'secret.tag', secret.tag, 16)
  const key = await deriveKey(password, salt, { N, r, p })
  const decipher = createDecipheriv(CIPHER, key, nonce, { authTagLength: 16 })
  decipher.setAAD(Buffer.from(deviceId, 'utf8'), { plaintextLength: ciphertext.length })
  decipher.setAuthTag(tag)
  try {
    return Uint8Array.from(Buffer.concat([decipher.update(ciphertext), decipher.final()]))
  } catch {
    // The tag cannot tell a wrong password from a damaged ciphertext; the wrong password is by far the likelier.
    throw new WrongPasswordError(path)
  }
}

function deriveKey(
  password: string,
  salt: Uint8Array,
  params: { N: number; r: number; p: number },
): Promise<Buffer> {
  // Node refuses scrypt above `maxmem` (32 MiB by default, just below what N=2^15, r=8 needs); this is OpenSSL's
  // own estimate of what it allocates, plus headroom.
  const maxmem = 128 * params.r * (params.N + params.p + 2) + 1024 * 1024
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, 32, { ...params, maxmem }, (error, key) =>
      error ? reject(error) : resolve(key),
    )
  })
}

function parseIdentityFile(path: string, text: string): IdentityFile {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new CorruptIdentityError(path, 'not valid JSON', { cause: error })
  }
  const v = value as Partial<IdentityFile> | null
  if (typeof v !== 'object' || v === null) throw new CorruptIdentityError(path, 'not a JSON object')
  if (v.version !== 1) throw new CorruptIdentityError(path, `unknown version ${JSON.stringify(v.version)}`)
  const secret = (v.secret ?? {}) as Record<string, unknown>
  const kdf = (secret.kdf ?? {}) as Record<string, unknown>
  const plainOk = secret.format === 'plain' && typeof secret.seed === 'string'
  const sealedOk =
    secret.format === 'sealed' &&
    typeof kdf.salt === 'string' &&
    typeof secret.nonce === 'string' &&
    typeof secret.ciphertext === 'string' &&
    typeof secret.tag === 'string'
  if (
    typeof v.deviceId !== 'string' ||
    typeof v.name !== 'string' ||
    typeof v.publicKey !== 'string' ||
    typeof v.createdAt !== 'number' ||
    !(sealedOk || plainOk)
  ) {
    throw new CorruptIdentityError(path, 'fields are missing or of the wrong type')
  }
  return v as IdentityFile
}

function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}

function fromBase64(path: string, field: string, text: string, length?: number): Uint8Array {
  const bytes = Uint8Array.from(Buffer.from(text, 'base64'))
  // Buffer.from ignores stray characters; re-encoding catches them.
  if (toBase64(bytes) !== text || (length !== undefined && bytes.length !== length)) {
    const what = length === undefined ? 'valid base64' : `${length} bytes of base64`
    throw new CorruptIdentityError(path, `${field} is not ${what}`)
  }
  return bytes
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw error
  }
}
