// The floors under file drops: what a bare libp2p pair (TCP + Noise + Yamux, no sdnet code) needs to move the same
// bytes between the same two namespaces, from files on disk to files on disk, and what raw TCP needs. A drop
// hashes every chunk, checks it, persists where it is and answers acks; these floors only read with fs, send
// length-prefixed frames of 256 KiB (the drop's chunk size), and write with fs. bench/drop.bench.ts compares
// against them.
//
//   node bench/drop-floor.ts serve <ip> <dir>     (in a namespace) libp2p + TCP receivers writing into <dir>,
//                                                 prints {"multiaddr","tcp"}
//   node bench/drop-floor.ts send <libp2p|tcp> <target> <file|files> <path> [sync] [profile]
//                                                 sends one file (a folder's files), prints a FloorTransfer
//
// The wire, the same on both transports: frames `varint length || bytes`; first a JSON header
// `{ mode, name, sync }`, then for `file` the data in frames of 256 KiB, for `files` a name frame and a data frame
// per file; an empty frame ends it. The receiver answers with one frame of JSON (FloorTransfer's receiver half).
// `sync` makes the receiver fdatasync: once at the end of a file (`end`), or each file of a folder (`each`);
// `profile` has both sides run V8's sampling profiler and report their busiest functions.

import { mkdir, open, readdir, readFile, writeFile } from 'node:fs/promises'
import { createConnection, createServer, type Socket } from 'node:net'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import type { Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { Uint8ArrayList } from 'uint8arraylist'
import { WatchedProcess } from '../test/helpers/cli.ts'
import type { Host } from '../test/helpers/netns.ts'
// The drop's chunk size, so both move the same frames.
import { CHUNK_BYTES } from '../transport/drop-codec.ts'
import { bareNode, serveUntilSignalled } from './bare-node.ts'
import { cpuMs, room, varint } from './messaging-floor.ts'
import {
  type GcPauses,
  gcMeter,
  gcSince,
  Profiler,
  peakRss,
  resetPeakRss,
  type Top,
} from './process-stats.ts'

const PROTOCOL = '/sdnet-bench/drop-floor/1.0.0'
/** Received frames may queue up to this many bytes before the sender is held back (resumed below half). */
const MAX_QUEUED_BYTES = 4 * 1024 * 1024
const STEP_TIMEOUT_MS = 10_000
const PROCESS_TIMEOUT_MS = 180_000

export type FloorMode = 'file' | 'files'
export type FloorSync = 'none' | 'end' | 'each'

interface Header {
  mode: FloorMode
  name: string
  sync: FloorSync
  /** Both sides run V8's sampling profiler during the transfer and report their busiest functions. */
  profile: boolean
}

/** One floor run: what the receiver wrote and what each side spent. */
export interface FloorTransfer {
  bytes: number
  files: number
  /** First byte sent until the receiver's answer arrived. */
  ms: number
  senderCpuMs: number
  receiverCpuMs: number
  /** Main-thread GC pauses of each side meanwhile. */
  senderGc: GcPauses
  receiverGc: GcPauses
  /** With `profile`: where each side's main thread spent its time. */
  senderTop?: Top
  receiverTop?: Top
  /** VmHWM of each process (bytes); the receiver's is reset when the transfer starts. */
  senderPeakRss: number
  receiverPeakRss: number
}

// ---- the two ends of a transport, as the floor needs them

/** A connection as the floor uses it: bytes out with backpressure, bytes in as events, pause and resume. */
interface Pipe {
  send(bytes: Uint8Array | Uint8ArrayList): Promise<void>
  onData(listener: (bytes: Uint8Array | Uint8ArrayList) => void): void
  onEnd(listener: (error?: Error) => void): void
  pause(): void
  resume(): void
  close(): void
}

/**
 * A paused yamux stream still takes what its window allowed (up to 16 MiB) into its read buffer, and libp2p resets
 * a stream whose buffer passes maxReadBufferLength (4 MiB by default): room for that, as the drop's stream makes.
 */
const PAUSED_READ_BUFFER_BYTES = 17 * 1024 * 1024

function streamPipe(stream: Stream): Pipe {
  stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, PAUSED_READ_BUFFER_BYTES)
  return {
    async send(bytes) {
      stream.send(bytes)
      await room(stream)
    },
    onData: (listener) => stream.addEventListener('message', (event) => listener(event.data)),
    onEnd: (listener) => {
      stream.addEventListener('close', (event) => listener(event.error))
      stream.addEventListener('remoteCloseWrite', () => listener())
    },
    pause: () => {
      if (stream.readStatus === 'readable') stream.pause()
    },
    resume: () => {
      if (stream.readStatus === 'paused') stream.resume()
    },
    close: () => void stream.close().catch(() => stream.abort(new Error('floor closed'))),
  }
}

