// mDNS peer discovery with sdnet's own service tag, optionally confined to one interface address.
//
// @libp2p/mdns cannot be confined: it joins the multicast group on every interface and sends on the OS default
// one. This service speaks the same records (a PTR for the service tag, TXT `dnsaddr=<multiaddr>/p2p/<id>`; the
// record logic follows node_modules/@libp2p/mdns/dist/src/query.js) over multicast-dns, which can be told the
// interface to join and send on. Confined to an address, it also announces and accepts only addresses in that
// interface's subnet, so a daemon confined to 127.0.0.1 is invisible to the LAN and deaf to it.

import { randomBytes } from 'node:crypto'
import type { RemoteInfo } from 'node:dgram'
import { networkInterfaces } from 'node:os'
import type {
  ComponentLogger,
  Logger,
  PeerDiscovery,
  PeerDiscoveryEvents,
  PeerInfo,
  Startable,
} from '@libp2p/interface'
import { peerDiscoverySymbol, serviceCapabilities, TypedEventEmitter } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { isPrivate } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'
import { CODE_IP4, CODE_P2P, multiaddr } from '@multiformats/multiaddr'
import multicastDns from 'multicast-dns'
import { MdnsInterfaceNotFoundError } from './errors.ts'

/** Keeps sdnet daemons apart from other libp2p apps on the LAN (those use `_p2p._udp.local`). */
export const SDNET_MDNS_SERVICE_TAG = '_sdnet-p2p._udp.local'

export interface MdnsInit {
  /** DNS-SD service name to query and answer; defaults to SDNET_MDNS_SERVICE_TAG. */
  serviceTag?: string
  /** IPv4 address of the only interface to use (e.g. '127.0.0.1'); every interface when absent. */
  interface?: string
  /** Milliseconds between queries; defaults to 10 s like @libp2p/mdns. */
  interval?: number
  /** UDP port; defaults to 5353. */
  port?: number
}

/** The parts of libp2p's components this service uses. */
export interface MdnsComponents {
  addressManager: { getAddresses(): Multiaddr[] }
  logger: ComponentLogger
}

const DEFAULT_INTERVAL_MS = 10_000
const MDNS_PORT = 5353
const RECORD_TTL_S = 120 // as @libp2p/mdns
const MAX_TXT_BYTES = 255 // RFC 6763 6.1: one TXT string is at most 255 bytes

/** Factory for libp2p's `peerDiscovery` list. */
export function sdnetMdns(init: MdnsInit = {}): (components: MdnsComponents) => PeerDiscovery {
  return (components) => new SdnetMdns(components, init)
}

type Answer = multicastDns.ResponseOutgoingPacket['answers'][number]

interface Subnet {
  network: number
  mask: number
}

class SdnetMdns extends TypedEventEmitter<PeerDiscoveryEvents> implements PeerDiscovery, Startable {
  readonly [peerDiscoverySymbol] = this
  readonly [Symbol.toStringTag] = '@sdnet/mdns'
  readonly [serviceCapabilities] = ['@libp2p/peer-discovery']

  readonly #components: MdnsComponents
  readonly #log: Logger
  readonly #serviceTag: string
  readonly #interface: string | undefined
  readonly #interval: number
  readonly #port: number
  // A random DNS label (< 64 chars) that names this node's records and lets it skip its own answers.
  readonly #peerName = randomBytes(16).toString('hex')
  #scope: Subnet | undefined
  #mdns: multicastDns.MulticastDNS | undefined
  #timer: ReturnType<typeof setInterval> | undefined

  constructor(components: MdnsComponents, init: MdnsInit) {
    super()
    this.#components = components
    this.#log = components.logger.forComponent('sdnet:mdns')
    this.#serviceTag = init.serviceTag ?? SDNET_MDNS_SERVICE_TAG
    this.#interface = init.interface
    this.#interval = init.interval ?? DEFAULT_INTERVAL_MS
    this.#port = init.port ?? MDNS_PORT
  }

  isStarted(): boolean {
    return this.#mdns !== undefined
  }

