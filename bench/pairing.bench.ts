// How fast pairing is, measured with the real CLI and daemons on two virtual hosts (network namespaces joined by
// a bridge, mDNS between them), next to the floors it cannot beat:
//
//   warm pairing   both daemons running; from the daemon API's `pair.join` call on b to both daemons answering
//                  `paired` (what pairing itself costs: the same RPC the CLI sends, without starting a process)
//   warm CLI       both daemons running; from launching `sdnet pair join` on b to both sides printing `paired`
//   libp2p floor   bare libp2p (TCP + Noise + Yamux) between the same namespaces: dial + one request/response
//   node spawn     launching `node` inside a namespace until it prints (every CLI command pays this)
//   cold join      no daemon on b; from launching `sdnet pair join` to its `paired` line (it starts the daemon)
//
// Targets: warm pairing p50 <= 3x the libp2p floor p50; cold join p50 <= 1.5 s. Prints a table, then one JSON line.
// Run as root: `node bench/pairing.bench.ts` (`npm run bench`).

import { performance } from 'node:perf_hooks'
import { DaemonClient } from '../actors/client.ts'
import {
  type CliProcess,
  createTestbed,
  type Device,
  type Testbed,
  WatchedProcess,
} from '../test/helpers/cli.ts'
import { canCreateNamespaces, type Host } from '../test/helpers/netns.ts'
import { formatSummary, measureFloor, TABLE_HEADER } from './floor.ts'
import { benchDeadline, round, type Summary, summarize } from './stats.ts'

const WARM_RUNS = 20
const COLD_RUNS = 5
const FLOOR_RUNS = 30
const SPAWN_RUNS = 10
const STEP_TIMEOUT_MS = 30_000
const BENCH_DEADLINE_MS = 10 * 60_000
const TARGET_RATIO = 3
const TARGET_COLD_MS = 1_500

const { check: checkDeadline } = benchDeadline(BENCH_DEADLINE_MS)

async function expectSuccess(cli: CliProcess): Promise<void> {
  const result = await cli.finished(STEP_TIMEOUT_MS)
  if (result.code !== 0) throw new Error(`${cli.command} failed.\n${result.transcript}`)
}

interface WarmSample {
  /** Launch of `pair join` -> the later of the two `paired` lines. */
  total: number
  /** Launch of `pair join` -> its first output line: CLI start-up and reaching the daemon. */
  firstLine: number
}

/** One pairing with both daemons running. */
async function warmPairing(alpha: Device, beta: Device): Promise<WarmSample> {
  const session = await alpha.generate(['--auto-accept'], STEP_TIMEOUT_MS)
  const launched = performance.now()
  const join = beta.spawn(['pair', 'join', session.code, '--json'])
  const [joined, generated] = await Promise.all([
    join.waitForTimed('paired', STEP_TIMEOUT_MS),
    session.cli.waitForTimed('paired', STEP_TIMEOUT_MS),
  ])
  await Promise.all([expectSuccess(join), expectSuccess(session.cli)])
  const firstLine = join.process.lines[0]?.at ?? joined.at
  return { total: Math.max(joined.at, generated.at) - launched, firstLine: firstLine - launched }
}

/** One pairing through the daemons' RPC (the CLI's own protocol): `pair.join` sent -> both results in. */
async function warmPairingApi(alpha: DaemonClient, beta: DaemonClient): Promise<number> {
  let announce: (code: string) => void = () => {}
  const code = new Promise<string>((resolve) => {
    announce = resolve
  })
  const generated = alpha.call<{ outcome: string }>('pair.generate', { autoAccept: true }, (event) => {
    if (event.event === 'code') announce(event.code as string)
  })
  const words = await code
  const launched = performance.now()
  const settle = (call: Promise<{ outcome: string }>) =>
    call.then((result) => {
      if (result.outcome !== 'paired') throw new Error(`pairing failed: ${JSON.stringify(result)}`)
      return performance.now()
    })
  const [a, b] = await Promise.all([settle(generated), settle(beta.call('pair.join', { code: words }))])
  return Math.max(a, b) - launched
}

/** One pairing with no daemon on b: launch `pair join` -> its `paired` line. */
async function coldJoin(alpha: Device, beta: Device, notes: string[]): Promise<number> {
  await stopDaemon(beta, notes)
  const session = await alpha.generate(['--auto-accept'], STEP_TIMEOUT_MS)
  const launched = performance.now()
  const join = beta.spawn(['pair', 'join', session.code, '--json'])
  const joined = await join.waitForTimed('paired', STEP_TIMEOUT_MS)
  await Promise.all([expectSuccess(join), expectSuccess(session.cli)])
  return joined.at - launched
}

async function stopDaemon(device: Device, notes: string[]): Promise<void> {
  try {
    await device.stop(10_000)
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error)
    notes.push(`\`sdnet stop\` failed on ${device.name} (${message}); its daemon was killed by pid instead`)
  }
  await device.killLeftovers()
}