function socketPipe(socket: Socket): Pipe {
  return {
    async send(bytes) {
      const parts = bytes instanceof Uint8Array ? [bytes] : [...bytes]
      let room = true
      for (const part of parts) room = socket.write(part)
      if (!room) await new Promise<void>((resolve) => socket.once('drain', resolve))
    },
    onData: (listener) => socket.on('data', listener),
    onEnd: (listener) => {
      socket.once('close', () => listener())
      socket.once('error', (error) => listener(error))
    },
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    close: () => socket.end(),
  }
}

/**
 * Reads `varint length || bytes` frames from a pipe into a bounded queue and pauses the pipe while the queue is
 * full: a receiver busy writing holds the sender back, as the drop's data stream does.
 */
class FrameReader {
  readonly #pipe: Pipe
  readonly #buffer = new Uint8ArrayList()
  readonly #frames: Uint8Array[] = []
  #queued = 0
  #paused = false
  #resuming = false
  #end: Error | undefined
  #wake: (() => void) | undefined

  constructor(pipe: Pipe) {
    this.#pipe = pipe
    pipe.onData((bytes) => this.#receive(bytes))
    pipe.onEnd((error) => this.#finish(error ?? new Error('the floor stream ended')))
  }

  async read(): Promise<Uint8Array> {
    const deadline = performance.now() + STEP_TIMEOUT_MS
    while (this.#frames.length === 0) {
      if (this.#end !== undefined) throw this.#end
      if (performance.now() > deadline) throw new Error(`no floor frame within ${STEP_TIMEOUT_MS} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, STEP_TIMEOUT_MS)
        this.#wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.#wake = undefined
    }
    const frame = this.#frames.shift()!
    this.#queued -= frame.byteLength
    if (this.#paused && this.#queued <= MAX_QUEUED_BYTES / 2) {
      // resume() hands over what the stream buffered (through #receive) before it reopens the window, so a queue
      // that filled up meanwhile pauses again only afterwards (as transport/drop-stream.ts does).
      this.#paused = false
      this.#resuming = true
      try {
        this.#pipe.resume()
      } finally {
        this.#resuming = false
      }
      this.#pauseIfFull()
    }
    return frame
  }

  #pauseIfFull(): void {
    if (this.#paused || this.#queued <= MAX_QUEUED_BYTES) return
    this.#paused = true
    this.#pipe.pause()
  }

  #receive(bytes: Uint8Array | Uint8ArrayList): void {
    this.#buffer.append(bytes)
    for (;;) {
      let length = 0
      let scale = 1
      let head = 0
      for (; head < this.#buffer.byteLength; head++) {
        const byte = this.#buffer.get(head)
        length += (byte & 0x7f) * scale
        scale *= 0x80
        if (byte < 0x80) break
      }
      if (head >= this.#buffer.byteLength || this.#buffer.byteLength < head + 1 + length) break
      const frame = this.#buffer.subarray(head + 1, head + 1 + length)
      this.#buffer.consume(head + 1 + length)
      this.#frames.push(frame)
      this.#queued += frame.byteLength
    }
    if (!this.#resuming) this.#pauseIfFull()
    this.#wake?.()
  }

  #finish(error: Error): void {
    this.#end ??= error
    this.#wake?.()
  }
}

function frame(bytes: Uint8Array): Uint8ArrayList {
  return new Uint8ArrayList(Uint8Array.from(varint(bytes.byteLength)), bytes)
}

/** Counts this process's GC pauses from now on; the returned function reads them. */
function gcClock(): () => GcPauses {
  const gc = gcMeter()
  return () => ({ ...gc })
}

const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value))
const parse = <T>(bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes)) as T

// ---- the receiver (inside a namespace)

async function serve(address: string, dir: string): Promise<void> {
  const node = await bareNode([`/ip4/${address}/tcp/0`])
  const gcNow = gcClock()
  await node.handle(PROTOCOL, (stream) => void receive(streamPipe(stream), dir, gcNow))
  const tcp = createServer((socket) => void receive(socketPipe(socket), dir, gcNow))
  await new Promise<void>((resolve) => tcp.listen(0, address, resolve))
  const port = (tcp.address() as { port: number }).port
  process.once('SIGTERM', () => tcp.close())
  serveUntilSignalled(node, { tcp: `${address}:${port}` })
}

async function receive(pipe: Pipe, dir: string, gcNow: () => GcPauses): Promise<void> {
  const reader = new FrameReader(pipe)
  try {
    const header = parse<Header>(await reader.read())
    resetPeakRss()
    const profiler = header.profile ? new Profiler() : undefined
    await profiler?.start()
    const cpu = process.cpuUsage()
    const gcBefore = gcNow()
    const target = path.join(dir, path.basename(header.name))
    const write = header.mode === 'file' ? writeOne : writeMany
    const counted = await write(reader, target, header.sync)
    const receiverCpuMs = cpuMs(process.cpuUsage(cpu))
    const receiverGc = gcSince(gcBefore, gcNow())
    const receiverTop = await profiler?.stop()
    const answer = {
      ...counted,
      receiverCpuMs,
      receiverGc,
      receiverPeakRss: peakRss(),
      ...(receiverTop !== undefined && { receiverTop }),
    }
    await pipe.send(frame(json(answer)))
  } catch (error) {
    console.error(`floor receiver: ${(error as Error).message}`)
  } finally {
    pipe.close()
  }
}

async function writeOne(reader: FrameReader, target: string, sync: FloorSync) {
  const handle = await open(target, 'wx')
  let bytes = 0
  try {
    for (let data = await reader.read(); data.byteLength > 0; data = await reader.read()) {
      await handle.write(data, 0, data.byteLength, bytes)
      bytes += data.byteLength
    }
    if (sync !== 'none') await handle.datasync()
  } finally {
    await handle.close()
  }
  return { bytes, files: 1 }
}

async function writeMany(reader: FrameReader, folder: string, sync: FloorSync) {
  const counted = { bytes: 0, files: 0 }
  await mkdir(folder)
  for (let name = await reader.read(); name.byteLength > 0; name = await reader.read()) {
    const data = await reader.read()
    const file = path.join(folder, path.basename(new TextDecoder().decode(name)))
    if (sync === 'each') {
      const handle = await open(file, 'wx')
      await handle.write(data, 0, data.byteLength, 0)
      await handle.datasync()
      await handle.close()
    } else await writeFile(file, data, { flag: 'wx' })
    counted.bytes += data.byteLength
    counted.files += 1
  }
  return counted
}

// ---- the sender (inside the other namespace)

async function connect(
  transport: 'libp2p' | 'tcp',
  target: string,
): Promise<{ pipe: Pipe; stop(): Promise<void> }> {
  if (transport === 'tcp') {
    const [host, port] = target.split(':') as [string, string]
    const socket = createConnection({ host, port: Number(port), noDelay: true })
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    return { pipe: socketPipe(socket), stop: async () => void socket.destroy() }
  }
  const node = await bareNode([])
  const signal = AbortSignal.timeout(STEP_TIMEOUT_MS)
  const connection = await node.dial(multiaddr(target), { signal })
  const stream = await connection.newStream(PROTOCOL, { signal })
  return { pipe: streamPipe(stream), stop: async () => node.stop() }
}

async function send(
  transport: 'libp2p' | 'tcp',
  target: string,
  mode: FloorMode,
  source: string,
  sync: FloorSync,
  profile: boolean,
) {
  const gcNow = gcClock()
  const { pipe, stop } = await connect(transport, target)
  const reader = new FrameReader(pipe)
  const profiler = profile ? new Profiler() : undefined
  await profiler?.start()
  const started = performance.now()
  const cpu = process.cpuUsage()
  const gcBefore = gcNow()
  await pipe.send(frame(json({ mode, name: path.basename(source), sync, profile } satisfies Header)))
  if (mode === 'file') {
    const handle = await open(source, 'r')
    try {
      for (;;) {
        const data = new Uint8Array(CHUNK_BYTES)
        const { bytesRead } = await handle.read(data, 0, data.byteLength, null)
        if (bytesRead === 0) break
        await pipe.send(frame(data.subarray(0, bytesRead)))
      }
    } finally {
      await handle.close()
    }
  } else {
    for (const name of (await readdir(source)).sort()) {
      const data = await readFile(path.join(source, name))
      await pipe.send(frame(new TextEncoder().encode(name)))
      await pipe.send(frame(data))
    }
  }
  await pipe.send(Uint8Array.of(0))
  const answer = parse<Omit<FloorTransfer, 'ms' | 'senderCpuMs' | 'senderGc' | 'senderPeakRss'>>(
    await reader.read(),
  )
  const ms = performance.now() - started
  const senderCpuMs = cpuMs(process.cpuUsage(cpu))
  const senderGc = gcSince(gcBefore, gcNow())
  const senderTop = await profiler?.stop()
  await stop()
  console.log(
    JSON.stringify({
      ...answer,
      ms,
      senderCpuMs,
      senderGc,
      senderPeakRss: peakRss(),
      ...(senderTop !== undefined && { senderTop }),
    } satisfies FloorTransfer),
  )
}

// ---- from the bench process

export interface DropFloorServer {
  /** The libp2p receiver's multiaddr (with /p2p/), and the TCP receiver's `ip:port`. */
  multiaddr: string
  tcp: string
  stop(): Promise<void>
  /** What the receivers printed, for failure messages. */
  transcript(): string
}

/** Starts both receivers on `host`, writing into `dir`. */
export async function startDropFloor(host: Host, dir: string): Promise<DropFloorServer> {
  const serving = new WatchedProcess(
    host.run(process.execPath, [import.meta.filename, 'serve', host.address, dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
    `drop floor receiver on host ${host.name}`,
  )
  const stop = async () => {
    serving.kill()
    await serving.finished(PROCESS_TIMEOUT_MS).catch(() => {})
  }
  try {
    const line = await serving.waitForLine((text) => text.startsWith('{'), 'its address', PROCESS_TIMEOUT_MS)
    const { multiaddr: target, tcp } = JSON.parse(line.text) as { multiaddr?: string; tcp?: string }
    if (!target || !tcp) throw new Error(`The drop floor printed no address.\n${serving.transcript()}`)
    return { multiaddr: target, tcp, stop, transcript: () => serving.transcript() }
  } catch (error) {
    await stop()
    throw error
  }
}

/** One floor transfer of `source` (a file, or a folder's files) from `host` to the server. */
export async function floorTransfer(
  host: Host,
  server: DropFloorServer,
  opts: { transport: 'libp2p' | 'tcp'; mode: FloorMode; source: string; sync: FloorSync; profile?: boolean },
): Promise<FloorTransfer> {
  const target = opts.transport === 'tcp' ? server.tcp : server.multiaddr
  const args = [import.meta.filename, 'send', opts.transport, target, opts.mode, opts.source, opts.sync]
  if (opts.profile) args.push('profile')
  const label = `${opts.transport} floor (${opts.mode}) on host ${host.name}`
  const child = new WatchedProcess(
    host.run(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }),
    label,
  )
  const result = await child.finished(PROCESS_TIMEOUT_MS)
  if (result.code !== 0) throw new Error(`${label} failed.\n${child.transcript()}\n${server.transcript()}`)
  return JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '') as FloorTransfer
}

async function main(): Promise<void> {
  const [mode, ...args] = process.argv.slice(2)
  if (mode === 'serve') return serve(args[0]!, args[1]!)
  if (mode === 'send') {
    const [transport, target, what, source, sync] = args as [
      'libp2p' | 'tcp',
      string,
      FloorMode,
      string,
      FloorSync | undefined,
    ]
    return send(transport, target, what, source, sync ?? 'none', args[5] === 'profile')
  }
  console.log(
    'usage: node bench/drop-floor.ts serve <ip> <dir> | send <libp2p|tcp> <target> <file|files> <path> [sync] [profile]',
  )
}

if (import.meta.main) await main()
