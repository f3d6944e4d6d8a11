// Builds sdnet's libp2p node: TCP + Noise + Yamux, identify, ping, optional Kad-DHT, and sdnet's mDNS discovery.
// Discovered peers are reported, never dialled: the callers decide whom to dial (PLATFORM.md "mDNS").

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import type { Identify } from '@libp2p/identify'
import { identify } from '@libp2p/identify'
import type { Libp2p, PeerDiscovery, PeerId, PeerInfo, PrivateKey } from '@libp2p/interface'
import type { KadDHT } from '@libp2p/kad-dht'
import { kadDHT, removePublicAddressesMapper } from '@libp2p/kad-dht'
import type { Ping } from '@libp2p/ping'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Libp2pOptions } from 'libp2p'
import { createLibp2p } from 'libp2p'
import type { MdnsComponents, MdnsInit } from './mdns.ts'
import { sdnetMdns } from './mdns.ts'

export interface TransportOptions {
  /** The node's identity; its Ed25519 public key is the device's key. */
  privateKey: PrivateKey
  /** Listen multiaddrs; defaults to every IPv4 interface on a random TCP port. */
  listen?: string[]
  /** mDNS discovery settings, or false to run without it. */
  mdns: false | MdnsInit
  /** Run sdnet's private Kad-DHT (`/sdnet/kad/1.0.0`) as a server. */
  dht: boolean
  /**
   * Ping period for detecting a frozen peer (ms); libp2p's default notices one after ~15 s. The ping may take
   * half to twice the period, so `{ pingInterval: 1_000 }` notices a silently lost peer in about 1-2 s (PLATFORM.md).
   */
  connectionMonitor?: { pingInterval: number; minTimeout?: number; maxTimeout?: number }
}

export type SdnetLibp2p = Libp2p<{ identify: Identify; ping: Ping; dht?: KadDHT }>

export const SDNET_KAD_PROTOCOL = '/sdnet/kad/1.0.0'
const DEFAULT_LISTEN = ['/ip4/0.0.0.0/tcp/0']
// Yamux kills the whole connection when an 11th stream opens before the peer acknowledged the first ones
// (PLATFORM.md "Limits that bite"); pairing, identify, ping and the DHT can open that many right after a dial.
const MAX_EARLY_STREAMS = 64

/**
 * Creates and starts the node. libp2p logs through `debug`, which stays silent unless DEBUG names it
 * (e.g. `DEBUG=libp2p:*,sdnet:*`).
 *
 * @example
 * const node = await createTransport({ privateKey, listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, dht: false })
 * try { console.log(node.getMultiaddrs()) } finally { await node.stop() }
 */
export async function createTransport(opts: TransportOptions): Promise<SdnetLibp2p> {
  const services: Libp2pOptions<{ identify: Identify; ping: Ping; dht?: KadDHT }>['services'] = {
    identify: identify(),
    ping: ping(),
  }
  if (opts.dht) {
    // On a LAN: serve (a client never registers the protocol) and keep private addresses, which the default
    // mapper strips, leaving the routing table empty (PLATFORM.md "Kad-DHT").
    services.dht = kadDHT({
      protocol: SDNET_KAD_PROTOCOL,
      clientMode: false,
      peerInfoMapper: removePublicAddressesMapper,
    })
  }
  // Every discovery source goes here; libp2p merges what they find into the peer store and emits
  // 'peer:discovery' once per new peer.
  const peerDiscovery: Array<(components: MdnsComponents) => PeerDiscovery> =
    opts.mdns === false ? [] : [sdnetMdns(opts.mdns)]
  const monitor = opts.connectionMonitor
  return createLibp2p({
    privateKey: opts.privateKey,
    addresses: { listen: opts.listen ?? DEFAULT_LISTEN },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ maxEarlyStreams: MAX_EARLY_STREAMS })],
    peerDiscovery,
    services,
    ...(monitor && {
      connectionMonitor: {
        pingInterval: monitor.pingInterval,
        pingTimeout: {
          minTimeout: monitor.minTimeout ?? monitor.pingInterval / 2,
          maxTimeout: monitor.maxTimeout ?? monitor.pingInterval * 2,
        },
      },
    }),
  })
}

/**
 * Calls `onPeer` for every peer any discovery source (mDNS, the DHT, an inbound connection) adds to the peer
 * store. libp2p reports a peer once, when it first enters the store; peers found before the call are in
 * `node.peerStore`. Returns the unsubscribe function.
 *
 * @example
 * const stop = discoveredPeers(node, ({ id }) => console.log('found', id.toString()))
 */
export function discoveredPeers(
  node: SdnetLibp2p,
  onPeer: (peer: { id: PeerId; multiaddrs: Multiaddr[] }) => void,
): () => void {
  const listener = (event: CustomEvent<PeerInfo>): void => {
    onPeer({ id: event.detail.id, multiaddrs: event.detail.multiaddrs })
  }
  node.addEventListener('peer:discovery', listener)
  return () => node.removeEventListener('peer:discovery', listener)
}

/**
 * Calls `onConnect` when the first connection to a peer opens and `onDisconnect` when its last one closes
 * (a graceful close, a reset, or the connection monitor giving up on a silent peer). Returns the unsubscribe
 * function.
 *
 * @example
 * const stop = connectionEvents(node, { onConnect: (id) => up(id), onDisconnect: (id) => down(id) })
 */
export function connectionEvents(
  node: Libp2p,
  handlers: { onConnect(peerId: PeerId): void; onDisconnect(peerId: PeerId): void },
): () => void {
  const connected = (event: CustomEvent<PeerId>): void => handlers.onConnect(event.detail)
  const disconnected = (event: CustomEvent<PeerId>): void => handlers.onDisconnect(event.detail)
  node.addEventListener('peer:connect', connected)
  node.addEventListener('peer:disconnect', disconnected)
  return () => {
    node.removeEventListener('peer:connect', connected)
    node.removeEventListener('peer:disconnect', disconnected)
  }
}
