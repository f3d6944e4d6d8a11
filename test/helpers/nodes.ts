// Builders for in-process nodes on loopback: real libp2p, mDNS confined to 127.0.0.1, throwaway data dirs.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createNode, type NodeOptions, type SdnetNode } from '../../actors/index.ts'

export interface TestNodes {
  make(name: string, opts?: Partial<NodeOptions>): Promise<SdnetNode & { dataDir: string }>
  cleanup(): Promise<void>
}

export function testNodes(): TestNodes {
  const nodes: SdnetNode[] = []
  const dirs: string[] = []
  return {
    async make(name, opts = {}) {
      const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), `sdnet-${name}-`)))
      if (opts.dataDir === undefined) dirs.push(dataDir)
      const node = await createNode({
        name,
        listen: ['/ip4/127.0.0.1/tcp/0'],
        mdns: { interface: '127.0.0.1' },
        dht: false,
        ...opts,
        dataDir,
      })
      nodes.push(node)
      return Object.assign(node, { dataDir })
    },
    async cleanup() {
      await Promise.all(nodes.map((n) => n.stop()))
      await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
    },
  }
}
