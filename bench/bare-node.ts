// The floors' libp2p node: TCP + Noise + Yamux and nothing of sdnet, as server (in one namespace) and client.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'

/**
 * A bare node listening on `listen`. Every floor run is a new connection from the same address, so the inbound
 * threshold (5 per second per address by default) is lifted.
 */
export function bareNode(listen: string[]): Promise<Libp2p> {
  return createLibp2p({
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { inboundConnectionThreshold: 10_000 },
  })
}

/** Prints the node's address (and `extra`) as one JSON line, then serves until SIGTERM or SIGINT stops it and the process. */
export function serveUntilSignalled(node: Libp2p, extra: Record<string, string> = {}): void {
  const shutdown = (): void => {
    Promise.resolve(node.stop()).then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.once('SIGTERM', shutdown)
  process.once('SIGINT', shutdown)
  console.log(JSON.stringify({ multiaddr: node.getMultiaddrs()[0]?.toString(), ...extra }))
}
