// The `/sdnet/msg/1.0.0` link between real libp2p nodes on 127.0.0.1 (no mDNS, no DHT), and the node's
// connection events and keep-alive.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { SdnetLibp2p } from '../../transport/libp2p-node.ts'
import { connectionEvents, createTransport } from '../../transport/libp2p-node.ts'
import type { Link } from '../../transport/link.ts'
import { handleLinks, MSG_PROTOCOL, openLink } from '../../transport/link.ts'
import type { LinkFrame } from '../../transport/msg-codec.ts'
import {
  decodeSealedMessage,
  encodeLinkFrame,
  encodeLinkFrameParts,
  encodeSealedMessage,
  MAX_BODY_BYTES,
  MAX_LINK_FRAME_BYTES,
} from '../../transport/msg-codec.ts'
import { countTurns } from '../helpers/turns.ts'

const STEP_MS = 5_000 // generous bound for anything that should happen at once on loopback

function bytes(n: number): Uint8Array {
  return new Uint8Array(randomBytes(n))
}

async function startNode(): Promise<SdnetLibp2p> {
  return createTransport({
    privateKey: await generateKeyPair('Ed25519'),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    mdns: false,
    dht: false,
  })
}

// Rejects when `promise` has not settled within STEP_MS.
function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${STEP_MS} ms`)), STEP_MS)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

// A sealed frame whose ciphertext carries its index, so order and content can be checked.
function numbered(n: number, size: number): LinkFrame {
  const ct = new Uint8Array(size)
  new DataView(ct.buffer).setUint32(0, n)
  ct.fill(n & 0xff, 4)
  return { t: 'sealed', n, ct }
}

function assertNumbered(frame: LinkFrame, n: number, size: number): void {
  assert.ok(frame.t === 'sealed', `frame ${n} is ${frame.t}`)
  assert.equal(frame.n, n)
  assert.equal(frame.ct.byteLength, size)
  assert.equal(new DataView(frame.ct.buffer, frame.ct.byteOffset).getUint32(0), n)
  assert.equal(frame.ct[size - 1], n & 0xff)
}

// Hands out the links a node accepts, in order.
function inbox(): { onLink: (link: Link) => void; next: () => Promise<Link> } {
  const ready: Link[] = []
  const waiting: Array<(link: Link) => void> = []
  return {
    onLink(link) {
      const waiter = waiting.shift()
      if (waiter) waiter(link)
      else ready.push(link)
    },
    next() {
      const link = ready.shift()
      if (link) return Promise.resolve(link)
      const { promise, resolve } = Promise.withResolvers<Link>()
      waiting.push(resolve)
      return within(promise, 'an inbound link')
    },
  }
}

function abortAll(...links: Link[]): void {
  for (const link of links) link.abort(new Error('test done'))
}

describe('link over libp2p', () => {
  let a: SdnetLibp2p
  let b: SdnetLibp2p
  let stranger: SdnetLibp2p
  const atB = inbox()
  const askedB: PeerId[] = []

  before(async () => {
    ;[a, b, stranger] = await Promise.all([startNode(), startNode(), startNode()])
    // B is paired with A only.
    await handleLinks(
      b,
      (peer) => {
        askedB.push(peer)
        return peer.equals(a.peerId)
      },
      atB.onLink,
    )
  })

  after(async () => {
    await Promise.all([a?.stop(), b?.stop(), stranger?.stop()])
  })

  async function openPair(): Promise<{ opener: Link; acceptor: Link }> {
    const opener = await openLink(a, b.getMultiaddrs(), { timeoutMs: STEP_MS })
    // The acceptor's handler runs once the opener's first bytes arrive.
    return { opener, acceptor: await atB.next() }
  }

  it('carries a handshake both ways, with deadlines, naming the authenticated peers', async () => {
    const opener = await openLink(a, b.getMultiaddrs(), { timeoutMs: STEP_MS })
    assert.ok(opener.remotePeer.equals(b.peerId))
    assert.deepEqual(opener.remotePeerIdBytes, b.peerId.toMultihash().bytes)
    assert.ok(opener.connection.remotePeer.equals(b.peerId))

    const hello: LinkFrame = { t: 'hello', v: 1, eph: bytes(32), nonce: bytes(32), sig: bytes(64) }
    await opener.write(hello)
    const acceptor = await atB.next()
    assert.ok(acceptor.remotePeer.equals(a.peerId))
    assert.deepEqual(acceptor.remotePeerIdBytes, a.peerId.toMultihash().bytes)
    assert.deepEqual(await acceptor.read({ timeoutMs: STEP_MS }), hello)

    // Nothing more has come: the read times out, and the link stays usable.
    await assert.rejects(opener.read({ timeoutMs: 50 }), { name: 'ReadTimeoutError' })
    const reason = new Error('handshake cancelled')
    const controller = new AbortController()
    const reading = opener.read({ timeoutMs: STEP_MS, signal: controller.signal })
    controller.abort(reason)
    await assert.rejects(reading, (err) => err === reason)

    const welcome: LinkFrame = { t: 'welcome', v: 1, eph: bytes(32), nonce: bytes(32), sig: bytes(64) }
    await acceptor.write(welcome)
    assert.deepEqual(await opener.read({ timeoutMs: STEP_MS }), welcome)
    abortAll(opener, acceptor)
  })

  it('opens by peer id over the existing connection', async () => {
    await a.dial(b.getMultiaddrs())
    const opener = await openLink(a, b.peerId, { timeoutMs: STEP_MS })
    await opener.write(numbered(1, 16))
    const acceptor = await atB.next()
    assertNumbered(await acceptor.read({ timeoutMs: STEP_MS }), 1, 16)
    assert.equal(a.getConnections(b.peerId).length, 1)
    abortAll(opener, acceptor)
  })

  it('delivers 10 000 small frames in order through frames(), written one by one and in batches', async () => {
    const { opener, acceptor } = await openPair()
    const count = 10_000
    const size = 80 // a 64-byte body once sealed
    const writing = (async () => {
      for (let i = 0; i < count / 2; i++) await opener.write(numbered(i, size))
      for (let i = count / 2; i < count; i += 100) {
        await opener.writeMany(Array.from({ length: 100 }, (_, k) => numbered(i + k, size)))
      }
    })()
    let received = 0
    for await (const frame of acceptor.frames()) {
      assertNumbered(frame, received, size)
      if (++received === count) break
    }
    await writing
    assert.equal(received, count)
    abortAll(opener, acceptor)
  })

  it('holds a writer back while the reader does not read, then delivers every frame in order', async () => {
    const { opener, acceptor } = await openPair()
    // 40 MB: more than the receiver queues (4 MiB) plus the largest yamux window (16 MiB) can hold.
    const count = 10_000
    const size = 4096
    let written = 0
    const stalled = Promise.withResolvers<number>()
    const writing = (async () => {
      for (let i = 0; i < count; i++) {
        const done = opener.write(numbered(i, size))
        // A write still pending after a while means the writer is being held back (absence of progress has no
        // event to wait for).
        const timer = setTimeout(() => stalled.resolve(written), 200)
        await done
        clearTimeout(timer)
        written++
      }
    })()
    const writtenWhenStalled = await Promise.race([
      stalled.promise,
      writing.then(() => {
        throw new Error(`all ${count} writes completed while nobody read: no backpressure`)
      }),
    ])
    assert.ok(writtenWhenStalled < count)

    let received = 0
    for await (const frame of acceptor.frames()) {
      assertNumbered(frame, received, size)
      if (++received === count) break
    }
    await within(writing, 'the writer finishing')
    assert.equal(written, count)
    abortAll(opener, acceptor)
  })

  it('carries a frame with a 1 MiB body', async () => {
    const { opener, acceptor } = await openPair()
    const body = bytes(MAX_BODY_BYTES)
    const plaintext = encodeSealedMessage({ t: 'msg', protocol: 'files/1', body })
    const ct = new Uint8Array(plaintext.byteLength + 16) // as if sealed: plaintext plus a 16-byte tag
    ct.set(plaintext)
    await opener.write({ t: 'sealed', n: 3, ct })
    await opener.write(numbered(4, 16))
    const frame = await acceptor.read({ timeoutMs: STEP_MS })
    assert.ok(frame.t === 'sealed')
    assert.equal(frame.n, 3)
    assert.deepEqual(decodeSealedMessage(frame.ct.subarray(0, -16)), { t: 'msg', protocol: 'files/1', body })
    assertNumbered(await acceptor.read({ timeoutMs: STEP_MS }), 4, 16)
    abortAll(opener, acceptor)
  })

  it('carries a sealed frame written in parts as one frame, between small ones', async () => {
    const { opener, acceptor } = await openPair()
    const parts = [bytes(5), bytes(70_000), bytes(3), bytes(16)]
    await opener.writeMany([numbered(0, 16), { t: 'sealed', n: 1, ct: parts }, numbered(2, 16)])
    assertNumbered(await acceptor.read({ timeoutMs: STEP_MS }), 0, 16)
    const frame = await acceptor.read({ timeoutMs: STEP_MS })
    assert.ok(frame.t === 'sealed')
    assert.equal(frame.n, 1)
    assert.deepEqual(frame.ct, new Uint8Array(Buffer.concat(parts)))
    assertNumbered(await acceptor.read({ timeoutMs: STEP_MS }), 2, 16)
    abortAll(opener, acceptor)
  })

  // A raw stream to B, so the test can send what a Link would refuse to.
  // Sends frames `from` to `to` (exclusive), numbered, in one piece.
  function sendNumbered(stream: Stream, from: number, to: number, size: number): void {
    const frames = Array.from({ length: to - from }, (_, i) => encodeLinkFrameParts(numbered(from + i, size)))
    stream.send(new Uint8Array(Buffer.concat(frames.flat())))
  }

  // Everything sent so far has been handed to the connection and processed by B: a ping goes behind it.
  async function barrier(stream: Stream): Promise<void> {
    if (stream.writeBufferLength > 0)
      await within(new Promise((done) => stream.addEventListener('idle', done, { once: true })), 'idle')
    await a.services.ping.ping(b.peerId, { signal: AbortSignal.timeout(STEP_MS) })
  }

  async function rawToB(): Promise<{ stream: Stream; acceptor: Link }> {
    const stream = await a.dialProtocol(b.getMultiaddrs(), MSG_PROTOCOL)
    return { stream, acceptor: await atB.next() }
  }

  it('ends frames() with OversizedFrameError after the frames before it, and keeps serving', async () => {
    const { stream, acceptor } = await rawToB()
    const raw = lpStream(stream)
    await raw.write(encodeLinkFrame(numbered(0, 16)))
    await raw.write(new Uint8Array(MAX_LINK_FRAME_BYTES + 1))
    const seen: LinkFrame[] = []
    await assert.rejects(
      (async () => {
        for await (const frame of acceptor.frames()) seen.push(frame)
      })(),
      { name: 'OversizedFrameError' },
    )
    assert.equal(seen.length, 1)
    assertNumbered(seen[0] as LinkFrame, 0, 16)
    await assert.rejects(acceptor.read({ timeoutMs: STEP_MS }), { name: 'OversizedFrameError' })

    // The link is still writable, so the acceptor can say why before it closes.
    await acceptor.write(numbered(9, 16))
    const reply = await raw.read({ signal: AbortSignal.timeout(STEP_MS) })
    assert.deepEqual(new Uint8Array(reply.subarray()), encodeLinkFrame(numbered(9, 16)))
    acceptor.abort(new Error('test done'))
    stream.abort(new Error('test done'))

    const { opener, acceptor: next } = await openPair()
    await opener.write(numbered(1, 16))
    assertNumbered(await next.read({ timeoutMs: STEP_MS }), 1, 16)
    abortAll(opener, next)
  })

  it('ends frames() with MalformedFrameError for bytes that are not a frame', async () => {
    const { stream, acceptor } = await rawToB()
    const raw = lpStream(stream)
    await raw.write(encodeLinkFrame(numbered(0, 16)))
    await raw.write(Uint8Array.of(0xff, 0x00))
    await raw.write(encodeLinkFrame(numbered(1, 16))) // after a bad frame nothing is trusted
    assertNumbered(await acceptor.read({ timeoutMs: STEP_MS }), 0, 16)
    await assert.rejects(acceptor.read({ timeoutMs: STEP_MS }), { name: 'MalformedFrameError' })
    const iterator = acceptor.frames()[Symbol.asyncIterator]()
    await assert.rejects(iterator.next(), { name: 'MalformedFrameError' })
    acceptor.abort(new Error('test done'))
    stream.abort(new Error('test done'))
  })

  for (const [what, prefix, error] of [
    ['not minimal', [0x81, 0x00], 'MalformedFrameError'],
    ['longer than the cap needs', [0x80, 0x80, 0x80, 0x01], 'OversizedFrameError'],
  ] as const) {
    it(`ends frames() at a length prefix that is ${what}`, async () => {
      const { stream, acceptor } = await rawToB()
      stream.send(Uint8Array.from(prefix))
      const iterator = acceptor.frames()[Symbol.asyncIterator]()
      await assert.rejects(iterator.next(), { name: error })
      acceptor.abort(new Error('test done'))
      stream.abort(new Error('test done'))
    })
  }

  it('reassembles frames split at every byte, including inside the length prefix', async () => {
    const { stream, acceptor } = await rawToB()
    const frames = [numbered(0, 16), numbered(1, 300), numbered(2, 70_000)]
    const wire = Buffer.concat(
      frames.map((frame) => {
        const encoded = encodeLinkFrame(frame)
        const prefix: number[] = []
        for (let n = encoded.byteLength; ; n = Math.floor(n / 128)) {
          if (n < 128) {
            prefix.push(n)
            break
          }
          prefix.push((n & 0x7f) | 0x80)
        }
        return Buffer.concat([Uint8Array.from(prefix), encoded])
      }),
    )
    // One byte per send for the two small frames, then the rest in uneven pieces.
    let at = 0
    for (; at < 340; at++) stream.send(wire.subarray(at, at + 1))
    for (const piece of [3, 1000, 65_536]) {
      stream.send(wire.subarray(at, at + piece))
      at += piece
    }
    stream.send(wire.subarray(at))
    assertNumbered(await acceptor.read({ timeoutMs: STEP_MS }), 0, 16)
    assertNumbered(await acceptor.read({ timeoutMs: STEP_MS }), 1, 300)
    assertNumbered(await acceptor.read({ timeoutMs: STEP_MS }), 2, 70_000)
    acceptor.abort(new Error('test done'))
    stream.abort(new Error('test done'))
  })

  it('resets the link of a peer that accept refuses', async () => {
    const link = await openLink(stranger, b.getMultiaddrs(), { timeoutMs: STEP_MS })
    await assert.rejects(link.read({ timeoutMs: STEP_MS }), { name: 'LinkClosedError' })
    await within(link.closed, 'closed')
    await assert.rejects(link.write(numbered(0, 16)), { name: 'LinkClosedError' })
    assert.ok(askedB.some((peer) => peer.equals(stranger.peerId)))
    assert.equal(b.status, 'started')
  })

  it('resets the link when the link callback throws, and keeps serving', async () => {
    await handleLinks(
      stranger,
      () => true,
      () => {
        throw new Error('callback failed')
      },
    )
    for (let i = 0; i < 2; i++) {
      const link = await openLink(a, stranger.getMultiaddrs(), { timeoutMs: STEP_MS })
      await assert.rejects(link.read({ timeoutMs: STEP_MS }), { name: 'LinkClosedError' })
    }
    assert.equal(stranger.status, 'started')
  })

  it('resolves closed on both sides when the opener closes, after delivering what it wrote', async () => {
    const { opener, acceptor } = await openPair()
    await opener.write(numbered(0, 16))
    await opener.writeMany([numbered(1, 16), numbered(2, 20_000)])
    await within(opener.close(), 'close')
    await within(Promise.all([opener.closed, acceptor.closed]), 'closed on both sides')
    const received: LinkFrame[] = []
    for await (const frame of acceptor.frames()) received.push(frame)
    assert.deepEqual(
      received.map((frame) => frame.t === 'sealed' && frame.n),
      [0, 1, 2],
    )
    // A clean end on both sides (a reset would be the cause).
    const clean = (err: Error) => err.name === 'LinkClosedError' && err.cause === undefined
    await assert.rejects(acceptor.read({ timeoutMs: STEP_MS }), clean)
    await assert.rejects(opener.read({ timeoutMs: STEP_MS }), clean)
    await assert.rejects(opener.write(numbered(3, 16)), { name: 'LinkClosedError' })
    await assert.rejects(acceptor.write(numbered(3, 16)), { name: 'LinkClosedError' })
  })

  it('delivers everything a peer wrote before closing, even what waited in a paused stream', async () => {
    const { stream, acceptor } = await rawToB()
    const size = 4096
    const send = (from: number, to: number) => sendNumbered(stream, from, to, size)
    // 4 MiB of ciphertext fills the acceptor's queue to its limit, one more frame pauses the stream.
    const full = (4 * 1024 * 1024) / size
    send(0, full)
    await barrier(stream)
    send(full, full + 1)
    await barrier(stream)
    // These wait in the paused stream (within the yamux window the acceptor granted) when the close arrives.
    send(full + 1, full + 33)
    await within(stream.close(), 'close')
    await within(acceptor.closed, 'closed')
    let received = 0
    for await (const frame of acceptor.frames()) assertNumbered(frame, received++, size)
    assert.equal(received, full + 33)
  })

  it('stays paused when the frames buffered during a pause fill the queue again as it resumes', async () => {
    // libp2p's resume() hands over what the stream buffered, then reopens the yamux window: a pause made during
    // that hand-over must hold, or the window stays open under a paused stream until libp2p resets it.
    const { stream, acceptor } = await rawToB()
    const inbound = b
      .getConnections(a.peerId)
      .flatMap((connection) => connection.streams)
      .find((candidate) => candidate.id === stream.id && candidate.direction === 'inbound')
    assert.ok(inbound instanceof YamuxStream, 'the acceptor reads a yamux stream')
    const windowClosed = () => inbound.readStatus === 'paused' && inbound.state === StreamState.Paused
    // Small frames: the queue's frame limit (4096) is what pauses. One past it pauses the stream.
    const size = 16
    const full = 4096
    sendNumbered(stream, 0, full + 1, size)
    await barrier(stream)
    assert.ok(windowClosed(), 'paused with the window closed')
    // 2200 more frames (79 KB; the 256 KiB window that the first 147 KB left open takes them) wait in the paused
    // stream.
    const total = full + 1 + 2200
    sendNumbered(stream, full + 1, total, size)
    assert.equal(stream.writeBufferLength, 0, 'the window took all 2200 frames')
    await barrier(stream)
    // Reading down to half the limit resumes; the 2200 waiting frames fill the queue past the limit again.
    const reader = acceptor.frames()[Symbol.asyncIterator]()
    let received = 0
    for (; received < full + 1 - full / 2; received++) {
      const next = await reader.next()
      assert.ok(next.done !== true)
      assertNumbered(next.value, received, size)
    }
    assert.ok(windowClosed(), 'paused again, and the window closed again')
    // A burst well past what a stream may buffer (~17 MiB) is held back by the window, then read in full.
    const burst = 6_000
    sendNumbered(stream, total, total + burst, 4096)
    for (; received < total + burst; received++) {
      const next = await within(reader.next(), `frame ${received}`)
      assert.ok(next.done !== true, `the link ended after ${received} frames`)
      assertNumbered(next.value, received, received < total ? size : 4096)
    }
    acceptor.abort(new Error('test done'))
    stream.abort(new Error('test done'))
  })

  it('gives the event loop a turn for every MiB a writer sends without one', async () => {
    const { opener, acceptor } = await openPair()
    const turns = countTurns()
    // 3 MiB in 64 KiB frames, each write awaited: below the 4 MiB at which writers wait for the stream to drain,
    // so without these turns every write would resolve within this one.
    const count = 48
    for (let i = 0; i < count; i++) await opener.write(numbered(i, 64 * 1024))
    const seen = turns.stop()
    assert.ok(seen >= 2, `${seen} turns while 3 MiB were written`)
    let received = 0
    for await (const frame of acceptor.frames()) {
      assertNumbered(frame, received, 64 * 1024)
      if (++received === count) break
    }
    abortAll(opener, acceptor)
  })

  it('resolves closed on both sides when the acceptor closes', async () => {
    const { opener, acceptor } = await openPair()
    await acceptor.write(numbered(0, 16))
    await within(acceptor.close(), 'close')
    await within(Promise.all([opener.closed, acceptor.closed]), 'closed on both sides')
    assertNumbered(await opener.read({ timeoutMs: STEP_MS }), 0, 16)
    const rest: LinkFrame[] = []
    for await (const frame of opener.frames()) rest.push(frame)
    assert.deepEqual(rest, [])
    const clean = (err: Error) => err.name === 'LinkClosedError' && err.cause === undefined
    await assert.rejects(opener.read({ timeoutMs: STEP_MS }), clean)
    await assert.rejects(acceptor.read({ timeoutMs: STEP_MS }), clean)
  })

  it('resolves closed on both sides when one side aborts, failing reads and writes', async () => {
    const { opener, acceptor } = await openPair()
    const pendingRead = acceptor.read({ timeoutMs: STEP_MS })
    opener.abort(new Error('gone'))
    await within(Promise.all([opener.closed, acceptor.closed]), 'closed on both sides')
    // The peer sees a reset.
    await assert.rejects(
      pendingRead,
      (err: Error) => err.name === 'LinkClosedError' && err.cause !== undefined,
    )
    await assert.rejects(opener.read({ timeoutMs: STEP_MS }), { name: 'LinkClosedError' })
    await assert.rejects(acceptor.write(numbered(0, 16)), { name: 'LinkClosedError' })
  })

  it('resolves closed when the connection drops', async () => {
    const { opener, acceptor } = await openPair()
    await a.hangUp(b.peerId)
    await within(Promise.all([opener.closed, acceptor.closed]), 'closed on both sides')
    await assert.rejects(opener.read({ timeoutMs: STEP_MS }), { name: 'LinkClosedError' })
  })

  it('refuses to write an invalid frame and sends nothing', async () => {
    const { opener, acceptor } = await openPair()
    const bad = { t: 'sealed', n: -1, ct: bytes(16) } as LinkFrame
    await assert.rejects(opener.write(bad), { name: 'MalformedFrameError' })
    await assert.rejects(opener.writeMany([numbered(0, 16), bad]), { name: 'MalformedFrameError' })
    await opener.write(numbered(1, 16))
    assertNumbered(await acceptor.read({ timeoutMs: STEP_MS }), 1, 16)
    abortAll(opener, acceptor)
  })

  it('rejects LinkOpenFailedError for a peer that does not serve the protocol', async () => {
    await assert.rejects(openLink(b, a.getMultiaddrs(), { timeoutMs: STEP_MS }), {
      name: 'LinkOpenFailedError',
    })
  })

  it('rejects with the reason of an aborted signal', async () => {
    const reason = new Error('user cancelled')
    await assert.rejects(
      openLink(a, b.getMultiaddrs(), { timeoutMs: STEP_MS, signal: AbortSignal.abort(reason) }),
      (err) => err === reason,
    )
  })
})

describe('connection events and keep-alive', () => {
  let a: SdnetLibp2p
  const others: SdnetLibp2p[] = []

  before(async () => {
    a = await startNode()
  })

  after(async () => {
    await Promise.all([a?.stop(), ...others.map((node) => node.stop())])
  })

  async function another(): Promise<SdnetLibp2p> {
    const node = await startNode()
    others.push(node)
    return node
  }

  // Resolves with the next peer id a handler reports for `peer`.
  function waiter(): {
    report: (peerId: PeerId) => void
    next: (peer: PeerId, what: string) => Promise<void>
  } {
    const seen: PeerId[] = []
    let wake: (() => void) | undefined
    return {
      report(peerId) {
        seen.push(peerId)
        wake?.()
      },
      async next(peer, what) {
        const found = (): boolean => {
          const index = seen.findIndex((id) => id.equals(peer))
          if (index >= 0) seen.splice(index, 1)
          return index >= 0
        }
        await within(
          (async () => {
            while (!found()) await new Promise<void>((resolve) => (wake = resolve))
          })(),
          what,
        )
      },
    }
  }

  it('reports a connect, then the disconnect of a peer that stops', async () => {
    const c = await another()
    const connects = waiter()
    const disconnects = waiter()
    const unsubscribe = connectionEvents(a, { onConnect: connects.report, onDisconnect: disconnects.report })
    try {
      await a.dial(c.getMultiaddrs())
      await connects.next(c.peerId, 'peer:connect')
      await c.stop()
      await disconnects.next(c.peerId, 'peer:disconnect after a graceful stop')
    } finally {
      unsubscribe()
    }
  })
})
