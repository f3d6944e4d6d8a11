// The floor under pairing: what a bare libp2p pair (TCP + Noise + Yamux, no sdnet code) needs for a fresh
// connection plus one request/response on a protocol of its own. Pairing cannot beat this; the pairing benchmark
// compares against it.
//
//   node bench/floor.ts                          creates two namespaces and prints p50/p95 (needs root)
//   node bench/floor.ts serve <ip>               (inside a namespace) listens, prints {"multiaddr":…}
//   node bench/floor.ts dial <multiaddr> <runs> <warmup>   prints {"samples":[ms, …]}

import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { WatchedProcess } from '../test/helpers/cli.ts'
import { canCreateNamespaces, createLan, type Host } from '../test/helpers/netns.ts'
import { bareNode, serveUntilSignalled } from './bare-node.ts'
import { round, type Summary, summarize } from './stats.ts'

const PROTOCOL = '/sdnet-bench/floor/1.0.0'
const REQUEST_BYTES = 64
const STEP_TIMEOUT_MS = 5_000
const PROCESS_TIMEOUT_MS = 60_000

async function serve(address: string): Promise<void> {
  const node = await bareNode([`/ip4/${address}/tcp/0`])
  await node.handle(PROTOCOL, async (stream) => {
    const lp = lpStream(stream)
    const signal = AbortSignal.timeout(STEP_TIMEOUT_MS)
    await lp.write(await lp.read({ signal }), { signal })
    await stream.close({ signal })
  })
  serveUntilSignalled(node)
}

async function dial(target: string, runs: number, warmup: number): Promise<void> {
  const node = await bareNode([])
  const address = multiaddr(target)
  const samples: number[] = []
  const connectionIds = new Set<string>()
  for (let run = 0; run < warmup + runs; run += 1) {
    const signal = AbortSignal.timeout(STEP_TIMEOUT_MS)
    const started = performance.now()
    const connection = await node.dial(address, { signal })
    const stream = await connection.newStream(PROTOCOL, { signal })
    const lp = lpStream(stream)
    const request = randomBytes(REQUEST_BYTES)
    await lp.write(request, { signal })
    const reply = await lp.read({ signal })
    const elapsed = performance.now() - started
    if (!Buffer.from(reply.subarray()).equals(request))
      throw new Error('The floor server answered with other bytes.')
    if (connectionIds.has(connection.id))
      throw new Error('libp2p reused a connection; every run must dial anew.')
    connectionIds.add(connection.id)
    if (run >= warmup) samples.push(elapsed)
    await connection.close({ signal })
  }
  await node.stop()
  console.log(JSON.stringify({ samples }))
}

/** Runs a floor server on `server` and a dialing client on `client`; returns the client's samples (ms). */
export async function measureFloor(server: Host, client: Host, runs = 30, warmup = 3): Promise<number[]> {
  const self = import.meta.filename
  const serving = new WatchedProcess(
    server.run(process.execPath, [self, 'serve', server.address], { stdio: ['ignore', 'pipe', 'pipe'] }),
    `floor server on host ${server.name}`,
  )
  try {
    const line = await serving.waitForLine(
      (text) => text.startsWith('{'),
      'its multiaddr',
      PROCESS_TIMEOUT_MS,
    )
    const { multiaddr: target } = JSON.parse(line.text) as { multiaddr?: string }
    if (!target) throw new Error(`The floor server printed no address.\n${serving.transcript()}`)
    const dialing = new WatchedProcess(
      client.run(process.execPath, [self, 'dial', target, String(runs), String(warmup)], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
      `floor client on host ${client.name}`,
    )
    const result = await dialing.finished(PROCESS_TIMEOUT_MS)
    if (result.code !== 0) throw new Error(`The floor client failed.\n${dialing.transcript()}`)
    const { samples } = JSON.parse(result.stdout) as { samples: number[] }
    return samples
  } finally {
    serving.kill()
    await serving.finished(PROCESS_TIMEOUT_MS).catch(() => {})
  }
}

export function formatSummary(label: string, summary: Summary): string {
  const cells = [summary.p50, summary.p95, summary.min, summary.max].map((ms) =>
    round(ms).toFixed(2).padStart(9),
  )
  return `${label.padEnd(34)}${String(summary.runs).padStart(5)}${cells.join('')}`
}

export const TABLE_HEADER = `${'measurement (ms)'.padEnd(34)}${'runs'.padStart(5)}${[
  'p50',
  'p95',
  'min',
  'max',
]
  .map((column) => column.padStart(9))
  .join('')}`

async function main(): Promise<void> {
  const [mode, ...args] = process.argv.slice(2)
  if (mode === 'serve') return serve(args[0] ?? '127.0.0.1')
  if (mode === 'dial') return dial(args[0]!, Number(args[1] ?? 30), Number(args[2] ?? 3))
  const capability = canCreateNamespaces()
  if (!capability.ok) {
    console.log(`floor benchmark skipped: ${capability.reason}`)
    return
  }
  const lan = await createLan(2)
  try {
    const [a, b] = lan.hosts as [Host, Host]
    const summary = summarize(await measureFloor(b, a))
    console.log(TABLE_HEADER)
    console.log(formatSummary('libp2p dial + request/response', summary))
    console.log(JSON.stringify({ floor: { ...summary, p50: round(summary.p50), p95: round(summary.p95) } }))
  } finally {
    await lan.destroy()
  }
}

if (import.meta.main) await main()
