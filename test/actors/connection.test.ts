// Connections between paired in-process nodes on loopback: sealed messages, requests, ping, revocation, re-keys,
// and peers that play the attacker (not paired, replaying or tampering with frames).
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import type { NodeEvent, NodeOptions, SdnetNode } from '../../actors/index.ts'
import { createTransport } from '../../transport/libp2p-node.ts'
import { openLink } from '../../transport/link.ts'
import type { LinkFrame } from '../../transport/msg-codec.ts'
import { testNodes } from '../helpers/nodes.ts'
import { countTurns } from '../helpers/turns.ts'

const nodes = testNodes()
after(() => nodes.cleanup())
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

function nextEvent<T extends NodeEvent['type']>(
  node: SdnetNode,
  type: T,
  match: (event: Extract<NodeEvent, { type: T }>) => boolean = () => true,
) {
  return new Promise<Extract<NodeEvent, { type: T }>>((resolve) => {
    const off = node.on(type, (event) => {
      const typed = event as Extract<NodeEvent, { type: T }>
      if (match(typed)) {
        off()
        resolve(typed)
      }
    })
  })
}

/** Two started nodes, paired, with their link up on both sides. */
async function pairedPair(opts: { alice?: Partial<NodeOptions>; bob?: Partial<NodeOptions> } = {}) {
  const alice = await nodes.make('alice', opts.alice)
  const bob = await nodes.make('bob', opts.bob)
  await Promise.all([alice.start(), bob.start()])
  const up = Promise.all([nextEvent(alice, 'ConnectionEstablished'), nextEvent(bob, 'ConnectionEstablished')])
  const session = alice.pair.generate({ autoAccept: true })
  await Promise.all([session.result, bob.pair.join(session.code).result])
  await up
  return { alice, bob }
}

