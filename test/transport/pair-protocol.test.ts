// The pairing stream between two real libp2p nodes on 127.0.0.1 (no mDNS, no DHT).

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createServer, type Server, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'
import { multiaddr } from '@multiformats/multiaddr'
import type { PairFrame, WireDevice } from '../../transport/codec.ts'
import { decodePairFrame, encodePairFrame, MAX_PAIR_FRAME_BYTES } from '../../transport/codec.ts'
import type { SdnetLibp2p } from '../../transport/libp2p-node.ts'
import { createTransport } from '../../transport/libp2p-node.ts'
import type { FrameChannel } from '../../transport/pair-protocol.ts'
import { handlePairProtocol, openPairChannel, PAIR_PROTOCOL } from '../../transport/pair-protocol.ts'

const STEP_MS = 5_000 // generous bound for anything that should happen at once on loopback

function device(key: Ed25519PrivateKey, name: string): WireDevice {
  return { id: `dev-${name}`, name, publicKey: key.publicKey.raw }
}

function bytes(n: number): Uint8Array {
  return new Uint8Array(randomBytes(n))
}

async function startNode(privateKey: Ed25519PrivateKey): Promise<SdnetLibp2p> {
  return createTransport({ privateKey, listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, dht: false })
}

// Hands out the channels a node accepts, in order.
function inbox(): { onChannel: (channel: FrameChannel) => void; next: () => Promise<FrameChannel> } {
  const ready: FrameChannel[] = []
  const waiting: Array<(channel: FrameChannel) => void> = []
  return {
    onChannel(channel) {
      const waiter = waiting.shift()
      if (waiter) waiter(channel)
      else ready.push(channel)
    },
    next() {
      const channel = ready.shift()
      if (channel) return Promise.resolve(channel)
      const { promise, resolve, reject } = Promise.withResolvers<FrameChannel>()
      const timer = setTimeout(() => reject(new Error('no inbound pairing channel arrived')), STEP_MS)
      waiting.push((c) => {
        clearTimeout(timer)
        resolve(c)
      })
      return promise
    },
  }
}

