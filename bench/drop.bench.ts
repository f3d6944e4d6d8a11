// How fast and how lean file drops are, measured between two paired library nodes (`createNode`, one process each,
// commanded like daemons) on two virtual hosts (network namespaces joined by a bridge, mDNS confined to them), their
// data dirs and files on disk under one temporary folder, next to floors measured in the same run
// (bench/drop-floor.ts: bare libp2p and raw TCP between the same namespaces, fs to fs, no hashing):
//
//   one big file   disk-to-disk throughput of a 1 GiB file of random bytes (from `drop.send` until the sender's
//                  result: hashing, checks, checkpoints and the receiver's verification included), in rounds that
//                  alternate with the floors; each figure is the median of its rounds
//                  vs the same bytes from the file to a file on a raw libp2p stream, 256 KiB length-prefixed
//                  frames, one fdatasync at the end                                   target >= 0.8x
//                  beside raw TCP doing the same (a floor under the libp2p floor), and the CPU each side spent
//   peak RSS       of the sender's and the receiver's process during the big drop (VmHWM, reset before each
//                  round; the worst round)                                           target < 150 MB each
//   many files     10,000 files of 4 KiB in one folder, files per second              target >= 2,000/s
//                  vs the raw libp2p stream moving the same files (a name frame and a data frame each, written
//                  with writeFile), and beside the same floor with an fdatasync per file, one file after the
//                  other (what making each file durable before the next costs here)
//   resume         the receiver is killed (SIGKILL) at about half of the big drop and restarted on the same data
//                  dir; the drop goes on by itself. Bytes the sender sent beyond the file's size (counted by the
//                  `drop.rewriteChunk` hook, which passes every chunk through), in % of the file  target < 5%
//
// Where a target is missed, one more drop and its floor run under V8's sampling profiler, and the notes say where
// each side's CPU went (by function, GC included) and what its memory held. Every received file is checked against
// its source (SHA-256) and removed before the next run.
//
// Prints a table, then one JSON line. Run as root: `node bench/drop.bench.ts` (`npm run bench`); `--quick` runs
// 16 MiB, 200 files and one round (test/bench/drop-bench.test.ts). The same file is the node process run inside a
// namespace: `peer <config json>`, answering NDJSON commands on stdin (see Peer).

