// How well paired devices talk over the sealed `/sdnet/msg/1.0.0` link, measured between two warm, paired
// daemons on two virtual hosts (network namespaces joined by a bridge), next to the floors they cannot beat
// (bench/messaging-floor.ts: bare libp2p, one reused stream, same namespaces):
//
//   round trip     the daemon's own `ping` (200 back to back, RTT measured inside the daemon; this process reads
//                  it over the daemon's Unix socket, so no CLI start-up and no RPC is in the figure)
//                  vs a 1-byte echo on a reused libp2p stream, in alternating rounds   target p50 and p99 <= 2x
//   throughput     one way, 64 B and 64 KiB messages for ~3 s each, two library nodes (`createNode` on the
//                  daemons' data dirs, daemons stopped) counting on the receiver; three rounds alternating with
//                  the floor and the ceiling below, each figure the median of its rounds
//                  vs length-prefixed frames on a raw stream, coalesced into 64 KiB sends and counted by a
//                  receiver that never looks at a payload
//                  with the CPU time each side spent per message (and the receiver's GC pauses), sdnet's beside
//                  the floor's: the busier side sets the pace
//                  and the ceiling: the same floor with the spec's second layer only (each 64 KiB send sealed
//                  with ChaCha20-Poly1305, opened piece by piece, nothing copied, no per-message work): the most
//                  any implementation that seals every frame can reach on this machine; sdnet against it:
//                                                          target >= 0.85x at 64 KiB, >= 0.8x at 64 B
//                  (when the link drops under load, the runs are repeated with a 60 s connection-monitor ping,
//                  reported as a diagnostic: that separates the drop from the cost of the sealed path)
//   reconnect      b's daemon restarts: from launching its process until a reports ConnectionEstablished
//                                                                                    target p50 < 1 s
//   silent loss    b's daemon is frozen (SIGSTOP): until a reports ConnectionLost     target p50 < 2 s
//
// Prints a table, then one JSON line. Run as root: `node bench/messaging.bench.ts`.
// The same file is the load generator, run inside the namespaces: `load-receive <dataDir> [pingMs]` and
// `load-send <dataDir> <deviceId> <plan> [pingMs]`.

import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { monitorEventLoopDelay, PerformanceObserver, performance } from 'node:perf_hooks'
import { DaemonClient } from '../actors/client.ts'
import {
  createTestbed,
  type Device,
  type JsonObject,
  lastEvent,
  sdnetEntry,
  type Testbed,
  WatchedProcess,
} from '../test/helpers/cli.ts'
import { canCreateNamespaces, isAlive, terminate } from '../test/helpers/netns.ts'
import {
  cpuMs,
  type FloorServer,
  floorRoundTrips,
  floorThroughput,
  startFloorServer,
  type ThroughputSample,
} from './messaging-floor.ts'
import { benchDeadline, percentile, round } from './stats.ts'
import { met, printTable, type Row } from './table.ts'

const PING_WARMUP = 20
const PING_RUNS = 200
const RTT_ROUNDS = 4
// Each run lasts ~3 s (the time bound, checked every 256 messages; the counts are caps), long enough for a steady
// state: the first sessions counted 20 000 x 64 B, ~0.1 s, mostly start-up.
const LOADS = [
  { size: 64, count: 10_000_000, maxMs: 3_000 },
  { size: 64 * 1024, count: 100_000, maxMs: 3_000 },
]
/** Throughput rounds (sdnet, floor, ceiling in turn); each figure is its median. */
const THROUGHPUT_ROUNDS = 3
const RESTART_RUNS = 5
const FREEZE_RUNS = 7
const STEP_TIMEOUT_MS = 30_000
const LOAD_TIMEOUT_MS = 120_000
const BENCH_DEADLINE_MS = 10 * 60_000
const TARGET_RTT_RATIO = 2
/** One-way throughput against the ceiling (issue 11 item 10): at 64 KiB, and at 64 B. */
const TARGET_CEILING_RATIO_LARGE = 0.85
const TARGET_CEILING_RATIO_SMALL = 0.8
const TARGET_RECONNECT_MS = 1_000
const TARGET_LOSS_MS = 2_000
/** When the link drops under load, the throughput runs again with this monitor ping period, as a diagnostic. */
const RELAXED_PING_MS = 60_000
const LOAD_PROTOCOL = 'bench/load'
const COUNT_PROTOCOL = 'bench/count'