/** Launching Node in a namespace until its first output: the part of every CLI command sdnet cannot speed up. */
async function nodeSpawn(host: Host): Promise<number> {
  const launched = performance.now()
  const child = new WatchedProcess(
    host.run(process.execPath, ['-e', 'console.log("up")'], { stdio: ['ignore', 'pipe', 'pipe'] }),
    `node -e on host ${host.name}`,
  )
  const line = await child.waitForLine((text) => text === 'up', '"up"', STEP_TIMEOUT_MS)
  await child.finished(STEP_TIMEOUT_MS)
  return line.at - launched
}

async function repeat<T>(runs: number, what: string, measure: () => Promise<T>): Promise<T[]> {
  const samples: T[] = []
  for (let run = 0; run < runs; run += 1) {
    checkDeadline(`during ${what} (run ${run + 1} of ${runs})`)
    samples.push(await measure())
  }
  return samples
}

function rounded(summary: Summary): Summary {
  return {
    runs: summary.runs,
    p50: round(summary.p50),
    p95: round(summary.p95),
    min: round(summary.min),
    max: round(summary.max),
  }
}

async function bench(bed: Testbed): Promise<void> {
  const [a, b] = bed.lan.hosts as [Host, Host]
  const notes: string[] = []
  const alpha = await bed.device(0, 'alpha')
  const beta = await bed.device(1, 'beta')
  await Promise.all([alpha.start(), beta.start()])

  // The daemons' sockets are files, so this process reaches both from the default namespace.
  const [apiA, apiB] = await Promise.all([
    DaemonClient.connect(alpha.dataDir),
    DaemonClient.connect(beta.dataDir),
  ])
  const warmApi = summarize(await repeat(WARM_RUNS, 'warm pairing (API)', () => warmPairingApi(apiA, apiB)))
  apiA.close()
  apiB.close()
  const warmSamples = await repeat(WARM_RUNS, 'warm pairing', () => warmPairing(alpha, beta))
  const warm = summarize(warmSamples.map((sample) => sample.total))
  const warmFirstLine = summarize(warmSamples.map((sample) => sample.firstLine))
  // Same direction as pairing: the joiner on b dials the initiator on a.
  checkDeadline('before the libp2p floor')
  const floor = summarize(await measureFloor(a, b, FLOOR_RUNS))
  const spawn = summarize(await repeat(SPAWN_RUNS, 'node spawn', () => nodeSpawn(b)))
  const cold = summarize(await repeat(COLD_RUNS, 'cold join', () => coldJoin(alpha, beta, notes)))

  const ratio = warmApi.p50 / floor.p50
  const cliRatio = warm.p50 / floor.p50
  console.log(TABLE_HEADER)
  console.log(formatSummary('warm pairing (join -> both paired)', warmApi))
  console.log(formatSummary('warm CLI (launch join -> both)', warm))
  console.log(formatSummary('  of which launch -> first line', warmFirstLine))
  console.log(formatSummary('libp2p floor (dial + req/resp)', floor))
  console.log(formatSummary('node spawn in a namespace', spawn))
  console.log(formatSummary('cold join (no daemon on b)', cold))
  console.log('')
  console.log(
    `warm pairing p50 / floor p50 = ${ratio.toFixed(1)}x (target <= ${TARGET_RATIO}x): ${verdict(ratio <= TARGET_RATIO)}`,
  )
  console.log(
    `warm CLI p50 / floor p50 = ${cliRatio.toFixed(1)}x (includes starting a Node process for \`sdnet\`)`,
  )
  console.log(
    `cold join p50 = ${round(cold.p50)} ms (target <= ${TARGET_COLD_MS} ms): ${verdict(cold.p50 <= TARGET_COLD_MS)}`,
  )
  for (const note of new Set(notes)) console.log(`note: ${note}`)
  console.log(
    JSON.stringify({
      warm: rounded(warmApi),
      warmCli: rounded(warm),
      warmFirstLine: rounded(warmFirstLine),
      floor: rounded(floor),
      spawn: rounded(spawn),
      cold: rounded(cold),
      ratio: round(ratio),
      cliRatio: round(cliRatio),
      targets: { ratio: TARGET_RATIO, coldP50Ms: TARGET_COLD_MS },
      met: { ratio: ratio <= TARGET_RATIO, cold: cold.p50 <= TARGET_COLD_MS },
    }),
  )
}

function verdict(met: boolean): string {
  return met ? 'met' : 'MISSED'
}

async function main(): Promise<void> {
  const capability = canCreateNamespaces()
  if (!capability.ok) {
    console.log(`pairing benchmark skipped: ${capability.reason}`)
    return
  }
  const bed = await createTestbed(2)
  try {
    await bench(bed)
  } finally {
    await bed.cleanup()
  }
}

await main()