import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, rmSync } from 'node:fs'
import { mkdir, mkdtemp, open, readdir, rm, stat, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { WatchedProcess } from '../test/helpers/cli.ts'
import { canCreateNamespaces, createLan, type Host } from '../test/helpers/netns.ts'
import { type DropFloorServer, type FloorTransfer, floorTransfer, startDropFloor } from './drop-floor.ts'
import { cpuMs } from './messaging-floor.ts'
import {
  fileBackedRss,
  type GcPauses,
  gcMeter,
  gcSince,
  Profiler,
  peakRss,
  resetPeakRss,
  type Top,
} from './process-stats.ts'
import { benchDeadline, round } from './stats.ts'
import { met, printTable, type Row } from './table.ts'

const MiB = 1024 * 1024
const QUICK = process.argv.includes('--quick')
const PLAN = QUICK
  ? { fileBytes: 16 * MiB, files: 200, rounds: 1, deadlineMs: 120_000 }
  : { fileBytes: 1024 * MiB, files: 10_000, rounds: 3, deadlineMs: 9.5 * 60_000 }
const SMALL_FILE_BYTES = 4096
const STEP_TIMEOUT_MS = 30_000
/** A whole drop of the big file, or of the folder; far above what either takes here (5-15 s). */
const DROP_TIMEOUT_MS = 180_000
const TARGET_THROUGHPUT_RATIO = 0.8
const TARGET_RSS_MB = 150
const TARGET_FILES_PER_S = 2_000
const TARGET_RESENT_PERCENT = 5
const BIG_NAME = 'big.bin'
const FOLDER_NAME = 'many'

const deadline = benchDeadline(PLAN.deadlineMs)
const checkDeadline = deadline.check

/** Whether a diagnostic run still fits: a third of the time bound must be left (for it and the resume run). */
function timeLeft(what: string, notes: string[]): boolean {
  const left = deadline.leftMs()
  const enough = left > PLAN.deadlineMs / 3
  if (!enough) notes.push(`${what} was skipped: ${Math.round(left / 1000)} s were left`)
  return enough
}

// ---- the node process (inside a namespace)

interface PeerConfig {
  name: string
  dataDir: string
  /** The receive folder. */
  dropDir: string
  /** The host's address: libp2p listens there and mDNS stays on its interface. */
  address: string
}

/** Cumulative costs of a node process; the bench takes differences. */
interface Usage {
  cpuMs: number
  gc: GcPauses
  /** Event loop busy time (ms): how much of the wall time the main thread was working. */
  busyMs: number
  /** process.memoryUsage() now, and the most of each field sampled every 20 ms since the last `usage` (bytes). */
  memory: Memory
  memoryMax: Memory
}

interface Memory {
  rss: number
  /** The part of rss mapped from files: the node binary and its libraries. */
  rssFile: number
  heapTotal: number
  heapUsed: number
  /** Memory outside the JS heap held by JS objects: Buffers and ArrayBuffers, mostly. */
  external: number
  arrayBuffers: number
}

/** process.memoryUsage(), and with `files` how much of rss is mapped from files (read from /proc). */
function memoryNow(files = false): Memory {
  const { rss, heapTotal, heapUsed, external, arrayBuffers } = process.memoryUsage()
  return { rss, rssFile: files ? fileBackedRss() : 0, heapTotal, heapUsed, external, arrayBuffers }
}

/** What the sender reports for one drop. */
interface SendReport {
  outcome: string
  reason?: string
  message?: string
  files: number
  bytes: number
  /** `drop.send` until the result; and until the transfer started sending (offer and consent). */
  ms: number
  acceptedMs: number | undefined
  /** Chunk bytes the sender wrote to data streams during this drop. */
  chunkBytes: number
}

/**
 * A library node commanded like a daemon: one JSON command a line on stdin (`{ id, cmd, ... }`), one JSON answer a
 * line on stdout (`{ id, ... }` or `{ id, error }`); lines without an id are events (`ready`, `half`, drops ending).
 * Receives every offer it gets.
 */
async function peer(config: PeerConfig): Promise<void> {
  const { createNode } = await import('../actors/index.ts')
  const print = (value: object) => process.stdout.write(`${JSON.stringify(value)}\n`)
  let chunkBytes = 0
  let halfAt = Number.POSITIVE_INFINITY
  const node = await createNode({
    name: config.name,
    dataDir: config.dataDir,
    listen: [`/ip4/${config.address}/tcp/0`],
    mdns: { interface: config.address },
    dht: false,
    drop: {
      dir: config.dropDir,
      rewriteChunk: (frame) => {
        chunkBytes += frame.data.byteLength
        if (chunkBytes >= halfAt) {
          halfAt = Number.POSITIVE_INFINITY
          print({ event: 'half', chunkBytes })
        }
        return frame
      },
    },
  })
  const gc = gcMeter()
  let memoryMax = memoryNow()
  setInterval(() => {
    const now = memoryNow()
    for (const key of Object.keys(now) as Array<keyof Memory>)
      memoryMax[key] = Math.max(memoryMax[key], now[key])
  }, 20).unref()
  node.drop.on('offer', (offer) => void offer.accept())
  node.on('*', (event) => {
    if (event.type === 'DropCompleted' || event.type === 'DropFailed')
      print({ event: event.type, at: Date.now() })
  })
  const profiler = new Profiler()
  let pairing: Promise<{ outcome: string }> | undefined
  const commands: Record<string, (args: Record<string, unknown>) => Promise<object> | object> = {
    generate: () => {
      const session = node.pair.generate({ autoAccept: true })
      pairing = session.result
      return { code: session.code }
    },
    paired: async () => ({ outcome: (await pairing)?.outcome }),
    join: async ({ code }) => ({ outcome: (await node.pair.join(code as string).result).outcome }),
    connected: async () => {
      const until = performance.now() + STEP_TIMEOUT_MS
      while (!node.devices().some((device) => device.state === 'connected')) {
        if (performance.now() > until)
          throw new Error(`no paired device connected within ${STEP_TIMEOUT_MS} ms`)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      return {}
    },
    'profile.start': () => profiler.start(),
    'profile.stop': async () => ({ top: await profiler.stop() }),
    usage: () => {
      const elu = performance.eventLoopUtilization()
      const answer = {
        cpuMs: cpuMs(process.cpuUsage()),
        gc: { ...gc },
        busyMs: elu.active,
        memory: memoryNow(true),
        memoryMax,
      }
      memoryMax = memoryNow()
      return answer satisfies Usage
    },
    send: async ({ device, paths, half }) => {
      chunkBytes = 0
      halfAt = typeof half === 'number' ? half : Number.POSITIVE_INFINITY
      const started = performance.now()
      let acceptedMs: number | undefined
      const transfer = await node.drop.send(device as string, paths as string[])
      transfer.on((event) => {
        if (event.type === 'state' && event.state.includes('Sending'))
          acceptedMs ??= performance.now() - started
      })
      const result = await transfer.result
      const done = performance.now() - started
      const completed = result.outcome === 'completed' ? result : undefined
      return {
        outcome: result.outcome,
        ...('reason' in result && { reason: result.reason }),
        ...('message' in result && { message: result.message }),
        files: completed?.files.length ?? 0,
        bytes: completed?.bytes ?? 0,
        ms: done,
        acceptedMs,
        chunkBytes,
      } satisfies SendReport
    },
  }
  await node.start()
  process.once('SIGTERM', () => {
    node.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  })
  print({ event: 'ready' })
  for await (const line of createInterface({ input: process.stdin })) {
    const { id, cmd, ...args } = JSON.parse(line) as { id: number; cmd: string }
    const command = commands[cmd]
    Promise.resolve()
      .then(() => {
        if (command === undefined) throw new Error(`unknown command ${cmd}`)
        return command(args)
      })
      .then(
        (answer) => print({ id, ...answer }),
        (error: Error) => print({ id, error: `${error.name}: ${error.message}` }),
      )
  }
  // stdin closed: the bench is gone, and so is this node.
  await node.stop()
  process.exit(0)
}

// ---- the node processes, from the bench process

class Peer {
  readonly config: PeerConfig
  readonly process: WatchedProcess
  #calls = 0

  private constructor(config: PeerConfig, process: WatchedProcess) {
    this.config = config
    this.process = process
  }

  /** Starts the node process on `host` and resolves once its node runs. */
  static async start(host: Host, config: PeerConfig): Promise<Peer> {
    const child = host.run(process.execPath, [import.meta.filename, 'peer', JSON.stringify(config)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const peer = new Peer(config, new WatchedProcess(child, `${config.name} on host ${host.name}`))
    await peer.process.waitForLine((text) => text.includes('"event":"ready"'), 'ready', STEP_TIMEOUT_MS)
    return peer
  }

  get pid(): number {
    const pid = this.process.child.pid
    if (pid === undefined) throw new Error(`${this.process.label} has no pid`)
    return pid
  }

  /** Sends a command and resolves with its answer; rejects with the process's transcript on error or timeout. */
  async call<T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = STEP_TIMEOUT_MS): Promise<T> {
    const id = ++this.#calls
    this.process.child.stdin?.write(`${JSON.stringify({ id, cmd, ...args })}\n`)
    const line = await this.process.waitForLine(
      (text) => text.startsWith(`{"id":${id},`) || text === `{"id":${id}}`,
      `the answer to ${cmd}`,
      timeoutMs,
    )
    const answer = JSON.parse(line.text) as T & { error?: string }
    if (answer.error !== undefined)
      throw new Error(`${cmd} failed: ${answer.error}\n${this.process.transcript()}`)
    return answer
  }

  async stop(): Promise<void> {
    this.process.kill()
    await this.process.finished(STEP_TIMEOUT_MS).catch(() => {})
  }
}

// ---- one drop and its costs

interface Side {
  cpuMs: number
  gc: GcPauses
  busyMs: number
  /** VmHWM over the drop (bytes). */
  peakRss: number
  /** Memory at rest before the drop, and the most of each field during it. */
  atRest: Memory
  memoryMax: Memory
}

interface DropRun {
  report: SendReport
  sender: Side
  receiver: Side
}

async function usage(peer: Peer): Promise<Usage> {
  return peer.call<Usage>('usage')
}

/** One drop of `paths` from alpha to beta, with what each process spent on it. */
async function dropRun(alpha: Peer, beta: Peer, paths: string[], half?: number): Promise<DropRun> {
  const peers = [alpha, beta] as const
  for (const peer of peers) resetPeakRss(peer.pid)
  const before = await Promise.all(peers.map(usage))
  const report = await alpha.call<SendReport>(
    'send',
    { device: beta.config.name, paths, half },
    DROP_TIMEOUT_MS,
  )
  if (report.outcome !== 'completed')
    throw new Error(`the drop ended ${report.outcome}: ${report.reason} ${report.message}`)
  const after = await Promise.all(peers.map(usage))
  const side = (i: 0 | 1): Side => ({
    cpuMs: after[i]!.cpuMs - before[i]!.cpuMs,
    gc: gcSince(before[i]!.gc, after[i]!.gc),
    busyMs: after[i]!.busyMs - before[i]!.busyMs,
    peakRss: peakRss(peers[i].pid),
    atRest: before[i]!.memory,
    memoryMax: after[i]!.memoryMax,
  })
  return { report, sender: side(0), receiver: side(1) }
}

/** The resume run: beta is killed once alpha has sent about half of the big file, and started again. */
async function resumeRun(alpha: Peer, beta: Peer, host: Host, file: string, size: number) {
  const mark = alpha.process.lines.length
  const sending = alpha.call<SendReport>(
    'send',
    { device: beta.config.name, paths: [file], half: size / 2 },
    DROP_TIMEOUT_MS,
  )
  const half = await alpha.process.waitForLine(
    (text) => text.includes('"event":"half"'),
    'half of the file sent',
    DROP_TIMEOUT_MS,
    mark,
  )
  const killedAt = performance.now()
  process.kill(beta.pid, 'SIGKILL')
  await beta.process.finished(STEP_TIMEOUT_MS).catch(() => {})
  const restarted = await Peer.start(host, beta.config)
  const restartedAt = performance.now()
  const report = await sending
  const doneAt = performance.now()
  if (report.outcome !== 'completed')
    throw new Error(`the resumed drop ended ${report.outcome}: ${report.reason} ${report.message}`)
  const { chunkBytes: atKill } = JSON.parse(half.text) as { chunkBytes: number }
  return {
    peer: restarted,
    report,
    /** Chunk bytes sent when the receiver was killed. */
    atKill,
    resent: report.chunkBytes - size,
    restartMs: restartedAt - killedAt,
    /** From the new process being ready until the drop completed. */
    afterRestartMs: doneAt - restartedAt,
  }
}

// ---- files on disk

async function writeRandomFile(file: string, size: number): Promise<void> {
  const handle = await open(file, 'wx')
  try {
    for (let at = 0; at < size; at += 16 * MiB) {
      const piece = randomBytes(Math.min(16 * MiB, size - at))
      await handle.write(piece, 0, piece.byteLength, at)
    }
  } finally {
    await handle.close()
  }
}

async function writeSmallFiles(folder: string, count: number): Promise<void> {
  await mkdir(folder)
  const width = String(count - 1).length
  for (let i = 0; i < count; i += 1)
    await writeFile(
      path.join(folder, `f${String(i).padStart(width, '0')}.bin`),
      randomBytes(SMALL_FILE_BYTES),
    )
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const piece of createReadStream(file, { highWaterMark: 4 * MiB })) hash.update(piece as Buffer)
  return hash.digest('hex')
}

/** The received copy is the source to the byte; then it is removed, for the next round. */
async function checkAndRemoveFile(received: string, sourceHash: string, what: string): Promise<void> {
  const got = await sha256(received)
  if (got !== sourceHash) throw new Error(`${what}: ${received} differs from the source (sha256 ${got})`)
  await rm(received)
}

async function checkAndRemoveFolder(received: string, files: number, what: string): Promise<void> {
  const names = await readdir(received)
  if (names.length !== files) throw new Error(`${what}: ${received} holds ${names.length} of ${files} files`)
  const sizes = await Promise.all(
    names.slice(0, 50).map(async (name) => (await stat(path.join(received, name))).size),
  )
  if (sizes.some((size) => size !== SMALL_FILE_BYTES))
    throw new Error(`${what}: a received file has another size`)
  await rm(received, { recursive: true })
}

// ---- the bench

interface Figures {
  big: { drops: DropRun[]; floors: FloorTransfer[]; tcp: FloorTransfer[]; profile?: Profiles }
  many: { drops: DropRun[]; floors: FloorTransfer[]; synced: FloorTransfer[]; profile?: Profiles }
  resume: Awaited<ReturnType<typeof resumeRun>> & { size: number }
}

/** A diagnostic drop and floor run under the sampling profiler: each side's busiest functions, and the runs. */
interface Profiles {
  run: DropRun
  sender: Top
  receiver: Top
  floor: FloorTransfer
}

/** One more drop, both nodes under the profiler. */
async function profiledDrop(alpha: Peer, beta: Peer, paths: string[]): Promise<Omit<Profiles, 'floor'>> {
  await Promise.all([alpha.call('profile.start'), beta.call('profile.start')])
  const run = await dropRun(alpha, beta, paths)
  const [sender, receiver] = await Promise.all(
    [alpha, beta].map(async (peer) => (await peer.call<{ top: Top }>('profile.stop')).top),
  )
  return { run, sender: sender!, receiver: receiver! }
}

/** The median drop's rate below the target: the big file against the median floor, the folder in files/s. */
function bigMissed(big: Figures['big']): boolean {
  const drop = median(big.drops, (run) => mbPerS(PLAN.fileBytes, run.report.ms))
  const floor = median(big.floors, (run) => mbPerS(run.bytes, run.ms))
  return mbPerS(PLAN.fileBytes, drop.report.ms) < TARGET_THROUGHPUT_RATIO * mbPerS(floor.bytes, floor.ms)
}

function manyMissed(many: Figures['many']): boolean {
  const drop = median(many.drops, (run) => PLAN.files / run.report.ms)
  return PLAN.files / (drop.report.ms / 1000) < TARGET_FILES_PER_S
}

async function bench(hosts: [Host, Host], root: string, notes: string[]): Promise<Figures> {
  const [a, b] = hosts
  const source = path.join(root, 'source')
  const floorDir = path.join(root, 'floor-received')
  await Promise.all([mkdir(source), mkdir(floorDir)])
  const bigFile = path.join(source, BIG_NAME)
  const folder = path.join(source, FOLDER_NAME)
  await writeRandomFile(bigFile, PLAN.fileBytes)
  await writeSmallFiles(folder, PLAN.files)
  const sourceHash = await sha256(bigFile)

  const config = (name: string, host: Host): PeerConfig => ({
    name,
    dataDir: path.join(root, name, 'data'),
    dropDir: path.join(root, name, 'received'),
    address: host.address,
  })
  const alpha = await Peer.start(a, config('alpha', a))
  let beta = await Peer.start(b, config('beta', b))
  let server: DropFloorServer | undefined
  try {
    const { code } = await alpha.call<{ code: string }>('generate')
    const joined = await beta.call<{ outcome: string }>('join', { code })
    const generated = await alpha.call<{ outcome: string }>('paired')
    if (joined.outcome !== 'paired' || generated.outcome !== 'paired') throw new Error('pairing failed')
    await Promise.all([alpha.call('connected'), beta.call('connected')])
    server = await startDropFloor(b, floorDir)
    const received = (name: string) => path.join(beta.config.dropDir, name)

    const move = { mode: 'file', source: bigFile, sync: 'end' } as const
    const big: Figures['big'] = { drops: [], floors: [], tcp: [] }
    for (let round = 0; round < PLAN.rounds; round += 1) {
      checkDeadline(`before big-file round ${round + 1}`)
      big.drops.push(await dropRun(alpha, beta, [bigFile]))
      await checkAndRemoveFile(received(BIG_NAME), sourceHash, 'drop')
      big.floors.push(await floorTransfer(a, server, { transport: 'libp2p', ...move }))
      await checkAndRemoveFile(path.join(floorDir, BIG_NAME), sourceHash, 'libp2p floor')
      big.tcp.push(await floorTransfer(a, server, { transport: 'tcp', ...move }))
      await checkAndRemoveFile(path.join(floorDir, BIG_NAME), sourceHash, 'TCP floor')
    }

    const many: Figures['many'] = { drops: [], floors: [], synced: [] }
    for (let round = 0; round < PLAN.rounds; round += 1) {
      checkDeadline(`before many-files round ${round + 1}`)
      many.drops.push(await dropRun(alpha, beta, [folder]))
      await checkAndRemoveFolder(received(FOLDER_NAME), PLAN.files, 'drop')
      for (const [sync, into] of [
        ['none', many.floors],
        ['each', many.synced],
      ] as const) {
        into.push(
          await floorTransfer(a, server, { transport: 'libp2p', mode: 'files', source: folder, sync }),
        )
        await checkAndRemoveFolder(path.join(floorDir, FOLDER_NAME), PLAN.files, 'libp2p floor')
      }
    }
    // Where a target was missed: the same drop and its floor once more, under the profiler.
    if (bigMissed(big) && timeLeft('the profiled big-file drop', notes)) {
      const drop = await profiledDrop(alpha, beta, [bigFile])
      await checkAndRemoveFile(received(BIG_NAME), sourceHash, 'profiled drop')
      const floor = await floorTransfer(a, server, { transport: 'libp2p', ...move, profile: true })
      await checkAndRemoveFile(path.join(floorDir, BIG_NAME), sourceHash, 'profiled libp2p floor')
      big.profile = { ...drop, floor }
    }
    if (manyMissed(many) && timeLeft('the profiled folder drop', notes)) {
      const drop = await profiledDrop(alpha, beta, [folder])
      await checkAndRemoveFolder(received(FOLDER_NAME), PLAN.files, 'profiled drop')
      const files = {
        transport: 'libp2p',
        mode: 'files',
        source: folder,
        sync: 'none',
        profile: true,
      } as const
      const floor = await floorTransfer(a, server, files)
      await checkAndRemoveFolder(path.join(floorDir, FOLDER_NAME), PLAN.files, 'profiled libp2p floor')
      many.profile = { ...drop, floor }
    }

    checkDeadline('before the resume run')
    const resumed = await resumeRun(alpha, beta, b, bigFile, PLAN.fileBytes)
    beta = resumed.peer
    await checkAndRemoveFile(received(BIG_NAME), sourceHash, 'resumed drop')
    return { big, many, resume: { ...resumed, size: PLAN.fileBytes } }
  } catch (error) {
    notes.push(`the bench failed: ${(error as Error).message.split('\n')[0]}`)
    throw error
  } finally {
    await server?.stop()
    await Promise.all([alpha.stop(), beta.stop()])
  }
}

// ---- report

/** The run with the median of `value` (the lower middle one of an even count). */
function median<T>(runs: T[], value: (run: T) => number): T {
  const sorted = [...runs].sort((x, y) => value(x) - value(y))
  return sorted[Math.floor((sorted.length - 1) / 2)]!
}

const mbPerS = (bytes: number, ms: number) => bytes / (ms / 1000) / 1e6
const mb = (bytes: number) => bytes / 1e6
const gcMs = (gc: GcPauses) => gc.minorMs + gc.majorMs

/** The figures the table shows, each from the median run of its kind. */
function pick(figures: Figures) {
  const { big, many } = figures
  const drop = median(big.drops, (run) => mbPerS(PLAN.fileBytes, run.report.ms))
  const floor = median(big.floors, (run) => mbPerS(run.bytes, run.ms))
  const tcp = median(big.tcp, (run) => mbPerS(run.bytes, run.ms))
  const files = median(many.drops, (run) => PLAN.files / run.report.ms)
  const filesFloor = median(many.floors, (run) => run.files / run.ms)
  const filesSynced = median(many.synced, (run) => run.files / run.ms)
  return { drop, floor, tcp, files, filesFloor, filesSynced }
}

function report(figures: Figures, notes: string[]): void {
  const { big, many, resume } = figures
  const size = PLAN.fileBytes
  const { drop, floor, tcp, files, filesFloor, filesSynced } = pick(figures)
  const perMiB = (ms: number, bytes = size) => ms / (bytes / MiB)
  const perFile = (ms: number) => (ms * 1000) / PLAN.files
  const worstPeak = (who: 'sender' | 'receiver') => Math.max(...big.drops.map((run) => run[who].peakRss))
  const floorPeak = (who: 'sender' | 'receiver') =>
    Math.max(...big.floors.map((run) => (who === 'sender' ? run.senderPeakRss : run.receiverPeakRss)))
  const filesPerS = (count: number, ms: number) => count / (ms / 1000)
  const sizeLabel = size >= 1024 * MiB ? `${size / (1024 * MiB)} GiB` : `${size / MiB} MiB`
  const rssTarget = { kind: 'below', limit: TARGET_RSS_MB, unit: 'MB' } as const

  const rows: Row[] = [
    {
      label: `${sizeLabel} disk to disk (MB/s)`,
      value: mbPerS(size, drop.report.ms),
      floor: mbPerS(floor.bytes, floor.ms),
      target: { kind: 'ratio>=', limit: TARGET_THROUGHPUT_RATIO },
    },
    {
      label: '  raw TCP, same files (MB/s)',
      value: mbPerS(tcp.bytes, tcp.ms),
      floor: mbPerS(floor.bytes, floor.ms),
    },
    {
      label: '  CPU per MiB, sender (ms)',
      value: perMiB(drop.sender.cpuMs),
      floor: perMiB(floor.senderCpuMs, floor.bytes),
    },
    {
      label: '  CPU per MiB, receiver (ms)',
      value: perMiB(drop.receiver.cpuMs),
      floor: perMiB(floor.receiverCpuMs, floor.bytes),
    },
    {
      label: '    of which GC pauses, sender (ms)',
      value: perMiB(gcMs(drop.sender.gc)),
      floor: perMiB(gcMs(floor.senderGc), floor.bytes),
    },
    {
      label: '    of which GC pauses, receiver (ms)',
      value: perMiB(gcMs(drop.receiver.gc)),
      floor: perMiB(gcMs(floor.receiverGc), floor.bytes),
    },
    {
      label: `  cores busy, both sides (of ${os.availableParallelism()})`,
      value: (drop.sender.cpuMs + drop.receiver.cpuMs) / drop.report.ms,
      floor: (floor.senderCpuMs + floor.receiverCpuMs) / floor.ms,
    },
    {
      label: 'peak RSS, sender (MB)',
      value: mb(worstPeak('sender')),
      floor: mb(floorPeak('sender')),
      target: rssTarget,
    },
    { label: '  at rest before the first drop (MB)', value: mb(big.drops[0]!.sender.atRest.rss) },
    {
      label: 'peak RSS, receiver (MB)',
      value: mb(worstPeak('receiver')),
      floor: mb(floorPeak('receiver')),
      target: rssTarget,
    },
    { label: '  at rest before the first drop (MB)', value: mb(big.drops[0]!.receiver.atRest.rss) },
    {
      label: `${PLAN.files} x 4 KiB in a folder (files/s)`,
      value: filesPerS(PLAN.files, files.report.ms),
      floor: filesPerS(filesFloor.files, filesFloor.ms),
      target: { kind: 'atLeast', limit: TARGET_FILES_PER_S, unit: '/s' },
    },
    {
      label: '  floor + fdatasync per file (files/s)',
      value: filesPerS(filesSynced.files, filesSynced.ms),
      floor: filesPerS(filesFloor.files, filesFloor.ms),
    },
    {
      label: '  CPU per file, sender (us)',
      value: perFile(files.sender.cpuMs),
      floor: perFile(filesFloor.senderCpuMs),
    },
    {
      label: '  CPU per file, receiver (us)',
      value: perFile(files.receiver.cpuMs),
      floor: perFile(filesFloor.receiverCpuMs),
    },
    { label: '  offer until sending (ms)', value: files.report.acceptedMs ?? Number.NaN },
    {
      label: 'resent after kill -9 at half (%)',
      value: (resume.resent / size) * 100,
      target: { kind: 'below', limit: TARGET_RESENT_PERCENT, unit: '%' },
    },
    { label: '  kill until restarted node ready (ms)', value: resume.restartMs },
    { label: '  ready until drop completed (ms)', value: resume.afterRestartMs },
  ]
  explain(figures, rows, notes)
  notes.push(
    `throughput and files/s are the median of ${big.drops.length} rounds alternating the drop and its floors; peak RSS is the worst round`,
  )
  printTable(rows, notes)
  const side = (run: DropRun) => ({
    ms: round(run.report.ms),
    chunkBytes: run.report.chunkBytes,
    acceptedMs: round(run.report.acceptedMs ?? Number.NaN),
    sender: summarizeSide(run.sender),
    receiver: summarizeSide(run.receiver),
  })
  console.log(
    JSON.stringify({
      plan: PLAN,
      big: { drops: big.drops.map(side), floors: big.floors, tcp: big.tcp },
      many: { drops: many.drops.map(side), floors: many.floors, synced: many.synced },
      resume: {
        size: resume.size,
        chunkBytes: resume.report.chunkBytes,
        atKill: resume.atKill,
        resent: resume.resent,
        restartMs: round(resume.restartMs),
        afterRestartMs: round(resume.afterRestartMs),
      },
      profiles: {
        big: big.profile && { ...big.profile, run: side(big.profile.run) },
        many: many.profile && { ...many.profile, run: side(many.profile.run) },
      },
      targets: {
        throughputRatio: TARGET_THROUGHPUT_RATIO,
        rssMb: TARGET_RSS_MB,
        filesPerS: TARGET_FILES_PER_S,
        resentPercent: TARGET_RESENT_PERCENT,
      },
      met: Object.fromEntries(rows.filter((row) => row.target).map((row) => [row.label, met(row)])),
      notes: [...new Set(notes)],
    }),
  )
}

function summarizeSide(side: Side) {
  return {
    cpuMs: round(side.cpuMs),
    busyMs: round(side.busyMs),
    gc: { ...side.gc, minorMs: round(side.gc.minorMs), majorMs: round(side.gc.majorMs) },
    peakRss: side.peakRss,
    atRestRss: side.atRest.rss,
    atRestHeapUsed: side.atRest.heapUsed,
    maxArrayBuffers: side.memoryMax.arrayBuffers,
    maxHeapUsed: side.memoryMax.heapUsed,
  }
}

/** Notes that say where the time (or the memory) goes, for each target that was missed. */
function explain(figures: Figures, rows: Row[], notes: string[]): void {
  const { drop, floor, files, filesSynced } = pick(figures)
  const missed = (label: string) => rows.some((row) => row.label.startsWith(label) && met(row) === false)
  const ms = (value: number) => `${Math.round(value)} ms`
  if (missed(`${PLAN.fileBytes >= 1024 * MiB ? '1 GiB' : `${PLAN.fileBytes / MiB} MiB`} disk`)) {
    const busy = (side: Side) => `main thread busy ${Math.round((side.busyMs / drop.report.ms) * 100)}%`
    const gc = (pauses: GcPauses) =>
      `GC ${pauses.major} mark-compacts ${ms(pauses.majorMs)}, ${pauses.minor} scavenges ${ms(pauses.minorMs)}`
    notes.push(
      `big file: the drop took ${ms(drop.report.ms)}; its sender used ${ms(drop.sender.cpuMs)} of CPU (${busy(drop.sender)}; ${gc(drop.sender.gc)}), its receiver ${ms(drop.receiver.cpuMs)} (${busy(drop.receiver)}; ${gc(drop.receiver.gc)}). The floor took ${ms(floor.ms)}; its sender ${ms(floor.senderCpuMs)} (${gc(floor.senderGc)}), its receiver ${ms(floor.receiverCpuMs)} (${gc(floor.receiverGc)}). Both sides share the machine's ${os.availableParallelism()} cores, so CPU per byte sets the pace`,
    )
  }
  if (missed(`${PLAN.files} x 4 KiB`)) {
    notes.push(
      `many files: the drop took ${ms(files.report.ms)} (${ms(files.report.acceptedMs ?? Number.NaN)} of it offer and consent), ${round((files.report.ms * 1000) / PLAN.files)} us a file, the receiver's CPU ${ms(files.receiver.cpuMs)} (GC ${ms(gcMs(files.receiver.gc))}), the sender's ${ms(files.sender.cpuMs)} (GC ${ms(gcMs(files.sender.gc))}); the floor with an fdatasync per file, one file after the other, takes ${ms(filesSynced.ms)} (${round((filesSynced.ms * 1000) / PLAN.files)} us a file)`,
    )
  }
  for (const [what, profile] of [
    ['big file', figures.big.profile],
    ['many files', figures.many.profile],
  ] as const) {
    if (profile === undefined) continue
    const list = (top: Top | undefined) =>
      (top ?? [])
        .slice(0, 8)
        .map((entry) => `${entry.fn} ${entry.ms} ms`)
        .join('; ')
    for (const who of ['sender', 'receiver'] as const) {
      const floorTop = who === 'sender' ? profile.floor.senderTop : profile.floor.receiverTop
      const floorCpu = who === 'sender' ? profile.floor.senderCpuMs : profile.floor.receiverCpuMs
      notes.push(
        `${what}, the ${who}'s main thread by function (self time, under the profiler): the drop (${ms(profile.run.report.ms)}, ${ms(profile.run[who].cpuMs)} of CPU): ${list(profile[who])}. The floor (${ms(profile.floor.ms)}, ${ms(floorCpu)} of CPU): ${list(floorTop)}`,
      )
    }
  }
  for (const who of ['sender', 'receiver'] as const) {
    if (!missed(`peak RSS, ${who}`)) continue
    const run = figures.big.drops.reduce((x, y) => (y[who].peakRss > x[who].peakRss ? y : x))
    const { peakRss: peak, atRest, memoryMax } = run[who]
    const first = figures.big.drops[0]![who].atRest
    const whole = (bytes: number) => `${Math.round(mb(bytes))} MB`
    notes.push(
      `peak RSS, ${who}: ${whole(peak)}. Before the first drop the process held ${whole(first.rss)} (${whole(first.rssFile)} of it mapped from the node binary and libraries, a JS heap of ${whole(first.heapTotal)} with ${whole(first.heapUsed)} in use), before this one ${whole(atRest.rss)}; during it the JS heap reached ${whole(memoryMax.heapUsed)} in use and ArrayBuffers outside it ${whole(memoryMax.arrayBuffers)} (sampled every 20 ms)`,
    )
  }
  const { resume } = figures
  if (missed('resent after')) {
    notes.push(
      `resume: the receiver was killed with ${Math.round(resume.atKill / MiB)} MiB sent; it makes its offset durable every 8 MiB, so up to that plus what was in flight is sent again`,
    )
  }
}

async function main(): Promise<void> {
  const [mode, ...args] = process.argv.slice(2)
  if (mode === 'peer') return peer(JSON.parse(args[0]!) as PeerConfig)
  const capability = canCreateNamespaces()
  if (!capability.ok) {
    console.log(`drop benchmark skipped: ${capability.reason}`)
    return
  }
  const root = await mkdtemp(path.join(os.tmpdir(), 'sdnet-drop-bench-'))
  const loadBefore = os.loadavg()[0]!
  const removeRoot = () => rmSync(root, { recursive: true, force: true, maxRetries: 5 })
  const lan = await createLan(2).catch((error) => {
    removeRoot()
    throw error
  })
  // Interrupted (Ctrl-C): the LAN's own handler (registered first) ends our processes and deletes the namespaces;
  // then the files (GiBs of them) go too, and the signal is raised again to end this process as it would have.
  const interrupted = (signal: NodeJS.Signals) => {
    removeRoot()
    process.kill(process.pid, signal)
  }
  process.once('SIGINT', interrupted)
  process.once('SIGTERM', interrupted)
  const notes: string[] = []
  try {
    const figures = await bench(lan.hosts as [Host, Host], root, notes)
    // Taken before any process of ours ran: anything on the run queue then was someone else's.
    if (loadBefore > 1)
      notes.push(
        `the machine's load average was ${loadBefore.toFixed(1)} when the bench started (${os.availableParallelism()} cores, ${os.loadavg()[0]!.toFixed(1)} at its end): other processes competed for the CPU, so rates are lower than on a quiet machine; the CPU per MiB and per file are the steadier figures`,
      )
    report(figures, notes)
  } finally {
    process.off('SIGINT', interrupted)
    process.off('SIGTERM', interrupted)
    await lan.destroy()
    removeRoot()
  }
}

await main()