const { check: checkDeadline } = benchDeadline(BENCH_DEADLINE_MS)

// ---- load generator (inside a namespace, daemons stopped)

type Plan = typeof LOADS

/** What the sender reports. `failed` when the link dropped part way: the size, how far it got, what happened. */
interface LoadReport {
  /** Library node start until ConnectionEstablished. */
  connectMs: number
  results: ThroughputSample[]
  /** The sender's worst event-loop delay during the runs: while it lasts, no timer fires and no packet is read. */
  maxLoopDelayMs: number
  /** The same on the receiver, from its start to the end of the runs. */
  receiverMaxLoopDelayMs?: number
  failed?: { size: number; sent: number; history: string[] }
}

/** A library node on a daemon's data dir; `pingInterval` (ms) overrides the connection monitor's default. */
async function libraryNode(dataDir: string, pingInterval: string | undefined) {
  const { createNode } = await import('../actors/index.ts')
  return createNode({ dataDir, ...(pingInterval !== undefined && { pingInterval: Number(pingInterval) }) })
}

async function loadReceive(dataDir: string, pingInterval: string | undefined): Promise<void> {
  const node = await libraryNode(dataDir, pingInterval)
  let frames = 0
  let bytes = 0
  let cpu = process.cpuUsage()
  // Pauses of the main thread for garbage collection: where much of a large message's cost goes.
  let gcMs = 0
  const gc = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcMs += entry.duration
  })
  gc.observe({ entryTypes: ['gc'] })
  node.handle(LOAD_PROTOCOL, (message) => {
    frames += 1
    bytes += message.body.length
    return undefined
  })
  // Messages and requests share the link in order: when this answers, every message before it was counted.
  node.handle(COUNT_PROTOCOL, () => {
    const receiverCpuMs = cpuMs(process.cpuUsage(cpu))
    const reply = JSON.stringify({ frames, bytes, receiverCpuMs, receiverGcMs: gcMs })
    frames = 0
    bytes = 0
    gcMs = 0
    cpu = process.cpuUsage()
    return reply
  })
  const loopDelay = monitorEventLoopDelay({ resolution: 10 })
  await node.start()
  loopDelay.enable()
  console.log(JSON.stringify({ ready: true }))
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve)
    process.once('SIGINT', resolve)
  })
  console.log(JSON.stringify({ maxLoopDelayMs: loopDelay.max / 1e6 }))
  gc.disconnect()
  await node.stop()
}

