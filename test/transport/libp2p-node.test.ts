// Node construction on 127.0.0.1: services wired as configured, and discovery reported without dialling.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { SdnetLibp2p } from '../../transport/libp2p-node.ts'
import { createTransport, discoveredPeers, SDNET_KAD_PROTOCOL } from '../../transport/libp2p-node.ts'

const LOOPBACK_LISTEN = ['/ip4/127.0.0.1/tcp/0']
const STEP_MS = 5_000

/** Adds `count` loopback nodes without mDNS to `nodes`, one by one, so a failure part way still stops those made. */
async function startNodes(nodes: SdnetLibp2p[], count: number, opts: { dht: boolean }): Promise<void> {
  for (let i = 0; i < count; i++) {
    nodes.push(
      await createTransport({
        privateKey: await generateKeyPair('Ed25519'),
        listen: LOOPBACK_LISTEN,
        mdns: false,
        dht: opts.dht,
      }),
    )
  }
}

describe('createTransport', () => {
  it('starts with the DHT serving /sdnet/kad/1.0.0 and stops', async () => {
    const privateKey = await generateKeyPair('Ed25519')
    const node = await createTransport({ privateKey, listen: LOOPBACK_LISTEN, mdns: false, dht: true })
    try {
      assert.equal(node.status, 'started')
      assert.ok(node.peerId.equals(peerIdFromPrivateKey(privateKey)))
      assert.equal(node.services.dht?.getMode(), 'server')
      assert.ok(node.getProtocols().includes(SDNET_KAD_PROTOCOL))
      assert.ok(!node.getProtocols().includes('/ipfs/kad/1.0.0'))
      assert.ok(node.getMultiaddrs().every((m) => m.toString().startsWith('/ip4/127.0.0.1/tcp/')))
      assert.equal(node.getMultiaddrs().length, 1)
    } finally {
      await node.stop()
    }
    assert.equal(node.status, 'stopped')
  })

  it('starts without the DHT when not asked for, with identify and ping', async () => {
    const node = await createTransport({
      privateKey: await generateKeyPair('Ed25519'),
      listen: LOOPBACK_LISTEN,
      mdns: false,
      dht: false,
      connectionMonitor: { pingInterval: 1_000 },
    })
    try {
      assert.equal(node.services.dht, undefined)
      assert.ok(!node.getProtocols().includes(SDNET_KAD_PROTOCOL))
      assert.ok(node.getProtocols().includes('/ipfs/id/1.0.0'))
      assert.ok(node.getProtocols().includes('/ipfs/ping/1.0.0'))
    } finally {
      await node.stop()
    }
  })

  it('finds a peer through a third node, keeping loopback addresses in the DHT', async () => {
    const nodes: SdnetLibp2p[] = []
    try {
      await startNodes(nodes, 3, { dht: true })
      // a and c know only b; with libp2p's default mapper b would drop their private addresses.
      const [a, b, c] = nodes as [SdnetLibp2p, SdnetLibp2p, SdnetLibp2p]
      await a.dial(b.getMultiaddrs())
      await c.dial(b.getMultiaddrs())
      // The first lookups can miss while the tables settle (PLATFORM.md): a few bounded attempts.
      let found: Multiaddr[] = []
      for (let attempt = 0; attempt < 3 && found.length === 0; attempt++) {
        found = await a.peerRouting
          .findPeer(c.peerId, { signal: AbortSignal.timeout(STEP_MS) })
          .then((info) => info.multiaddrs)
          .catch(() => [])
      }
      assert.deepEqual(
        found.map((m) => m.toString()),
        c.getMultiaddrs().map((m) => m.decapsulate('/p2p').toString()),
      )
    } finally {
      await Promise.all(nodes.map((n) => n.stop()))
    }
  })

  it('lets two DHT nodes connect and ping each other', async () => {
    const nodes: SdnetLibp2p[] = []
    try {
      await startNodes(nodes, 2, { dht: true })
      const [a, b] = nodes as [SdnetLibp2p, SdnetLibp2p]
      const rtt = await a.services.ping.ping(b.getMultiaddrs(), { signal: AbortSignal.timeout(STEP_MS) })
      assert.ok(rtt >= 0)
      assert.equal(a.getConnections(b.peerId).length, 1)
    } finally {
      await Promise.all(nodes.map((n) => n.stop()))
    }
  })
})

describe('discoveredPeers', () => {
  it('reports a peer that connected to us, and nothing after unsubscribing', async () => {
    const nodes: SdnetLibp2p[] = []
    try {
      await startNodes(nodes, 3, { dht: false })
      const [a, b, c] = nodes as [SdnetLibp2p, SdnetLibp2p, SdnetLibp2p]
      const seen: PeerId[] = []
      const { promise, resolve } = Promise.withResolvers<{ id: PeerId; multiaddrs: Multiaddr[] }>()
      const unsubscribe = discoveredPeers(b, (peer) => {
        seen.push(peer.id)
        if (peer.id.equals(a.peerId)) resolve(peer)
      })
      await a.dial(b.getMultiaddrs())
      const found = await Promise.race([
        promise,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error('no discovery event')), STEP_MS).unref(),
        ),
      ])
      assert.ok(found.id.equals(a.peerId))
      unsubscribe()

      // c becomes known to b once identify has run; the listener is gone by then.
      const identified = new Promise<void>((done) => {
        b.addEventListener('peer:identify', (event) => {
          if (event.detail.peerId.equals(c.peerId)) done()
        })
      })
      await c.dial(b.getMultiaddrs())
      await identified
      assert.ok(await b.peerStore.has(c.peerId))
      assert.deepEqual(
        seen.map((id) => id.toString()),
        [a.peerId.toString()],
      )
    } finally {
      await Promise.all(nodes.map((n) => n.stop()))
    }
  })
})
