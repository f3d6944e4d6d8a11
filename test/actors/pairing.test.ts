// Pairing between real in-process nodes on loopback, and an attacker speaking the wire protocol by hand.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, describe, test } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import type { SessionEvent } from '../../actors/index.ts'
import { generateCode, parseCode } from '../../actors/pairing/code.ts'
import { createProof, deriveSecrets, transcriptHash } from '../../actors/pairing/pairing-crypto.ts'
import { deviceIdFromPublicKey } from '../../actors/store/device-id.ts'
import type { PairFrame } from '../../transport/codec.ts'
import { createTransport } from '../../transport/libp2p-node.ts'
import { openPairChannel } from '../../transport/pair-protocol.ts'
import { testNodes } from '../helpers/nodes.ts'

const nodes = testNodes()
after(() => nodes.cleanup())

function nextEvent(handle: { on(l: (e: SessionEvent) => void): () => void }, type: SessionEvent['type']) {
  return new Promise<SessionEvent>((resolve) => {
    const off = handle.on((event) => {
      if (event.type === type) {
        off()
        resolve(event)
      }
    })
  })
}

/** A peer that speaks /sdnet/pair/1.0.0 by hand: it knows whatever the test gives it, never the code. */
async function attacker() {
  const privateKey = await generateKeyPair('Ed25519')
  const libp2p = await createTransport({
    privateKey,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    mdns: false,
    dht: false,
  })
  const publicKey = privateKey.publicKey.raw
  const device = { id: deviceIdFromPublicKey(publicKey), name: 'mallory', publicKey }
  return {
    libp2p,
    device,
    open: (addresses: string[]) =>
      openPairChannel(
        libp2p,
        addresses.map((a) => multiaddr(a)),
        { timeoutMs: 5_000 },
      ),
    stop: () => libp2p.stop(),
  }
}

describe('pairing between two nodes', () => {
  test('auto-accept pairs both sides, with the same comparison string, and both store the other', async () => {
    const alice = await nodes.make('alice')
    const bob = await nodes.make('bob')
    await Promise.all([alice.start(), bob.start()])
    const session = alice.pair.generate({ autoAccept: true })
    const joined = bob.pair.join(session.code)
    const [a, b] = await Promise.all([session.result, joined.result])
    assert.equal(a.outcome, 'paired')
    assert.equal(b.outcome, 'paired')
    if (a.outcome !== 'paired' || b.outcome !== 'paired') return
    assert.equal(a.device.id, bob.deviceId)
    assert.equal(b.device.id, alice.deviceId)
    assert.equal(a.device.fingerprint, bob.fingerprint)
    assert.match(a.sas, /^\d{3} \d{3}$/)
    assert.equal(a.sas, b.sas)
    assert.deepEqual(
      alice.devices().map((d) => d.id),
      [bob.deviceId],
    )
    assert.deepEqual(
      bob.devices().map((d) => d.peerId),
      [alice.peerId],
    )
  })

  test('the initiator user sees the joiner and its comparison string, then accepts', async () => {
    const alice = await nodes.make('alice')
    const bob = await nodes.make('bob')
    await Promise.all([alice.start(), bob.start()])
    const session = alice.pair.generate()
    assert.throws(() => alice.pair.accept(session.sessionId), { name: 'SessionNotWaitingError' })
    const request = nextEvent(session, 'request')
    const joined = bob.pair.join(session.code.split(' '))
    const comparison = nextEvent(joined, 'comparison')
    const event = await request
    // The joiner shows its comparison string before the initiator's user decides, so the two can be compared.
    const shown = await comparison
    assert.equal(shown.type === 'comparison' && shown.sas, event.type === 'request' && event.sas)
    assert.equal(event.type, 'request')
    if (event.type !== 'request') return
    assert.equal(event.device.name, 'bob')
    assert.equal(event.device.fingerprint, bob.fingerprint)
    assert.deepEqual(
      alice.pair.list().map((s) => s.state),
      ['AwaitingConfirmation'],
    )
    alice.pair.accept(event.sessionId)
    const [a, b] = await Promise.all([session.result, joined.result])
    assert.equal(a.outcome, 'paired')
    assert.equal(b.outcome === 'paired' && b.sas, event.sas)
  })

  test('a rejected request fails on both sides and stores nothing', async () => {
    const alice = await nodes.make('alice')
    const bob = await nodes.make('bob')
    await Promise.all([alice.start(), bob.start()])
    const session = alice.pair.generate()
    const request = nextEvent(session, 'request')
    const joined = bob.pair.join(session.code)
    alice.pair.reject((await request).sessionId)
    const [a, b] = await Promise.all([session.result, joined.result])
    assert.deepEqual([a.outcome, a.outcome === 'failed' && a.reason], ['failed', 'Rejected'])
    assert.deepEqual([b.outcome, b.outcome === 'failed' && b.reason], ['failed', 'Rejected'])
    assert.equal(alice.devices().length, 0)
    assert.equal(bob.devices().length, 0)
  })

  test('a wrong code fails the joiner with WrongCode; the initiator keeps waiting until cancelled', async () => {
    const alice = await nodes.make('alice')
    const bob = await nodes.make('bob', { timeouts: { settle: 300 } })
    await Promise.all([alice.start(), bob.start()])
    const session = alice.pair.generate()
    const joined = bob.pair.join(generateCode().words)
    const b = await joined.result
    assert.deepEqual([b.outcome, b.outcome === 'failed' && b.reason], ['failed', 'WrongCode'])
    assert.match(b.outcome === 'failed' ? b.message : '', /did not match/)
    const waiting = alice.pair.list().find((s) => s.sessionId === session.sessionId)
    assert.equal(waiting?.state, 'WaitingForConnection')
    alice.pair.cancel(session.sessionId)
    const a = await session.result
    assert.deepEqual([a.outcome, a.outcome === 'failed' && a.reason], ['failed', 'Cancelled'])
    assert.equal(alice.devices().length + bob.devices().length, 0)
  })

  test('a code expires', async () => {
    const alice = await nodes.make('alice')
    await alice.start()
    const session = alice.pair.generate({ codeTtlMs: 100 })
    const a = await session.result
    assert.deepEqual([a.outcome, a.outcome === 'failed' && a.reason], ['failed', 'Expired'])
  })

  test('two joiners against two sessions of one initiator both pair', async () => {
    const alice = await nodes.make('alice')
    const bob = await nodes.make('bob')
    const carol = await nodes.make('carol')
    await Promise.all([alice.start(), bob.start(), carol.start()])
    const s1 = alice.pair.generate({ autoAccept: true })
    const s2 = alice.pair.generate({ autoAccept: true })
    const results = await Promise.all([
      s1.result,
      s2.result,
      bob.pair.join(s1.code).result,
      carol.pair.join(s2.code).result,
    ])
    assert.deepEqual(
      results.map((r) => r.outcome),
      ['paired', 'paired', 'paired', 'paired'],
    )
    assert.deepEqual(
      alice
        .devices()
        .map((d) => d.name)
        .sort(),
      ['bob', 'carol'],
    )
  })

  test('paired devices are still there after a restart', async () => {
    const alice = await nodes.make('alice')
    const bob = await nodes.make('bob')
    await Promise.all([alice.start(), bob.start()])
    const session = alice.pair.generate({ autoAccept: true })
    await Promise.all([session.result, bob.pair.join(session.code).result])
    await alice.stop()
    const again = await nodes.make('alice', { dataDir: alice.dataDir })
    assert.deepEqual(
      again.devices().map((d) => d.id),
      [bob.deviceId],
    )
    assert.equal(again.deviceId, alice.deviceId)
  })
})

