// mDNS in the default namespace, always confined to 127.0.0.1 (the only multicast allowed here).
// Each test uses its own service tag, so concurrent runs and other tests on loopback do not see each other.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { RemoteInfo } from 'node:dgram'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { ComponentLogger, Logger, PeerId, PeerInfo, Startable } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import { multiaddr } from '@multiformats/multiaddr'
import multicastDns from 'multicast-dns'
import type { SdnetLibp2p } from '../../transport/libp2p-node.ts'
import { createTransport, discoveredPeers } from '../../transport/libp2p-node.ts'
import { sdnetMdns } from '../../transport/mdns.ts'

const LOOPBACK = '127.0.0.1'
const DISCOVERY_TIMEOUT_MS = 5_000

function uniqueTag(): string {
  return `_sdnet-test-${randomBytes(4).toString('hex')}._udp.local`
}

function silentLogger(): ComponentLogger {
  const log: Logger = Object.assign(() => {}, {
    error: () => {},
    trace: () => {},
    enabled: false,
    newScope: () => log,
  })
  return { forComponent: () => log }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

// Resolves with the first discovery of `peer`; also when `node` already knew it before the call.
async function discovery(node: SdnetLibp2p, peer: PeerId): Promise<{ id: PeerId; multiaddrs: Multiaddr[] }> {
  const { promise, resolve } = Promise.withResolvers<{ id: PeerId; multiaddrs: Multiaddr[] }>()
  const unsubscribe = discoveredPeers(node, (found) => {
    if (found.id.equals(peer)) resolve(found)
  })
  try {
    if (await node.peerStore.has(peer)) {
      const known = await node.peerStore.get(peer)
      return { id: known.id, multiaddrs: known.addresses.map((a) => a.multiaddr) }
    }
    return await withTimeout(promise, DISCOVERY_TIMEOUT_MS, `discovery of ${peer}`)
  } finally {
    unsubscribe()
  }
}

// A bare multicast-dns socket confined to loopback, standing in for a peer in the tests below.
async function loopbackProbe(): Promise<multicastDns.MulticastDNS> {
  const probe = multicastDns({ interface: LOOPBACK, bind: '0.0.0.0' })
  probe.on('warning', () => {})
  await new Promise<void>((resolve, reject) => {
    probe.once('ready', resolve)
    probe.once('error', reject)
  })
  return probe
}

function destroy(probe: multicastDns.MulticastDNS): Promise<void> {
  return new Promise((resolve) => probe.destroy(() => resolve()))
}

function txtStrings(packet: multicastDns.ResponsePacket): string[] {
  return [...packet.answers, ...packet.additionals].flatMap((a) =>
    a.type === 'TXT' ? [a.data].flat().map((d) => d.toString()) : [],
  )
}

describe('sdnet mDNS confined to 127.0.0.1', () => {
  it('lets two nodes discover each other with their loopback addresses', async () => {
    const serviceTag = uniqueTag()
    const nodes: SdnetLibp2p[] = []
    try {
      const options = {
        listen: [`/ip4/${LOOPBACK}/tcp/0`],
        mdns: { serviceTag, interface: LOOPBACK },
        dht: false,
      }
      const a = await createTransport({ ...options, privateKey: await generateKeyPair('Ed25519') })
      nodes.push(a)
      const b = await createTransport({ ...options, privateKey: await generateKeyPair('Ed25519') })
      nodes.push(b)
      const [bSeenByA, aSeenByB] = await Promise.all([discovery(a, b.peerId), discovery(b, a.peerId)])
      assert.deepEqual(
        bSeenByA.multiaddrs.map((m) => m.toString()),
        b.getMultiaddrs().map((m) => m.decapsulate('/p2p').toString()),
      )
      assert.deepEqual(
        aSeenByB.multiaddrs.map((m) => m.toString()),
        a.getMultiaddrs().map((m) => m.decapsulate('/p2p').toString()),
      )
      // Discovery alone never dials (the callers pick who dials).
      assert.equal(a.getConnections(b.peerId).length, 0)
    } finally {
      await Promise.all(nodes.map((n) => n.stop()))
    }
  })

  it('announces only loopback addresses, from 127.0.0.1, when asked', async () => {
    const serviceTag = uniqueTag()
    const self = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const addresses = ['/ip4/127.0.0.1/tcp/4001', '/ip4/192.168.1.20/tcp/4001', '/ip4/10.0.0.5/tcp/4001']
    const service = sdnetMdns({ serviceTag, interface: LOOPBACK })({
      addressManager: { getAddresses: () => addresses.map((a) => multiaddr(`${a}/p2p/${self}`)) },
      logger: silentLogger(),
    }) as unknown as Startable
    const probe = await loopbackProbe()
    try {
      const answered = new Promise<{ packet: multicastDns.ResponsePacket; rinfo: RemoteInfo }>((resolve) => {
        probe.on('response', (packet, rinfo) => {
          if (packet.answers.some((a) => a.type === 'PTR' && a.name === serviceTag))
            resolve({ packet, rinfo })
        })
      })
      await service.start()
      await service.afterStart?.()
      // The service also answers its own start-up query; ask explicitly so the test does not depend on that.
      probe.query({ questions: [{ name: serviceTag, type: 'PTR' }] })
      const { packet, rinfo } = await withTimeout(answered, DISCOVERY_TIMEOUT_MS, 'an mDNS answer')
      assert.equal(rinfo.address, LOOPBACK)
      assert.deepEqual(txtStrings(packet), [`dnsaddr=/ip4/127.0.0.1/tcp/4001/p2p/${self}`])
    } finally {
      await service.stop()
      await destroy(probe)
    }
  })

  it('reports a peer with only its addresses on the confined subnet', async () => {
    const serviceTag = uniqueTag()
    const remote = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const service = sdnetMdns({ serviceTag, interface: LOOPBACK })({
      addressManager: { getAddresses: () => [] },
      logger: silentLogger(),
    })
    const startable = service as unknown as Startable
    const probe = await loopbackProbe()
    try {
      // Answer the service's start-up query as another sdnet node would, with a LAN and a loopback address.
      probe.on('query', (query) => {
        if (!query.questions.some((q) => q.name === serviceTag && q.type === 'PTR')) return
        const name = `remote.${serviceTag}`
        probe.respond([
          { name: serviceTag, type: 'PTR', class: 'IN', ttl: 120, data: name },
          {
            name,
            type: 'TXT',
            class: 'IN',
            ttl: 120,
            data: `dnsaddr=/ip4/192.168.1.30/tcp/4001/p2p/${remote}`,
          },
          { name, type: 'TXT', class: 'IN', ttl: 120, data: `dnsaddr=/ip4/127.0.0.1/tcp/4002/p2p/${remote}` },
        ])
      })
      const found = new Promise<PeerInfo>((resolve) => {
        service.addEventListener('peer', (event) => resolve(event.detail))
      })
      await startable.start()
      await startable.afterStart?.()
      const peer = await withTimeout(found, DISCOVERY_TIMEOUT_MS, 'the peer event')
      assert.ok(peer.id.equals(remote))
      assert.deepEqual(
        peer.multiaddrs.map((m) => m.toString()),
        ['/ip4/127.0.0.1/tcp/4002'],
      )
    } finally {
      await startable.stop()
      await destroy(probe)
    }
  })

  it('refuses an interface address that no local interface has', async () => {
    const service = sdnetMdns({ serviceTag: uniqueTag(), interface: '203.0.113.77' })({
      addressManager: { getAddresses: () => [] },
      logger: silentLogger(),
    }) as unknown as Startable
    await assert.rejects(async () => service.start(), { name: 'MdnsInterfaceNotFoundError' })
    await service.stop()
  })
})