async function loadSend(dataDir: string, deviceId: string, plan: Plan, pingInterval: string | undefined) {
  const node = await libraryNode(dataDir, pingInterval)
  const started = performance.now()
  const history: string[] = []
  const note = (what: string) => history.push(`${Math.round(performance.now() - started)} ms: ${what}`)
  const connected = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no connection to ${deviceId} within ${STEP_TIMEOUT_MS} ms`)),
      STEP_TIMEOUT_MS,
    )
    node.on('*', (event) => {
      if (event.type !== 'ConnectionEstablished' && event.type !== 'ConnectionLost') return
      note(event.type)
      if (event.type !== 'ConnectionEstablished' || event.deviceId !== deviceId) return
      clearTimeout(timer)
      resolve()
    })
  })
  await node.start()
  await connected
  const connectMs = performance.now() - started
  const count = async () => {
    const reply = await node.request(deviceId, COUNT_PROTOCOL, '', { timeoutMs: LOAD_TIMEOUT_MS })
    return JSON.parse(new TextDecoder().decode(reply)) as {
      frames: number
      bytes: number
      receiverCpuMs: number
      receiverGcMs: number
    }
  }
  const loopDelay = monitorEventLoopDelay({ resolution: 10 })
  const report = (extra: Partial<LoadReport> = {}): LoadReport => ({
    connectMs,
    results,
    maxLoopDelayMs: loopDelay.max / 1e6,
    ...extra,
  })
  const results: ThroughputSample[] = []
  loopDelay.enable()
  let current = { size: 0, sent: 0 }
  try {
    // Warm-up (JIT, buffers), and a first count that resets the receiver.
    for (const size of [64, 64 * 1024]) {
      const body = randomBytes(size)
      for (let i = 0; i < (size === 64 ? 2_000 : 20); i += 1) await node.send(deviceId, LOAD_PROTOCOL, body)
    }
    await count()
    for (const { size, count: total, maxMs } of plan) {
      const body = randomBytes(size)
      const begun = performance.now()
      const cpu = process.cpuUsage()
      current = { size, sent: 0 }
      while (current.sent < total && (current.sent % 256 !== 0 || performance.now() - begun < maxMs)) {
        await node.send(deviceId, LOAD_PROTOCOL, body)
        current.sent += 1
      }
      const { frames, bytes, receiverCpuMs, receiverGcMs } = await count()
      const ms = performance.now() - begun
      const senderCpuMs = cpuMs(process.cpuUsage(cpu))
      const sample = { size, sent: current.sent, received: frames, bytes, ms, senderCpuMs, receiverCpuMs }
      results.push({ ...sample, receiverGcMs })
    }
  } catch (err) {
    note(`${(err as Error).name}: ${(err as Error).message}`)
    console.log(JSON.stringify(report({ failed: { ...current, history } })))
    process.exitCode = 1
    return node.stop()
  }
  console.log(JSON.stringify(report()))
  await node.stop()
}

/**
 * Two library nodes on the (stopped) daemons' data dirs: `sender` sends the plan to `receiver`. `pingInterval`
 * (ms) overrides the connection monitor's ping period on both, for the diagnostic run.
 */
async function libraryThroughput(
  sender: Device,
  receiver: Device,
  pingInterval?: number,
): Promise<LoadReport> {
  const self = import.meta.filename
  const ping = pingInterval === undefined ? [] : [String(pingInterval)]
  const receiving = new WatchedProcess(
    receiver.host.run(process.execPath, [self, 'load-receive', receiver.dataDir, ...ping], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
    `load receiver on host ${receiver.host.name}`,
  )
  try {
    await receiving.waitForLine((text) => text.includes('"ready"'), 'ready', STEP_TIMEOUT_MS)
    const sending = new WatchedProcess(
      sender.host.run(
        process.execPath,
        [self, 'load-send', sender.dataDir, receiver.identity.deviceId, JSON.stringify(LOADS), ...ping],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
      `load sender on host ${sender.host.name}`,
    )
    const result = await sending.finished(LOAD_TIMEOUT_MS)
    const last = result.stdout.trim().split('\n').at(-1) ?? ''
    if (!last.startsWith('{')) throw new Error(`The load sender failed.\n${sending.transcript()}`)
    const report = JSON.parse(last) as LoadReport
    receiving.kill()
    const received = await receiving.finished(STEP_TIMEOUT_MS)
    const { maxLoopDelayMs } = JSON.parse(received.stdout.trim().split('\n').at(-1) ?? '{}') as {
      maxLoopDelayMs?: number
    }
    return { ...report, ...(maxLoopDelayMs !== undefined && { receiverMaxLoopDelayMs: maxLoopDelayMs }) }
  } finally {
    receiving.kill()
    await receiving.finished(STEP_TIMEOUT_MS).catch(() => {})
  }
}

// ---- the daemons, seen through their sockets

/** A daemon's event stream, read by this process over the daemon's socket. */
class EventFeed {
  readonly events: JsonObject[] = []
  readonly #client: DaemonClient
  readonly #waiters = new Set<{ match: (event: JsonObject) => boolean; resolve: (e: JsonObject) => void }>()

  private constructor(client: DaemonClient) {
    this.#client = client
  }

  /** Resolves once subscribed: the daemon answers requests on one connection in order. */
  static async open(dataDir: string): Promise<EventFeed> {
    const client = await DaemonClient.connect(dataDir)
    const feed = new EventFeed(client)
    client.call('events', {}, (event) => feed.#push(event)).catch(() => {})
    await client.call('status')
    return feed
  }

  get mark(): number {
    return this.events.length
  }

  /** The first event from index `from` on that matches; rejects after `timeoutMs`. */
  next(
    match: (event: JsonObject) => boolean,
    from: number,
    timeoutMs: number,
    what: string,
  ): Promise<JsonObject> {
    const seen = this.events.slice(from).find(match)
    if (seen) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (event: JsonObject) => {
          clearTimeout(timer)
          resolve(event)
        },
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter)
        reject(new Error(`no ${what} within ${timeoutMs} ms`))
      }, timeoutMs)
      this.#waiters.add(waiter)
    })
  }

  close(): void {
    this.#client.close()
  }

  #push(event: JsonObject): void {
    this.events.push(event)
    for (const waiter of this.#waiters) {
      if (!waiter.match(event)) continue
      this.#waiters.delete(waiter)
      waiter.resolve(event)
    }
  }
}

const about =
  (type: string, device: Device) =>
  (event: JsonObject): boolean =>
    event.type === type && event.deviceId === device.identity.deviceId

/** The daemon process `sdnet start` would launch (`start --foreground --detached`), as our child, so we know its start. */
function launchDaemon(device: Device): { daemon: WatchedProcess; launchedAt: number } {
  const launchedAt = Date.now()
  const child = device.host.run(
    process.execPath,
    [sdnetEntry, '--data-dir', device.dataDir, 'start', '--foreground', '--detached'],
    { env: device.env, cwd: device.root, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  return { daemon: new WatchedProcess(child, `daemon of ${device.name}`), launchedAt }
}

/** Every `daemon ready` the daemon logged (pino's epoch ms), in order. */
async function readyTimes(device: Device): Promise<number[]> {
  const log = await readFile(path.join(device.dataDir, 'sdnet.log'), 'utf8').catch(() => '')
  return log
    .split('\n')
    .filter((line) => line.includes('"daemon ready"'))
    .map((line) => (JSON.parse(line) as { time?: number }).time)
    .filter((time) => time !== undefined)
}

/** One restart of b: when its daemon process was launched and when a reported the connection (epoch ms). */
interface Restart {
  launchedAt: number
  connectedAt: number
}

interface Timings {
  samples: number[]
  /** Part of each sample before the daemon was ready (start-up), when its log said so. */
  startup: number[]
  /** The rest: from the daemon being ready until a reported the connection. */
  afterReady: number[]
}

/** b's daemon stops and starts again; from its launch until a reports ConnectionEstablished. */
async function restarts(
  feedA: EventFeed,
  beta: Device,
  daemon: { current: WatchedProcess | undefined },
): Promise<Restart[]> {
  const runs: Restart[] = []
  for (let run = 0; run < RESTART_RUNS; run += 1) {
    checkDeadline(`during restarts (run ${run + 1})`)
    const lostMark = feedA.mark
    await beta.stop(STEP_TIMEOUT_MS)
    await daemon.current?.finished(STEP_TIMEOUT_MS)
    await feedA.next(about('ConnectionLost', beta), lostMark, STEP_TIMEOUT_MS, 'ConnectionLost after stop')
    const mark = feedA.mark
    const { daemon: started, launchedAt } = launchDaemon(beta)
    daemon.current = started
    const up = await feedA.next(
      about('ConnectionEstablished', beta),
      mark,
      STEP_TIMEOUT_MS,
      'ConnectionEstablished after restart',
    )
    runs.push({ launchedAt, connectedAt: up.at as number })
  }
  return runs
}

/** Splits each restart at the daemon's `daemon ready` log line (read later: pino writes its log asynchronously). */
async function splitRestarts(runs: Restart[], beta: Device): Promise<Timings> {
  const ready = await readyTimes(beta)
  const timings: Timings = { samples: [], startup: [], afterReady: [] }
  for (const { launchedAt, connectedAt } of runs) {
    timings.samples.push(connectedAt - launchedAt)
    const at = ready.find((time) => time >= launchedAt)
    if (at === undefined) continue
    timings.startup.push(at - launchedAt)
    timings.afterReady.push(connectedAt - at)
  }
  return timings
}

/** b's daemon freezes; from SIGSTOP until a reports ConnectionLost. Then it thaws and reconnects. */
async function freezes(feedA: EventFeed, beta: Device, pid: number): Promise<number[]> {
  const samples: number[] = []
  for (let run = 0; run < FREEZE_RUNS; run += 1) {
    checkDeadline(`during freezes (run ${run + 1})`)
    const mark = feedA.mark
    const frozenAt = Date.now()
    process.kill(pid, 'SIGSTOP')
    try {
      const lost = await feedA.next(about('ConnectionLost', beta), mark, STEP_TIMEOUT_MS, 'ConnectionLost')
      samples.push((lost.at as number) - frozenAt)
    } finally {
      process.kill(pid, 'SIGCONT')
    }
    const upMark = feedA.mark
    await feedA.next(
      about('ConnectionEstablished', beta),
      upMark,
      STEP_TIMEOUT_MS,
      'ConnectionEstablished after thawing',
    )
  }
  return samples
}

/**
 * Round trips, in rounds that alternate between sdnet and the floor so that both see the same background load:
 * sdnet's are a's daemon's own `ping` with no pause (the pongs' `rttMs`, measured inside the daemon), the floor's
 * 1-byte echoes on a reused libp2p stream from a process on a's host to a server on b's.
 */
async function roundTrips(
  alpha: Device,
  beta: Device,
  server: FloorServer,
): Promise<{ sdnet: number[]; floor: number[] }> {
  const client = await DaemonClient.connect(alpha.dataDir)
  try {
    const ping = async (count: number) => {
      const rtts: number[] = []
      const lost: string[] = []
      await client.call('ping', { device: beta.identity.deviceId, count, intervalMs: 0 }, (event) => {
        if (event.event === 'pong') rtts.push(event.rttMs as number)
        else lost.push(`ping ${event.seq}: ${event.reason}`)
      })
      if (lost.length > 0 || rtts.length !== count)
        throw new Error(`${rtts.length} of ${count} pings answered:\n${lost.join('\n')}`)
      return rtts
    }
    const perRound = Math.ceil(PING_RUNS / RTT_ROUNDS)
    const sdnet: number[] = []
    const floor: number[] = []
    await ping(PING_WARMUP)
    for (let round = 0; round < RTT_ROUNDS; round += 1) {
      checkDeadline(`during the round trips (round ${round + 1})`)
      sdnet.push(...(await ping(perRound)))
      floor.push(...(await floorRoundTrips(alpha.host, server, perRound, PING_WARMUP)))
    }
    return { sdnet, floor }
  } finally {
    client.close()
  }
}

async function pair(alpha: Device, beta: Device, feeds: [EventFeed, EventFeed]): Promise<void> {
  const session = await alpha.generate(['--auto-accept'], STEP_TIMEOUT_MS)
  const joined = await beta.run(['pair', 'join', session.code, '--json'], STEP_TIMEOUT_MS)
  if (joined.code !== 0) throw new Error(`pairing failed.\n${joined.transcript}`)
  lastEvent(joined, 'paired')
  await session.cli.finished(STEP_TIMEOUT_MS)
  await Promise.all([
    feeds[0].next(about('ConnectionEstablished', beta), 0, STEP_TIMEOUT_MS, 'first ConnectionEstablished'),
    feeds[1].next(about('ConnectionEstablished', alpha), 0, STEP_TIMEOUT_MS, 'first ConnectionEstablished'),
  ])
}

// ---- report

/** Messages per second, NaN for a missing sample. */
function rateOf(sample: ThroughputSample | undefined): number {
  return sample === undefined ? Number.NaN : sample.received / (sample.ms / 1000)
}

function throughputRows(
  label: string,
  sdnet: ThroughputSample | undefined,
  floor: ThroughputSample | undefined,
  judged: boolean,
  ceiling?: ThroughputSample,
): Row[] {
  const megabytes = (sample: ThroughputSample | undefined) =>
    sample === undefined ? Number.NaN : sample.bytes / (sample.ms / 1000) / 1e6
  // Issue 11 replaced the target against the raw stream by one against the ceiling (the raw stream plus only the
  // spec's second AEAD layer): 0.85x of it at 64 KiB, 0.8x at 64 B. The raw-stream ratio is still shown.
  const rows: Row[] = [
    { label: `${label} (msg/s)`, value: rateOf(sdnet), floor: rateOf(floor) },
    { label: `${label} (MB/s)`, value: megabytes(sdnet), floor: megabytes(floor) },
  ]
  if (ceiling !== undefined) {
    rows.push({ label: '  ceiling: floor + sealing (msg/s)', value: rateOf(ceiling), floor: rateOf(floor) })
    const limit = (sdnet?.size ?? 0) >= 1024 ? TARGET_CEILING_RATIO_LARGE : TARGET_CEILING_RATIO_SMALL
    rows.push({
      label: '  sdnet against the ceiling (msg/s)',
      value: rateOf(sdnet),
      floor: rateOf(ceiling),
      ...(judged && { target: { kind: 'ratio>=' as const, limit } }),
    })
  }
  if (!judged) return rows
  // Where the time goes: CPU each process spent per message (the busier side sets the pace).
  const cpu = (sample: ThroughputSample | undefined, ms: number | undefined) =>
    sample === undefined || ms === undefined ? Number.NaN : (ms * 1000) / sample.received
  return [
    ...rows,
    {
      label: '  CPU per message, sender (us)',
      value: cpu(sdnet, sdnet?.senderCpuMs),
      floor: cpu(floor, floor?.senderCpuMs),
    },
    {
      label: '  CPU per message, receiver (us)',
      value: cpu(sdnet, sdnet?.receiverCpuMs),
      floor: cpu(floor, floor?.receiverCpuMs),
    },
    { label: '    of which GC pauses (us)', value: cpu(sdnet, sdnet?.receiverGcMs) },
  ]
}

/** Both daemons running: round trips, restarts of b, freezes of b. */
async function measureDaemons(
  bed: Testbed,
  alpha: Device,
  beta: Device,
  server: FloorServer,
  notes: string[],
) {
  await Promise.all([alpha.start(), beta.start()])
  const feeds: [EventFeed, EventFeed] = await Promise.all([
    EventFeed.open(alpha.dataDir),
    EventFeed.open(beta.dataDir),
  ])
  const daemonB: { current: WatchedProcess | undefined } = { current: undefined }
  try {
    await pair(alpha, beta, feeds)
    feeds[1].close() // b's feed only had to see the first connection
    checkDeadline('before the round trips')
    const rtt = await roundTrips(alpha, beta, server)
    const restartRuns = await restarts(feeds[0], beta, daemonB)
    const pid = daemonB.current?.child.pid
    if (pid === undefined) throw new Error('b has no daemon of ours to freeze')
    const loss = await freezes(feeds[0], beta, pid)
    return { rtt, restart: await splitRestarts(restartRuns, beta), loss }
  } finally {
    for (const feed of feeds) feed.close()
    const pid = daemonB.current?.child.pid
    if (pid !== undefined && isAlive(pid)) process.kill(pid, 'SIGCONT')
    // The library nodes that come next need the data dirs to themselves.
    for (const error of await bed.stop([alpha, beta]))
      notes.push(`stopping a daemon failed (it was killed by pid): ${error.message.split('\n')[0]}`)
    if (pid !== undefined) await terminate([pid])
  }
}

/**
 * Daemons stopped: library nodes on their data dirs, then the raw-stream floor and ceiling, a -> b, in alternating
 * rounds like the round trips: all three see the same background load, and each figure is the median of its rounds,
 * so one disturbed run cannot decide a verdict.
 */
async function measureThroughput(alpha: Device, beta: Device, server: FloorServer, notes: string[]) {
  const rounds: LoadReport[] = []
  const floors: ThroughputSample[] = []
  const ceilings: ThroughputSample[] = []
  for (let round = 0; round < THROUGHPUT_ROUNDS && !rounds.at(-1)?.failed; round++) {
    checkDeadline(`before throughput round ${round + 1}`)
    rounds.push(await libraryThroughput(alpha, beta))
    for (const load of LOADS) {
      checkDeadline(`before the ${load.size} B floor (round ${round + 1})`)
      floors.push(await floorThroughput(alpha.host, server, load))
      ceilings.push(await floorThroughput(alpha.host, server, load, true))
    }
  }
  const shipped = mergeRounds(rounds)
  let relaxed: LoadReport | undefined
  if (shipped.failed) {
    const { size, sent, history } = shipped.failed
    notes.push(
      `with the default connection monitor the link dropped under load (${size} B, after ${sent} messages): ${history.join('; ')}`,
    )
    checkDeadline('before the diagnostic throughput run')
    relaxed = await libraryThroughput(alpha, beta, RELAXED_PING_MS)
    if (relaxed.failed)
      notes.push(`with a ${RELAXED_PING_MS} ms monitor ping too: ${relaxed.failed.history.join('; ')}`)
  }
  notes.push(
    `throughput figures are the median of ${rounds.length} rounds alternating sdnet, floor and ceiling`,
  )
  notes.push(
    `event loops stalled (no timer fired, no packet was read) for up to ${Math.round(shipped.maxLoopDelayMs)} ms in the sender and ${Math.round(shipped.receiverMaxLoopDelayMs ?? Number.NaN)} ms in the receiver`,
  )
  const all = [...rounds.flatMap((report) => report.results), ...floors, ...ceilings]
  return { shipped, relaxed, floor: medians(floors), ceiling: medians(ceilings), rounds: rounds.length, all }
}

/** One report for the rounds: a failed round as it is, else each size's median run and the worst stalls. */
function mergeRounds(rounds: LoadReport[]): LoadReport {
  const failed = rounds.find((report) => report.failed)
  if (failed !== undefined) return failed
  const stalls = (pick: (report: LoadReport) => number | undefined) =>
    Math.max(...rounds.map((report) => pick(report) ?? Number.NaN))
  return {
    connectMs: percentile(
      rounds.map((report) => report.connectMs),
      50,
    ),
    results: medians(rounds.flatMap((report) => report.results)),
    maxLoopDelayMs: stalls((report) => report.maxLoopDelayMs),
    receiverMaxLoopDelayMs: stalls((report) => report.receiverMaxLoopDelayMs),
  }
}

/** For each size in LOADS, the sample with the median rate (the lower middle one of an even count). */
function medians(samples: ThroughputSample[]): ThroughputSample[] {
  return LOADS.flatMap(({ size }) => {
    const runs = samples.filter((sample) => sample.size === size).sort((a, b) => rateOf(a) - rateOf(b))
    const middle = runs[Math.floor((runs.length - 1) / 2)]
    return middle === undefined ? [] : [middle]
  })
}

async function bench(bed: Testbed, notes: string[]): Promise<void> {
  const alpha = await bed.device(0, 'alpha')
  const beta = await bed.device(1, 'beta')
  const server = await startFloorServer(beta.host)
  try {
    const { rtt, restart, loss } = await measureDaemons(bed, alpha, beta, server, notes)
    const throughput = await measureThroughput(alpha, beta, server, notes)
    report({ rtt, restart, loss, ...throughput }, notes)
  } finally {
    await server.stop()
  }
}

function report(
  figures: {
    rtt: { sdnet: number[]; floor: number[] }
    restart: Timings
    loss: number[]
    shipped: LoadReport
    relaxed: LoadReport | undefined
    floor: ThroughputSample[]
    ceiling: ThroughputSample[]
    /** Throughput rounds run, and every sample of them. */
    rounds: number
    all: ThroughputSample[]
  },
  notes: string[],
): void {
  const { rtt, restart, loss, shipped, relaxed, floor, ceiling, rounds, all } = figures
  for (const sample of [...all, ...(relaxed?.results ?? [])]) {
    if (sample.received !== sample.sent)
      notes.push(`${sample.size} B: sent ${sample.sent}, the receiver counted ${sample.received}`)
  }
  const bySize = (samples: ThroughputSample[] | undefined, size: number) =>
    samples?.find((sample) => sample.size === size)
  const throughput = LOADS.flatMap(({ size }) => {
    const label = `one way, ${size < 1024 ? `${size} B` : `${size / 1024} KiB`}`
    const floorSample = bySize(floor, size)
    const ceilingSample = bySize(ceiling, size)
    const reachable = rateOf(ceilingSample) / rateOf(floorSample)
    notes.push(
      `${label}: the ceiling (the floor plus only the spec's second AEAD layer) reaches ${reachable.toFixed(2)}x the raw stream here; sdnet's target is a share of the ceiling`,
    )
    const sdnetSample = bySize(shipped.results, size)
    if (rateOf(sdnetSample) > rateOf(ceilingSample) * 1.05)
      notes.push(
        `${label}: sdnet measured above the ceiling, which it cannot beat: a run was disturbed (or the ceiling is wrong); run the bench again`,
      )
    return [
      ...throughputRows(label, sdnetSample, floorSample, true, ceilingSample),
      ...(relaxed
        ? throughputRows(
            `  ${RELAXED_PING_MS / 1000} s monitor ping`,
            bySize(relaxed.results, size),
            floorSample,
            false,
          )
        : []),
    ]
  })
  const rttTarget = { kind: 'ratio<=' as const, limit: TARGET_RTT_RATIO }
  const rows: Row[] = [
    {
      label: 'round trip p50 (ms)',
      value: percentile(rtt.sdnet, 50),
      floor: percentile(rtt.floor, 50),
      target: rttTarget,
    },
    {
      label: 'round trip p99 (ms)',
      value: percentile(rtt.sdnet, 99),
      floor: percentile(rtt.floor, 99),
      target: rttTarget,
    },
    ...throughput,
    {
      label: 'reconnect after restart p50 (ms)',
      value: percentile(restart.samples, 50),
      target: { kind: 'below', limit: TARGET_RECONNECT_MS },
    },
    { label: '  max (ms)', value: Math.max(...restart.samples) },
    ...(restart.startup.length > 0
      ? [
          { label: '  of which start-up (to ready) p50 (ms)', value: percentile(restart.startup, 50) },
          { label: '  of which ready -> connected p50 (ms)', value: percentile(restart.afterReady, 50) },
        ]
      : []),
    {
      label: 'frozen peer noticed p50 (ms)',
      value: percentile(loss, 50),
      target: { kind: 'below', limit: TARGET_LOSS_MS },
    },
    { label: '  max (ms)', value: Math.max(...loss) },
    { label: 'library node start -> connected (ms)', value: shipped.connectMs },
  ]
  if (restart.startup.length < restart.samples.length)
    notes.push('the daemon log did not show every start; start-up is the median of those it showed')

  printTable(rows, notes)
  const summary = (samples: number[]) => ({
    runs: samples.length,
    p50: round(percentile(samples, 50)),
    p99: round(percentile(samples, 99)),
    min: round(Math.min(...samples)),
    max: round(Math.max(...samples)),
  })
  const perMessage = (ms: number | undefined, sample: ThroughputSample) =>
    ms === undefined ? null : round((ms * 1000) / sample.received)
  const load = (sample: ThroughputSample) => ({
    size: sample.size,
    sent: sample.sent,
    received: sample.received,
    msgPerS: Math.round(sample.received / (sample.ms / 1000)),
    mbPerS: round(sample.bytes / (sample.ms / 1000) / 1e6),
    cpuUsPerMsg: {
      sender: perMessage(sample.senderCpuMs, sample),
      receiver: perMessage(sample.receiverCpuMs, sample),
    },
    ...(sample.receiverGcMs !== undefined && { receiverGcUsPerMsg: perMessage(sample.receiverGcMs, sample) }),
  })
  console.log(
    JSON.stringify({
      rtt: summary(rtt.sdnet),
      rttFloor: summary(rtt.floor),
      throughput: shipped.results.map(load),
      throughputFailed: shipped.failed ?? null,
      throughputRelaxedMonitor: relaxed
        ? { pingIntervalMs: RELAXED_PING_MS, results: relaxed.results.map(load) }
        : null,
      throughputFloor: floor.map(load),
      throughputCeiling: ceiling.map(load),
      throughputRounds: rounds,
      maxLoopDelayMs: {
        sender: Math.round(shipped.maxLoopDelayMs),
        receiver: Math.round(shipped.receiverMaxLoopDelayMs ?? Number.NaN),
      },
      reconnect: summary(restart.samples),
      reconnectStartup: restart.startup.length > 0 ? summary(restart.startup) : null,
      reconnectAfterReady: restart.afterReady.length > 0 ? summary(restart.afterReady) : null,
      frozenNoticed: summary(loss),
      libraryConnectMs: round(shipped.connectMs),
      targets: {
        rttRatio: TARGET_RTT_RATIO,
        ceilingRatio: { large: TARGET_CEILING_RATIO_LARGE, small: TARGET_CEILING_RATIO_SMALL },
        reconnectMs: TARGET_RECONNECT_MS,
        frozenNoticedMs: TARGET_LOSS_MS,
      },
      met: Object.fromEntries(rows.filter((row) => row.target).map((row) => [row.label, met(row)])),
      notes: [...new Set(notes)],
    }),
  )
}

async function main(): Promise<void> {
  const [mode, ...args] = process.argv.slice(2)
  if (mode === 'load-receive') return loadReceive(args[0]!, args[1])
  if (mode === 'load-send') return loadSend(args[0]!, args[1]!, JSON.parse(args[2]!) as Plan, args[3])
  const capability = canCreateNamespaces()
  if (!capability.ok) {
    console.log(`messaging benchmark skipped: ${capability.reason}`)
    return
  }
  const bed = await createTestbed(2)
  const notes: string[] = []
  try {
    await bench(bed, notes)
  } finally {
    await bed.cleanup()
  }
}

await main()
