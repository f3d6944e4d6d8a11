import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ed25519 } from '@noble/curves/ed25519.js'
import {
  CorruptIdentityError,
  IdentityExistsError,
  IdentityNotFoundError,
  InvalidDeviceNameError,
  PasswordRequiredError,
  WrongPasswordError,
} from '../../actors/errors.ts'
import { deviceIdFromPublicKey, fingerprint } from '../../actors/store/device-id.ts'
import {
  createIdentity,
  type Identity,
  loadIdentity,
  loadOrCreateIdentity,
  toLibp2pPrivateKey,
} from '../../actors/store/identity.ts'

const PASSWORD = 'correct horse battery staple'
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64')

describe('identity', () => {
  let root: string
  let n = 0
  const freshDir = () => join(root, `device-${++n}`, 'data')
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sdnet-identity-'))
  })
  after(() => rm(root, { recursive: true, force: true }))

  function assertConsistent(identity: Identity) {
    assert.equal(identity.seed.length, 32)
    assert.deepEqual(ed25519.getPublicKey(identity.seed), identity.publicKey)
    assert.equal(identity.deviceId, deviceIdFromPublicKey(identity.publicKey))
    assert.equal(identity.fingerprint, fingerprint(identity.publicKey))
  }

  it('creates an identity without a password (file 0600, directory 0700) and loads it back', async () => {
    const dir = freshDir()
    const created = await createIdentity(dir, { name: '  laptop ' })
    assertConsistent(created)
    assert.equal(created.name, 'laptop')
    assert.equal((await stat(dir)).mode & 0o777, 0o700)
    assert.equal((await stat(join(dir, '..'))).mode & 0o777, 0o700)
    const path = join(dir, 'identity.json')
    assert.equal((await stat(path)).mode & 0o777, 0o600)
    const file = JSON.parse(await readFile(path, 'utf8'))
    assert.deepEqual(file.secret, { format: 'plain', seed: b64(created.seed) })
    assert.deepEqual(await loadIdentity(dir), created)
    // A password given for a plain key is not needed and does no harm.
    assert.deepEqual(await loadIdentity(dir, { password: 'unused' }), created)
  })

  it('seals the key with a password and unlocks it only with that password', async () => {
    const dir = freshDir()
    const created = await createIdentity(dir, { name: 'phone', password: PASSWORD })
    assertConsistent(created)
    const path = join(dir, 'identity.json')
    const text = await readFile(path, 'utf8')
    assert.ok(!text.includes(b64(created.seed)))
    assert.ok(!text.includes(Buffer.from(created.seed).toString('hex')))
    const { secret } = JSON.parse(text)
    assert.equal(secret.format, 'sealed')
    assert.equal(secret.cipher, 'chacha20-poly1305')
    assert.deepEqual(
      { ...secret.kdf, salt: undefined },
      { name: 'scrypt', N: 32768, r: 8, p: 1, salt: undefined },
    )

    assert.deepEqual(await loadIdentity(dir, { password: PASSWORD }), created)
    await assert.rejects(loadIdentity(dir), PasswordRequiredError)
    await assert.rejects(loadIdentity(dir, { password: '' }), PasswordRequiredError)
    const wrong = await loadIdentity(dir, { password: `${PASSWORD}!` }).catch((e: unknown) => e)
    assert.ok(wrong instanceof WrongPasswordError)
    assert.equal(wrong.name, 'WrongPasswordError')
    assert.match(
      wrong.message,
      /^The password does not unlock this device's key \(.*identity\.json\)\. Try again, or /,
    )
  })

  it('treats an empty password as none', async () => {
    const dir = freshDir()
    const created = await createIdentity(dir, { name: 'tablet', password: '' })
    assert.deepEqual(await loadIdentity(dir), created)
  })

  it('a sealed key is bound to its device id (moved to another file it does not unlock)', async () => {
    const a = freshDir()
    const b = freshDir()
    await createIdentity(a, { name: 'a', password: PASSWORD })
    await createIdentity(b, { name: 'b', password: PASSWORD })
    const fileA = JSON.parse(await readFile(join(a, 'identity.json'), 'utf8'))
    const fileB = JSON.parse(await readFile(join(b, 'identity.json'), 'utf8'))
    await writeFile(join(b, 'identity.json'), JSON.stringify({ ...fileB, secret: fileA.secret }))
    await assert.rejects(loadIdentity(b, { password: PASSWORD }), WrongPasswordError)
  })

  it('never replaces an existing identity', async () => {
    const dir = freshDir()
    await createIdentity(dir, { name: 'laptop' })
    const before = await readFile(join(dir, 'identity.json'))
    await assert.rejects(createIdentity(dir, { name: 'other' }), IdentityExistsError)
    assert.deepEqual(await readFile(join(dir, 'identity.json')), before)
  })

  it('reports a missing identity', async () => {
    const error = await loadIdentity(freshDir()).catch((e: unknown) => e)
    assert.ok(error instanceof IdentityNotFoundError)
    assert.match(error.message, /identity\.json/)
  })

  it('loadOrCreateIdentity creates once, then loads', async () => {
    const dir = freshDir()
    const first = await loadOrCreateIdentity(dir, { name: 'laptop', password: PASSWORD })
    assert.equal(first.created, true)
    const second = await loadOrCreateIdentity(dir, { name: 'ignored', password: PASSWORD })
    assert.equal(second.created, false)
    assert.deepEqual(second.identity, first.identity)
    await assert.rejects(loadOrCreateIdentity(dir, { name: 'laptop', password: 'nope' }), WrongPasswordError)
  })

  it('rejects empty and overlong device names', async () => {
    await assert.rejects(createIdentity(freshDir(), { name: '   ' }), InvalidDeviceNameError)
    await assert.rejects(createIdentity(freshDir(), { name: 'x'.repeat(65) }), InvalidDeviceNameError)
    assert.equal((await createIdentity(freshDir(), { name: 'é'.repeat(64) })).name, 'é'.repeat(64))
  })

  describe('a damaged file is reported, never overwritten', () => {
    const damage: Record<string, (file: Record<string, unknown>, text: string) => string> = {
      'not JSON': (_, text) => text.slice(0, text.length / 2),
      'empty file': () => '',
      'a JSON array': () => '[]',
      'unknown version': (file) => JSON.stringify({ ...file, version: 2 }),
      'missing name': (file) => JSON.stringify({ ...file, name: undefined }),
      'device id edited': (file) => JSON.stringify({ ...file, deviceId: '0'.repeat(32) }),
      'public key of another device': (file) => {
        const other = ed25519.getPublicKey(new Uint8Array(32).fill(7))
        return JSON.stringify({ ...file, publicKey: b64(other), deviceId: deviceIdFromPublicKey(other) })
      },
      'seed edited': (file) => {
        const seed = Buffer.from((file.secret as { seed: string }).seed, 'base64')
        seed[0]! ^= 1
        return JSON.stringify({ ...file, secret: { format: 'plain', seed: seed.toString('base64') } })
      },
      'seed too short': (file) =>
        JSON.stringify({ ...file, secret: { format: 'plain', seed: b64(new Uint8Array(31)) } }),
      'seed not base64': (file) =>
        JSON.stringify({ ...file, secret: { format: 'plain', seed: '*'.repeat(44) } }),
      'unknown secret format': (file) => JSON.stringify({ ...file, secret: { format: 'rot13' } }),
    }
    for (const [what, edit] of Object.entries(damage)) {
      it(what, async () => {
        const dir = freshDir()
        await createIdentity(dir, { name: 'laptop' })
        const path = join(dir, 'identity.json')
        const text = await readFile(path, 'utf8')
        const damaged = edit(JSON.parse(text), text)
        await writeFile(path, damaged)
        const error = await loadIdentity(dir).catch((e: unknown) => e)
        assert.ok(error instanceof CorruptIdentityError, String(error))
        assert.equal(error.path, path)
        assert.ok(error.message.startsWith(`The device identity file ${path} is damaged (`))
        await assert.rejects(loadOrCreateIdentity(dir, { name: 'laptop' }), CorruptIdentityError)
        await assert.rejects(createIdentity(dir, { name: 'laptop' }), IdentityExistsError)
        assert.equal(await readFile(path, 'utf8'), damaged)
      })
    }

    it('sealed: scrypt parameters that would need gigabytes', async () => {
      const dir = freshDir()
      await createIdentity(dir, { name: 'laptop', password: PASSWORD })
      const path = join(dir, 'identity.json')
      const file = JSON.parse(await readFile(path, 'utf8'))
      await writeFile(
        path,
        JSON.stringify({ ...file, secret: { ...file.secret, kdf: { ...file.secret.kdf, N: 2 ** 24 } } }),
      )
      await assert.rejects(loadIdentity(dir, { password: PASSWORD }), CorruptIdentityError)
    })

    it('sealed: an altered ciphertext does not unlock', async () => {
      const dir = freshDir()
      await createIdentity(dir, { name: 'laptop', password: PASSWORD })
      const path = join(dir, 'identity.json')
      const file = JSON.parse(await readFile(path, 'utf8'))
      const ciphertext = Buffer.from(file.secret.ciphertext, 'base64')
      ciphertext[5]! ^= 0x10
      await writeFile(
        path,
        JSON.stringify({ ...file, secret: { ...file.secret, ciphertext: ciphertext.toString('base64') } }),
      )
      await assert.rejects(loadIdentity(dir, { password: PASSWORD }), WrongPasswordError)
    })
  })

  it('gives libp2p a key whose peer id carries this public key and which signs as this device', async () => {
    const identity = await createIdentity(freshDir(), { name: 'laptop' })
    const key = toLibp2pPrivateKey(identity)
    assert.deepEqual(peerIdFromPrivateKey(key).publicKey?.raw, identity.publicKey)
    const message = new TextEncoder().encode('hello')
    assert.ok(ed25519.verify(await key.sign(message), message, identity.publicKey))

    const other = ed25519.getPublicKey(new Uint8Array(32).fill(9))
    assert.throws(() => toLibp2pPrivateKey({ ...identity, publicKey: other }), CorruptIdentityError)
  })
})