describe('pairing protocol over libp2p', () => {
  let keyA: Ed25519PrivateKey
  let keyB: Ed25519PrivateKey
  let a: SdnetLibp2p
  let b: SdnetLibp2p
  let addrB: Multiaddr
  const atB = inbox()
  const atA = inbox()

  before(async () => {
    keyA = await generateKeyPair('Ed25519')
    keyB = await generateKeyPair('Ed25519')
    a = await startNode(keyA)
    b = await startNode(keyB)
    await handlePairProtocol(a, atA.onChannel)
    await handlePairProtocol(b, atB.onChannel)
    const first = b.getMultiaddrs()[0]
    assert.ok(first)
    addrB = first
  })

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()])
  })

  it('exchanges every frame both ways, and names the authenticated peer on each side', async () => {
    const joiner = await openPairChannel(a, addrB, { timeoutMs: STEP_MS })
    assert.deepEqual(joiner.remotePeerIdBytes, b.peerId.toMultihash().bytes)
    assert.deepEqual(joiner.remotePublicKey, keyB.publicKey.raw)
    assert.ok(joiner.remotePeer.equals(b.peerId))

    const request: PairFrame = {
      t: 'request',
      v: 1,
      rendezvous: bytes(32),
      nonce: bytes(32),
      device: device(keyA, 'a'),
    }
    await joiner.write(request)
    const initiator = await atB.next()
    assert.deepEqual(initiator.remotePeerIdBytes, a.peerId.toMultihash().bytes)
    assert.deepEqual(initiator.remotePublicKey, keyA.publicKey.raw)
    assert.deepEqual(await initiator.read({ timeoutMs: STEP_MS }), request)

    const challenge: PairFrame = { t: 'challenge', v: 1, nonce: bytes(32), device: device(keyB, 'b') }
    await initiator.write(challenge)
    assert.deepEqual(await joiner.read({ timeoutMs: STEP_MS }), challenge)

    const response: PairFrame = { t: 'response', v: 1, sig: bytes(64), mac: bytes(32) }
    await joiner.write(response)
    assert.deepEqual(await initiator.read({ timeoutMs: STEP_MS }), response)

    const complete: PairFrame = { t: 'complete', v: 1, sig: bytes(64), mac: bytes(32) }
    const failure: PairFrame = { t: 'error', v: 1, code: 'Rejected', message: 'declined on the other device' }
    await initiator.write(complete)
    await initiator.write(failure)
    assert.deepEqual(await joiner.read({ timeoutMs: STEP_MS }), complete)
    assert.deepEqual(await joiner.read({ timeoutMs: STEP_MS }), failure)

    await joiner.close()
    await initiator.close()
  })

  it('opens a channel the other way, by peer id over the existing connection', async () => {
    const channel = await openPairChannel(b, a.peerId, { timeoutMs: STEP_MS })
    await channel.write({ t: 'error', v: 1, code: 'Cancelled', message: '' })
    const accepted = await atA.next()
    assert.ok(accepted.remotePeer.equals(b.peerId))
    assert.deepEqual(await accepted.read({ timeoutMs: STEP_MS }), {
      t: 'error',
      v: 1,
      code: 'Cancelled',
      message: '',
    })
    channel.abort(new Error('test done'))
    accepted.abort(new Error('test done'))
  })

  // A joiner's channel at A and the initiator's channel that B accepted for it.
  async function openPair(): Promise<{ joiner: FrameChannel; initiator: FrameChannel }> {
    const joiner = await openPairChannel(a, addrB, { timeoutMs: STEP_MS })
    return { joiner, initiator: await atB.next() }
  }

  function abortBoth(...channels: FrameChannel[]): void {
    for (const channel of channels) channel.abort(new Error('test done'))
  }

  it('times a read out with ReadTimeoutError and stays usable', async () => {
    const { joiner, initiator } = await openPair()
    await assert.rejects(joiner.read({ timeoutMs: 50 }), { name: 'ReadTimeoutError' })
    const late: PairFrame = { t: 'error', v: 1, code: 'Timeout', message: 'too slow' }
    await initiator.write(late)
    assert.deepEqual(await joiner.read({ timeoutMs: STEP_MS }), late)
    abortBoth(joiner, initiator)
  })

  it('gives up a read when its signal aborts, with the signal reason, and stays usable', async () => {
    const { joiner, initiator } = await openPair()
    const controller = new AbortController()
    const reading = joiner.read({ timeoutMs: STEP_MS, signal: controller.signal })
    const reason = new Error('user cancelled')
    controller.abort(reason)
    await assert.rejects(reading, (err) => err === reason)
    const frame: PairFrame = { t: 'error', v: 1, code: 'Cancelled', message: '' }
    await initiator.write(frame)
    assert.deepEqual(await joiner.read({ timeoutMs: STEP_MS }), frame)
    abortBoth(joiner, initiator)
  })

  it('delivers frames sent before the read, in order, then StreamClosedError once the peer closes', async () => {
    const { joiner, initiator } = await openPair()
    // More frames than the reader queues, so it has to pause and resume.
    const sent: PairFrame[] = Array.from({ length: 10 }, (_, i) => ({
      t: 'error',
      v: 1,
      code: 'Cancelled',
      message: `frame ${i}`,
    }))
    for (const frame of sent) await joiner.write(frame)
    await joiner.close()
    // A frame on a second stream of the same connection arrives after all of the above, so by the time it is
    // read B holds every frame of the first stream and its reader has had to pause.
    const barrier = await openPair()
    await barrier.joiner.write({ t: 'error', v: 1, code: 'Cancelled', message: 'barrier' })
    await barrier.initiator.read({ timeoutMs: STEP_MS })
    abortBoth(barrier.joiner, barrier.initiator)
    for (const frame of sent) assert.deepEqual(await initiator.read({ timeoutMs: STEP_MS }), frame)
    await assert.rejects(initiator.read({ timeoutMs: STEP_MS }), { name: 'StreamClosedError' })
    await initiator.close()
  })

  it('reports an abort to the other side as StreamClosedError', async () => {
    const { joiner, initiator } = await openPair()
    joiner.abort(new Error('gone'))
    await assert.rejects(initiator.read({ timeoutMs: STEP_MS }), { name: 'StreamClosedError' })
    await assert.rejects(joiner.read({ timeoutMs: STEP_MS }), { name: 'StreamClosedError' })
    await assert.rejects(joiner.write({ t: 'error', v: 1, code: 'Cancelled', message: '' }), {
      name: 'StreamClosedError',
    })
  })

  it('refuses to write an invalid frame and sends nothing', async () => {
    const { joiner, initiator } = await openPair()
    const bad = { t: 'response', v: 1, sig: bytes(63), mac: bytes(32) } as PairFrame
    await assert.rejects(joiner.write(bad), { name: 'MalformedFrameError' })
    const good: PairFrame = { t: 'response', v: 1, sig: bytes(64), mac: bytes(32) }
    await joiner.write(good)
    assert.deepEqual(await initiator.read({ timeoutMs: STEP_MS }), good)
    abortBoth(joiner, initiator)
  })

  it('rejects a frame over the cap from a raw stream, answers it, and keeps serving', async () => {
    const stream = await a.dialProtocol(addrB, PAIR_PROTOCOL)
    const raw = lpStream(stream)
    await raw.write(new Uint8Array(MAX_PAIR_FRAME_BYTES + 1))
    const initiator = await atB.next()
    await assert.rejects(initiator.read({ timeoutMs: STEP_MS }), { name: 'OversizedFrameError' })
    // Reading stays failed, but the stream is still there to say why.
    await assert.rejects(initiator.read({ timeoutMs: STEP_MS }), { name: 'OversizedFrameError' })
    const answer: PairFrame = { t: 'error', v: 1, code: 'ProtocolError', message: 'frame too large' }
    await initiator.write(answer)
    const reply = await raw.read({ signal: AbortSignal.timeout(STEP_MS) })
    assert.deepEqual(decodePairFrame(reply.subarray()), answer)
    initiator.abort(new Error('test done'))
    stream.abort(new Error('test done'))

    // The handler side is unharmed: a new channel on the same node works.
    const { joiner, initiator: next } = await openPair()
    const frame: PairFrame = { t: 'response', v: 1, sig: bytes(64), mac: bytes(32) }
    await joiner.write(frame)
    assert.deepEqual(await next.read({ timeoutMs: STEP_MS }), frame)
    assert.equal(b.status, 'started')
    abortBoth(joiner, next)
  })

  it('delivers the frames before a malformed one, then MalformedFrameError', async () => {
    const stream = await a.dialProtocol(addrB, PAIR_PROTOCOL)
    const raw = lpStream(stream)
    const frame: PairFrame = { t: 'response', v: 1, sig: bytes(64), mac: bytes(32) }
    await raw.write(encodePairFrame(frame))
    await raw.write(new Uint8Array([0xff, 0x00])) // not CBOR
    const initiator = await atB.next()
    assert.deepEqual(await initiator.read({ timeoutMs: STEP_MS }), frame)
    await assert.rejects(initiator.read({ timeoutMs: STEP_MS }), { name: 'MalformedFrameError' })
    initiator.abort(new Error('test done'))
    stream.abort(new Error('test done'))
  })
})