describe('an attacker on the network', () => {
  async function initiatorWithSession() {
    const alice = await nodes.make('alice')
    await alice.start()
    const session = alice.pair.generate({ autoAccept: true })
    const { rendezvous } = deriveSecrets(parseCode(session.code))
    return { alice, session, rendezvous }
  }

  test('who saw the rendezvous id but not the code cannot pair: a forged proof fails the session', async (t) => {
    const { alice, session, rendezvous } = await initiatorWithSession()
    const mallory = await attacker()
    t.after(() => mallory.stop())
    const channel = await mallory.open(alice.addresses())
    await channel.write({ t: 'request', v: 1, rendezvous, nonce: randomBytes(32), device: mallory.device })
    const challenge = await channel.read({ timeoutMs: 5_000 })
    assert.equal(challenge.t, 'challenge')
    await channel.write({ t: 'response', v: 1, sig: randomBytes(64), mac: randomBytes(32) })
    const answer = await channel.read({ timeoutMs: 5_000 })
    assert.deepEqual([answer.t, answer.t === 'error' && answer.code], ['error', 'WrongCode'])
    const a = await session.result
    assert.deepEqual([a.outcome, a.outcome === 'failed' && a.reason], ['failed', 'WrongCode'])
    assert.equal(alice.devices().length, 0)
  })

  test('a proof recorded from another exchange (replay) is rejected: the nonces differ', async (t) => {
    const { alice, session, rendezvous } = await initiatorWithSession()
    const mallory = await attacker()
    t.after(() => mallory.stop())
    // A proof that was valid for an earlier transcript of this very code, made with the real proof key.
    const { proofKey } = deriveSecrets(parseCode(session.code))
    const recordedTranscript = transcriptHash({
      rendezvous,
      initiatorPeerId: randomBytes(38),
      joinerPeerId: mallory.libp2p.peerId.toMultihash().bytes,
      initiatorNonce: randomBytes(32),
      joinerNonce: randomBytes(32),
      initiator: { id: alice.deviceId, name: 'alice', publicKey: randomBytes(32) },
      joiner: mallory.device,
    })
    const seed = randomBytes(32)
    const recorded = createProof('joiner', proofKey, recordedTranscript, seed)
    const channel = await mallory.open(alice.addresses())
    await channel.write({ t: 'request', v: 1, rendezvous, nonce: randomBytes(32), device: mallory.device })
    assert.equal((await channel.read({ timeoutMs: 5_000 })).t, 'challenge')
    await channel.write({ t: 'response', v: 1, ...recorded })
    const answer = await channel.read({ timeoutMs: 5_000 })
    assert.equal(answer.t === 'error' && answer.code, 'WrongCode')
    assert.equal((await session.result).outcome, 'failed')
  })

  test('a request for a session the node does not hold is answered UnknownSession and changes nothing', async (t) => {
    const { alice, session } = await initiatorWithSession()
    const mallory = await attacker()
    t.after(() => mallory.stop())
    const channel = await mallory.open(alice.addresses())
    await channel.write({
      t: 'request',
      v: 1,
      rendezvous: randomBytes(32),
      nonce: randomBytes(32),
      device: mallory.device,
    })
    const answer = await channel.read({ timeoutMs: 5_000 })
    assert.equal(answer.t === 'error' && answer.code, 'UnknownSession')
    assert.equal(
      alice.pair.list().find((s) => s.sessionId === session.sessionId)?.state,
      'WaitingForConnection',
    )
    alice.pair.cancel(session.sessionId)
  })

  test('a device claim that does not match the Noise-authenticated key is refused', async (t) => {
    const { alice, session, rendezvous } = await initiatorWithSession()
    const mallory = await attacker()
    t.after(() => mallory.stop())
    const victim = randomBytes(32)
    const channel = await mallory.open(alice.addresses())
    const device = { id: deviceIdFromPublicKey(victim), name: 'bob', publicKey: victim }
    await channel.write({ t: 'request', v: 1, rendezvous, nonce: randomBytes(32), device })
    const answer = await channel.read({ timeoutMs: 5_000 })
    assert.equal(answer.t === 'error' && answer.code, 'ProtocolError')
    assert.equal(
      alice.pair.list().find((s) => s.sessionId === session.sessionId)?.state,
      'WaitingForConnection',
    )
    alice.pair.cancel(session.sessionId)
  })

  test('more than three bad proofs from one peer are rate-limited', async (t) => {
    const alice = await nodes.make('alice')
    await alice.start()
    const mallory = await attacker()
    t.after(() => mallory.stop())
    const answers: string[] = []
    for (let i = 0; i < 5; i++) {
      const session = alice.pair.generate()
      const { rendezvous } = deriveSecrets(parseCode(session.code))
      const channel = await mallory.open(alice.addresses())
      await channel.write({ t: 'request', v: 1, rendezvous, nonce: randomBytes(32), device: mallory.device })
      const first: PairFrame = await channel.read({ timeoutMs: 5_000 })
      if (first.t === 'challenge') {
        await channel.write({ t: 'response', v: 1, sig: randomBytes(64), mac: randomBytes(32) })
        const second = await channel.read({ timeoutMs: 5_000 })
        answers.push(second.t === 'error' ? second.code : second.t)
      } else {
        answers.push(first.t === 'error' ? first.code : first.t)
      }
      await channel.close()
      if (alice.pair.list().some((s) => s.sessionId === session.sessionId))
        alice.pair.cancel(session.sessionId)
    }
    assert.deepEqual(answers, ['WrongCode', 'WrongCode', 'WrongCode', 'WrongCode', 'RateLimited'])
  })

  test('a malformed frame gets a ProtocolError and the node goes on pairing', async (t) => {
    const alice = await nodes.make('alice')
    const bob = await nodes.make('bob')
    await Promise.all([alice.start(), bob.start()])
    const mallory = await attacker()
    t.after(() => mallory.stop())
    const stream = await mallory.libp2p.dialProtocol(multiaddr(alice.addresses()[0]!), '/sdnet/pair/1.0.0')
    // A length prefix of 3 followed by three bytes that are not a CBOR map.
    stream.send(Uint8Array.from([3, 0xff, 0xff, 0xff]))
    const reply = await new Promise<Uint8Array>((resolve) => {
      stream.addEventListener(
        'message',
        (evt) => resolve((evt as unknown as { data: { subarray(): Uint8Array } }).data.subarray()),
        { once: true },
      )
    })
    assert.ok(new TextDecoder().decode(reply).includes('ProtocolError'))
    const session = alice.pair.generate({ autoAccept: true })
    const [a, b] = await Promise.all([session.result, bob.pair.join(session.code).result])
    assert.deepEqual([a.outcome, b.outcome], ['paired', 'paired'])
  })
})