  async start(): Promise<void> {
    if (this.#mdns !== undefined) return
    this.#scope = this.#interface === undefined ? undefined : subnetOf(this.#interface)
    // Confined: join and send on that interface only, but bind the wildcard address, because on Linux a socket
    // bound to a unicast address never receives multicast datagrams.
    const mdns = multicastDns(
      this.#interface === undefined
        ? { port: this.#port }
        : { port: this.#port, interface: this.#interface, bind: '0.0.0.0' },
    )
    await new Promise<void>((resolve, reject) => {
      mdns.once('ready', resolve)
      mdns.once('error', reject)
    }).catch(async (err: unknown) => {
      await new Promise<void>((resolve) => mdns.destroy(() => resolve()))
      throw err
    })
    mdns.on('query', this.#onQuery)
    mdns.on('response', this.#onResponse)
    mdns.on('warning', (err: Error) => this.#log.error('mdns warning - %e', err))
    mdns.on('error', (err: Error) => this.#log.error('mdns error - %e', err))
    this.#mdns = mdns
  }

  // Listen addresses are known only once every component has started.
  afterStart(): void {
    if (this.#mdns === undefined || this.#timer !== undefined) return
    // Multicast loopback delivers our query to ourselves too, and we answer it like any other: that answer
    // announces us to the peers already running, so both sides find each other now, not at the next interval.
    this.#query()
    this.#timer = setInterval(() => this.#query(), this.#interval)
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    const mdns = this.#mdns
    this.#mdns = undefined
    if (mdns === undefined) return
    mdns.removeAllListeners('query')
    mdns.removeAllListeners('response')
    await new Promise<void>((resolve) => mdns.destroy(() => resolve()))
  }

  #query(): void {
    this.#mdns?.query({ questions: [{ name: this.#serviceTag, type: 'PTR' }] }, this.#onSent)
  }

  #answer(): void {
    const answers = this.#records()
    if (answers.length > 1) this.#mdns?.respond({ answers }, this.#onSent)
  }

  readonly #onSent = (err: Error | null): void => {
    if (err) this.#log.error('could not send mDNS packet - %e', err)
  }

  readonly #onQuery = (packet: multicastDns.QueryPacket, rinfo: RemoteInfo): void => {
    if (!this.#inScope(rinfo.address)) return
    if (!packet.questions.some((q) => q.name === this.#serviceTag && q.type === 'PTR')) return
    this.#answer()
  }

  readonly #onResponse = (packet: multicastDns.ResponsePacket, rinfo: RemoteInfo): void => {
    if (!this.#inScope(rinfo.address)) return
    const peer = this.#parse(packet)
    if (peer === undefined) return
    this.#log('discovered peer %p at %s', peer.id, rinfo.address)
    this.dispatchEvent(new CustomEvent<PeerInfo>('peer', { detail: peer }))
  }

  // Our PTR plus one TXT per announceable address (gotQuery in @libp2p/mdns).
  #records(): Answer[] {
    const name = `${this.#peerName}.${this.#serviceTag}`
    const answers: Answer[] = [
      { name: this.#serviceTag, type: 'PTR', class: 'IN', ttl: RECORD_TTL_S, data: name },
    ]
    for (const addr of this.#components.addressManager.getAddresses()) {
      const data = `dnsaddr=${addr.toString()}`
      if (!this.#announceable(addr) || data.length > MAX_TXT_BYTES || peerIdIn(addr) === undefined) continue
      answers.push({ name, type: 'TXT', class: 'IN', ttl: RECORD_TTL_S, data })
    }
    return answers
  }

  // A peer's id and dialable addresses from its answer (gotResponse in @libp2p/mdns), or undefined.
  #parse(packet: multicastDns.ResponsePacket): PeerInfo | undefined {
    const ptr = packet.answers.find((a) => a.type === 'PTR' && a.name === this.#serviceTag)
    if (ptr === undefined || ptr.type !== 'PTR' || ptr.data.startsWith(this.#peerName)) return undefined
    // The spec puts TXT records in the additionals; go-libp2p and @libp2p/mdns put them in the answers.
    const txt = [...packet.answers, ...(packet.additionals ?? [])].flatMap((a) =>
      a.type === 'TXT' && a.name === ptr.data ? [a.data].flat() : [],
    )
    const addrs: Multiaddr[] = []
    for (const entry of txt) {
      const text = entry.toString()
      if (!text.startsWith('dnsaddr=')) continue
      try {
        addrs.push(multiaddr(text.slice('dnsaddr='.length)))
      } catch (err) {
        this.#log.error('ignoring unparsable mDNS address %s - %e', text, err)
      }
    }
    const id = addrs.map(peerIdIn).find((p) => p !== undefined)
    if (id === undefined) return undefined
    const multiaddrs = addrs
      .filter((a) => peerIdIn(a) === id && this.#announceable(a))
      .map((a) => a.decapsulateCode(CODE_P2P))
    if (multiaddrs.length === 0) return undefined
    try {
      return { id: peerIdFromString(id), multiaddrs }
    } catch (err) {
      this.#log.error('ignoring mDNS answer with invalid peer id %s - %e', id, err)
      return undefined
    }
  }

  // Unconfined: private and loopback addresses only, as @libp2p/mdns (mDNS is link-local).
  // Confined: IPv4 addresses in the interface's subnet only.
  #announceable(addr: Multiaddr): boolean {
    if (this.#scope === undefined) return isPrivate(addr)
    const first = addr.getComponents()[0]
    return first?.code === CODE_IP4 && first.value !== undefined && inSubnet(first.value, this.#scope)
  }

  #inScope(address: string): boolean {
    return this.#scope === undefined || inSubnet(address, this.#scope)
  }
}

function peerIdIn(addr: Multiaddr): string | undefined {
  return addr.getComponents().findLast((c) => c.code === CODE_P2P)?.value
}

function subnetOf(address: string): Subnet {
  const all = Object.values(networkInterfaces()).flatMap((list) => list ?? [])
  const found = all.find((i) => i.family === 'IPv4' && i.address === address)
  const network = ipv4ToNumber(address)
  const mask = found === undefined ? undefined : ipv4ToNumber(found.netmask)
  if (network === undefined || mask === undefined) {
    throw new MdnsInterfaceNotFoundError(
      address,
      all.filter((i) => i.family === 'IPv4').map((i) => i.address),
    )
  }
  return { network: (network & mask) >>> 0, mask }
}

function inSubnet(address: string, subnet: Subnet): boolean {
  const value = ipv4ToNumber(address)
  return value !== undefined && (value & subnet.mask) >>> 0 === subnet.network
}

function ipv4ToNumber(address: string): number | undefined {
  const parts = address.split('.')
  if (parts.length !== 4) return undefined
  let value = 0
  for (const part of parts) {
    const byte = Number(part)
    if (part === '' || !Number.isInteger(byte) || byte < 0 || byte > 255) return undefined
    value = value * 256 + byte
  }
  return value
}