describe('opening a pairing channel that cannot be opened', () => {
  let a: SdnetLibp2p
  let c: SdnetLibp2p
  let silent: Server
  const sockets: Socket[] = []

  before(async () => {
    a = await startNode(await generateKeyPair('Ed25519'))
    c = await startNode(await generateKeyPair('Ed25519'))
    // Accepts TCP and never answers, so the Noise handshake hangs.
    silent = createServer((socket) => sockets.push(socket))
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  })

  after(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => silent?.close(resolve))
    await Promise.all([a?.stop(), c?.stop()])
  })

  function silentAddr(): Multiaddr {
    const address = silent.address()
    assert.ok(address !== null && typeof address === 'object')
    return multiaddr(`/ip4/127.0.0.1/tcp/${address.port}`)
  }

  it('rejects DialTimeoutError when the peer does not answer in time', async () => {
    await assert.rejects(openPairChannel(a, silentAddr(), { timeoutMs: 100 }), { name: 'DialTimeoutError' })
  })

  it('rejects with the reason of an aborted signal', async () => {
    const reason = new Error('user cancelled')
    await assert.rejects(
      openPairChannel(a, silentAddr(), { timeoutMs: STEP_MS, signal: AbortSignal.abort(reason) }),
      (err) => err === reason,
    )
  })

  it('rejects DialFailedError when nothing listens', async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const address = closed.address()
    assert.ok(address !== null && typeof address === 'object')
    await new Promise((resolve) => closed.close(resolve))
    await assert.rejects(
      openPairChannel(a, multiaddr(`/ip4/127.0.0.1/tcp/${address.port}`), { timeoutMs: STEP_MS }),
      { name: 'DialFailedError' },
    )
  })

  it('rejects DialFailedError when the peer does not serve the pairing protocol', async () => {
    await assert.rejects(openPairChannel(a, c.getMultiaddrs(), { timeoutMs: STEP_MS }), {
      name: 'DialFailedError',
    })
  })

  it('drops the stream when the channel callback throws, and keeps serving', async () => {
    let calls = 0
    await handlePairProtocol(c, () => {
      calls++
      throw new Error('callback failed')
    })
    for (let i = 0; i < 2; i++) {
      const channel = await openPairChannel(a, c.getMultiaddrs(), { timeoutMs: STEP_MS })
      // The reset may already have arrived: then the write fails the same way the read does.
      await channel.write({ t: 'response', v: 1, sig: bytes(64), mac: bytes(32) }).catch((err: Error) => {
        assert.equal(err.name, 'StreamClosedError')
      })
      await assert.rejects(channel.read({ timeoutMs: STEP_MS }), { name: 'StreamClosedError' })
    }
    assert.equal(calls, 2)
    assert.equal(c.status, 'started')
  })
})