describe('connections between paired devices', () => {
  test('messages, requests and pings go both ways over the sealed link', async () => {
    const { alice, bob } = await pairedPair()
    const got = new Promise<string>((resolve) => alice.handle('chat/1', (m) => void resolve(text(m.body))))
    await bob.send('alice', 'chat/1', 'hello alice')
    assert.equal(await got, 'hello alice')
    bob.handle('echo/1', (m) => `bob heard ${text(m.body)}`)
    assert.equal(text(await alice.request('bob', 'echo/1', 'ping?')), 'bob heard ping?')
    const rtt = await alice.ping(bob.deviceId)
    assert.ok(rtt > 0 && rtt < 5_000)
    const [status] = alice.devices()
    assert.equal(status?.state, 'connected')
    assert.equal(status?.rttMs, rtt)
    assert.ok((status?.lastSeen ?? 0) > 0)
  })

  test('a burst of small messages (batched per turn), runs of several protocols, requests and large ones in between arrive complete and in order', async () => {
    const { alice, bob } = await pairedPair()
    const expected = Array.from({ length: 3000 }, (_, i) => ({
      protocol: i % 7 === 3 ? 'burst/2' : i % 400 === 200 ? 'burst/ask' : 'burst/1',
      body: i % 500 === 250 ? `big${i}`.padEnd(40_000, '.') : `m${i}`,
    }))
    const received: Array<{ protocol: string; body: string }> = []
    const all = Promise.withResolvers<void>()
    const record = (m: { protocol: string; body: Uint8Array }) => {
      received.push({ protocol: m.protocol, body: text(m.body) })
      if (received.length === expected.length) all.resolve()
      return `ok ${text(m.body)}`
    }
    for (const protocol of ['burst/1', 'burst/2', 'burst/ask']) alice.handle(protocol, record)
    // Not awaited one by one: the whole burst is written in a few turns of the event loop.
    const replies = await Promise.all(
      expected.map(({ protocol, body }) =>
        protocol === 'burst/ask' ? bob.request('alice', protocol, body) : bob.send('alice', protocol, body),
      ),
    )
    await all.promise
    assert.deepEqual(received, expected)
    assert.deepEqual(
      replies.filter((reply) => reply !== undefined).map(text),
      expected.filter((m) => m.protocol === 'burst/ask').map((m) => `ok ${m.body}`),
    )
    assert.deepEqual(alice.devices()[0]?.rejected, { replayed: 0, tampered: 0 })
  })

  test('an unknown protocol and a failing handler come back as errors that say so', async () => {
    const { alice, bob } = await pairedPair()
    await assert.rejects(alice.request('bob', 'nobody/1', 'x'), {
      name: 'RemoteError',
      code: 'UnknownProtocol',
    })
    bob.handle('broken/1', () => {
      throw new Error('disk full')
    })
    await assert.rejects(alice.request('bob', 'broken/1', 'x'), {
      name: 'RemoteError',
      code: 'HandlerFailed',
      message: /disk full/,
    })
    // The link is still usable afterwards.
    assert.ok((await alice.ping('bob')) > 0)
    // One-way messages whose handler throws, or rejects later: logged on the receiver, the messages after them
    // still arrive.
    bob.handle('throws/1', () => {
      throw new Error('sync failure')
    })
    bob.handle('rejects/1', async () => {
      throw new Error('async failure')
    })
    const after = new Promise<string>((resolve) => bob.handle('after/1', (m) => void resolve(text(m.body))))
    await Promise.all([alice.send('bob', 'throws/1', 'a'), alice.send('bob', 'rejects/1', 'b')])
    await alice.send('bob', 'after/1', 'still here')
    assert.equal(await after, 'still here')
  })

  test('bad calls reject (never throw) with an error that says what was wrong', async () => {
    const idle = await nodes.make('idle')
    const calls = [() => idle.send('bob', 'chat/1', 'x'), () => idle.request('bob', 'chat/1', 'x')]
    for (const call of [...calls, () => idle.ping('bob'), () => idle.revoke('bob')]) {
      await assert.rejects(call, { name: 'NodeNotRunningError' })
    }
    const { alice } = await pairedPair()
    await assert.rejects(alice.send('bob', 'chat 1', 'x'), { name: 'InvalidProtocolNameError' })
    await assert.rejects(alice.send('bob', 'chat/1', new Uint8Array(1024 * 1024 + 1)), {
      name: 'MessageTooLargeError',
    })
    await assert.rejects(alice.send('carol', 'chat/1', 'x'), { name: 'UnknownDeviceError', message: /bob/ })
  })

  test('devices are named by id, unique prefix or name; unknown and ambiguous names list the candidates', async () => {
    const { alice, bob } = await pairedPair()
    assert.ok((await alice.ping(bob.deviceId.slice(0, 6))) > 0)
    assert.ok((await alice.ping('BOB')) > 0)
    await assert.rejects(alice.ping('carol'), { name: 'UnknownDeviceError', message: /bob \(/ })
  })

  test('revoking on one side ends the pairing on both, and is harmless twice', async () => {
    const { alice, bob } = await pairedPair()
    const revokedThere = nextEvent(alice, 'DeviceRevoked')
    assert.deepEqual(await bob.revoke('alice'), { deviceId: alice.deviceId, notified: true })
    const event = await revokedThere
    assert.deepEqual([event.deviceId, event.by], [bob.deviceId, 'peer'])
    assert.deepEqual([alice.devices().length, bob.devices().length], [0, 0])
    assert.equal(await bob.revoke('alice'), false)
    await assert.rejects(bob.send('alice', 'chat/1', 'x'), { name: 'UnknownDeviceError' })
  })

  test('re-keys after the configured number of frames, and messages keep flowing across epochs', async () => {
    const small = { connection: { rekeyAfterFrames: 5 } }
    const { alice, bob } = await pairedPair({ alice: small, bob: small })
    const received: string[] = []
    const all = new Promise<void>((resolve) =>
      alice.handle('count/1', (m) => {
        received.push(text(m.body))
        if (received.length === 40) resolve()
      }),
    )
    for (let i = 0; i < 40; i++) await bob.send('alice', 'count/1', String(i))
    await all
    assert.deepEqual(
      received,
      Array.from({ length: 40 }, (_, i) => String(i)),
    )
    assert.equal(text(await bob.request('alice', 'count/1', 'still there?')), '')
    assert.deepEqual(alice.devices()[0]?.rejected, { replayed: 0, tampered: 0 })
  })

  test('a large message after a batch that starts a re-key waits for the new keys, in order', async () => {
    const small = { connection: { rekeyAfterFrames: 2 } }
    const { alice, bob } = await pairedPair({ alice: small, bob: small })
    const sizes: number[] = []
    alice.handle('sizes/1', (m) => void sizes.push(m.body.length))
    // One turn: the first goes out alone (frame 0), the next two wait in the outbox, and the large one flushes
    // them (frame 1: the re-key starts) before it is sealed.
    await Promise.all([1, 2, 3, 20_000].map((size) => bob.send('alice', 'sizes/1', new Uint8Array(size))))
    await bob.request('alice', 'sizes/1', 'done!')
    assert.deepEqual(sizes, [1, 2, 3, 20_000, 5])
    assert.deepEqual(alice.devices()[0]?.rejected, { replayed: 0, tampered: 0 })
  })

  test('a sender that awaits send() in a loop still lets timers and other links have the event loop', async () => {
    const { alice, bob } = await pairedPair()
    let count = 0
    let outOfOrder = 0
    alice.handle('flood/1', (m) => {
      if (m.body[0] !== (count & 0xff)) outOfOrder++
      count++
    })
    const turns = countTurns()
    // ~3 MiB of 64 B messages: below where writers wait for the link to drain, so only the link's turns (one per
    // MiB sent without one) let anything else run meanwhile.
    const total = 48_000
    const body = new Uint8Array(64)
    for (let i = 0; i < total; i++) {
      body[0] = i & 0xff
      await bob.send('alice', 'flood/1', body)
    }
    const seen = turns.stop()
    assert.ok(seen >= 2, `${seen} turns while ${total} messages were sent`)
    await bob.request('alice', 'flood/1', Uint8Array.of(total & 0xff))
    assert.deepEqual({ count, outOfOrder }, { count: total + 1, outOfOrder: 0 })
  })

  test('a sender may reuse its buffer as soon as send resolves', async () => {
    const { alice, bob } = await pairedPair()
    const seen: number[] = []
    alice.handle('reuse/1', (m) => void seen.push(m.body[0] ?? -1))
    for (const size of [1, 10_000]) {
      const buffer = new Uint8Array(size)
      for (let i = 0; i < 4; i++) {
        buffer[0] = i
        await bob.send('alice', 'reuse/1', buffer)
      }
    }
    await bob.request('alice', 'reuse/1', Uint8Array.of(9))
    assert.deepEqual(seen, [0, 1, 2, 3, 0, 1, 2, 3, 9])
  })
})

test('re-keys that both sides start at once (crossing): the opener wins and the link stays up', async () => {
  const small = { connection: { rekeyAfterFrames: 3 } }
  const { alice, bob } = await pairedPair({ alice: small, bob: small })
  const lost: string[] = []
  for (const node of [alice, bob]) node.on('ConnectionLost', (e) => lost.push(e.type))
  const heard: string[] = []
  for (const node of [alice, bob]) node.handle('both/1', (m) => void heard.push(text(m.body)))
  // Both send their third frame in the same turn, so both start a re-key before either sees the other's.
  for (let round = 0; round < 3; round++) {
    await Promise.all([alice.send('bob', 'both/1', `a${round}`), bob.send('alice', 'both/1', `b${round}`)])
  }
  alice.handle('echo/1', (m) => m.body)
  assert.equal(text(await bob.request('alice', 'echo/1', 'after the crossing')), 'after the crossing')
  assert.equal(text(await alice.request('bob', 'both/1', 'and back')), '')
  assert.deepEqual(heard.filter((h) => h !== 'and back').sort(), ['a0', 'a1', 'a2', 'b0', 'b1', 'b2'])
  assert.deepEqual(lost, [])
  assert.deepEqual(alice.devices()[0]?.rejected, { replayed: 0, tampered: 0 })
  assert.deepEqual(bob.devices()[0]?.rejected, { replayed: 0, tampered: 0 })
})

describe('peers that play the attacker', () => {
  test('a peer that is not paired cannot open the messaging protocol', async () => {
    const alice = await nodes.make('alice')
    await alice.start()
    const privateKey = await generateKeyPair('Ed25519')
    const mallory = await createTransport({
      privateKey,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      mdns: false,
      dht: false,
    })
    try {
      const link = await openLink(mallory, [multiaddr(alice.addresses()[0]!)], { timeoutMs: 5_000 })
      await assert.rejects(link.read({ timeoutMs: 5_000 }), { name: 'LinkClosedError' })
      assert.deepEqual(alice.devices(), [])
    } finally {
      await mallory.stop()
    }
  })

  test('a replayed frame is rejected and counted, and the link stays usable', async () => {
    let replayNext = false
    const { alice, bob } = await pairedPair({
      bob: {
        rewriteOutgoing: (frame: LinkFrame) => {
          if (!replayNext || frame.t !== 'sealed') return [frame]
          replayNext = false
          return [frame, frame] // the same sealed frame twice, as a network attacker would replay it
        },
      },
    })
    const bodies: string[] = []
    alice.handle('chat/1', (m) => void bodies.push(text(m.body)))
    replayNext = true
    await bob.send('alice', 'chat/1', 'once')
    assert.equal(text(await bob.request('alice', 'chat/1', 'after')), '')
    assert.deepEqual(bodies, ['once', 'after'])
    assert.deepEqual(alice.devices()[0]?.rejected, { replayed: 1, tampered: 0 })
  })

  test('a tampered frame is rejected and counted, and the link stays usable', async () => {
    let tamperNext = false
    const { alice, bob } = await pairedPair({
      bob: {
        rewriteOutgoing: (frame: LinkFrame) => {
          if (!tamperNext || frame.t !== 'sealed') return [frame]
          tamperNext = false
          const ct = Uint8Array.from(frame.ct)
          ct[0] = (ct[0] ?? 0) ^ 0x01
          return [{ ...frame, ct }]
        },
      },
    })
    const bodies: string[] = []
    alice.handle('chat/1', (m) => void bodies.push(text(m.body)))
    tamperNext = true
    await bob.send('alice', 'chat/1', 'forged')
    // The frame never reached the handler; the next genuine one, sealed with the next counter, does.
    assert.equal(text(await bob.request('alice', 'chat/1', 'genuine')), '')
    assert.deepEqual(bodies, ['genuine'])
    assert.deepEqual(alice.devices()[0]?.rejected, { replayed: 0, tampered: 1 })
  })
})
