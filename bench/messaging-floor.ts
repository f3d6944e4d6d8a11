// The floors under messaging between paired devices: what a bare libp2p pair (TCP + Noise + Yamux, no sdnet code)
// achieves between the same two namespaces on one reused stream. The sealed `/sdnet/msg/1.0.0` link cannot beat
// these; bench/messaging.bench.ts compares against them. Also the stranger's probe of the e2e tests: a node that
// never paired dials a protocol and reports how the stream ended.
//
//   node bench/messaging-floor.ts                              both floors between two fresh namespaces (root)
//   node bench/messaging-floor.ts serve <ip>                   (in a namespace) echo + sink server, prints its address
//   node bench/messaging-floor.ts rtt <multiaddr> <runs> <warmup>           1-byte echoes, prints {"samples":[ms…]}
//   node bench/messaging-floor.ts throughput <multiaddr> <size> <count> <maxMs>   prints {"sent","received",…}
//   node bench/messaging-floor.ts sealed-throughput <multiaddr> <size> <count> <maxMs>   the same, each 64 KiB
//                                                              send sealed and opened (ChaCha20-Poly1305): the
//                                                              ceiling for any design that seals every frame
//   node bench/messaging-floor.ts probe <multiaddr> <protocol> <readMs>     prints {"connected","outcome",…}

import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  type DecipherChaCha20Poly1305,
  type KeyObject,
  randomBytes,
} from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { Stream } from '@libp2p/interface'
import { byteStream, lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import type { Libp2p } from 'libp2p'
import { Uint8ArrayList } from 'uint8arraylist'
import { nonceFor } from '../actors/connections/sealed-channel.ts'
import { WatchedProcess } from '../test/helpers/cli.ts'
import { canCreateNamespaces, createLan, type Host } from '../test/helpers/netns.ts'
import { bareNode, serveUntilSignalled } from './bare-node.ts'
import { percentile, round } from './stats.ts'

const ECHO_PROTOCOL = '/sdnet-bench/echo/1.0.0'
const SINK_PROTOCOL = '/sdnet-bench/sink/1.0.0'
const SEALED_SINK_PROTOCOL = '/sdnet-bench/sealed-sink/1.0.0'
const KEY_LENGTH = 32
const TAG_LENGTH = 16
const SEALED_AAD = new TextEncoder().encode('sdnet-bench/sealed')
const STEP_TIMEOUT_MS = 10_000
const PROCESS_TIMEOUT_MS = 120_000
/** The floor writes its frames the way the link does: coalesced into sends of up to this many bytes... */
const BATCH_BYTES = 64 * 1024
/** ...and waits while more than this is unsent (transport/link.ts). */
const MAX_UNSENT_BYTES = 4 * 1024 * 1024

// ---- inside the namespaces

async function serve(address: string): Promise<void> {
  const node = await bareNode([`/ip4/${address}/tcp/0`])
  await node.handle(ECHO_PROTOCOL, (stream) => void echo(stream))
  await node.handle(SINK_PROTOCOL, (stream) => void sink(stream, new FrameCounter()))
  await node.handle(SEALED_SINK_PROTOCOL, (stream) => void sink(stream, new SealedFrameCounter()))
  serveUntilSignalled(node)
}

/** Answers every length-prefixed frame with itself until the stream ends. */
async function echo(stream: Stream): Promise<void> {
  const lp = lpStream(stream)
  try {
    while (true) await lp.write(await lp.read())
  } catch {
    stream.abort(new Error('echo ended'))
  }
}

/**
 * Counts length-prefixed frames without copying them; an empty frame ends the run and is answered with
 * `{ frames, bytes, receiverCpuMs }` (length-prefixed JSON). With a FrameCounter the fastest receiver possible: it
 * never looks at a payload. With a SealedFrameCounter it opens every sealed batch first.
 */
async function sink(stream: Stream, counter: FrameCounter | SealedFrameCounter): Promise<void> {
  let cpu = process.cpuUsage()
  try {
    for await (const data of stream) {
      for (const chunk of data instanceof Uint8Array ? [data] : data) {
        if (!counter.count(chunk)) continue
        const receiverCpuMs = cpuMs(process.cpuUsage(cpu))
        cpu = process.cpuUsage()
        const { frames, bytes } = counter
        const reply = new TextEncoder().encode(JSON.stringify({ frames, bytes, receiverCpuMs }))
        stream.send(new Uint8Array([...varint(reply.length), ...reply]))
        counter.reset()
      }
    }
  } catch {
    stream.abort(new Error('sink ended'))
  }
}

/**
 * Counts `varint length || payload` frames across chunks without looking at them: the fastest receiver possible.
 * A plain method on an object, not a loop inside the async sink: V8 optimizes it fully. (Inside the async function
 * the same loop ran over ten times slower: at 64 B it was the floor's limit, which made the floor 1.8x too low.)
 *
 * The ceiling's SealedFrameCounter walks its outer frames with a loop of its own, on purpose: one walker shared by
 * both classes (calling back into each) ran this loop ~2x slower once both had run in the process (measured), and
 * the server runs both, so either the floor or the ceiling would come out too low.
 */
export class FrameCounter {
  frames = 0
  bytes = 0
  #remaining = 0
  #length = 0
  #scale = 1

  reset(): void {
    this.frames = 0
    this.bytes = 0
  }

  /** Counts the frames in `chunk`; true when it held the empty frame that ends a run (ignoring what follows). */
  count(chunk: Uint8Array): boolean {
    let i = 0
    while (i < chunk.length) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, chunk.length - i)
        i += take
        this.#remaining -= take
        this.bytes += take
        if (this.#remaining === 0) this.frames += 1
        continue
      }
      const byte = chunk[i++] as number
      this.#length += (byte & 0x7f) * this.#scale
      if (byte & 0x80) {
        this.#scale *= 0x80
        continue
      }
      const length = this.#length
      this.#length = 0
      this.#scale = 1
      if (length === 0) return true
      this.#remaining = length
    }
    return false
  }
}

/**
 * The sealed floor's receiver: the stream carries `varint length || key` (32 bytes, once), then sealed batches
 * `varint length || ChaCha20-Poly1305(frames) || tag` under counter nonces, then the empty frame. Each batch is
 * opened piece by piece as its chunks arrive (never copied into one buffer) and its frames counted: the least any
 * receiver that opens one AEAD per batch can do on top of the floor.
 */
export class SealedFrameCounter {
  readonly #inner = new FrameCounter()
  #key: KeyObject | undefined
  readonly #keyBytes = new Uint8Array(KEY_LENGTH)
  readonly #tag = new Uint8Array(TAG_LENGTH)
  #decipher: DecipherChaCha20Poly1305 | undefined
  #counter = 0
  /** Bytes of the current outer frame still to come: key, or ciphertext then tag. */
  #remaining = 0
  #length = 0
  #scale = 1

  get frames(): number {
    return this.#inner.frames
  }

  get bytes(): number {
    return this.#inner.bytes
  }

  reset(): void {
    this.#inner.reset()
  }

  /** Opens and counts what `chunk` holds; true when it held the empty frame that ends a run. */
  count(chunk: Uint8Array): boolean {
    let i = 0
    while (i < chunk.length) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, chunk.length - i)
        this.#consume(chunk.subarray(i, i + take))
        i += take
        this.#remaining -= take
        if (this.#remaining === 0) this.#frameEnded()
        continue
      }
      const byte = chunk[i++] as number
      this.#length += (byte & 0x7f) * this.#scale
      if (byte & 0x80) {
        this.#scale *= 0x80
        continue
      }
      const length = this.#length
      this.#length = 0
      this.#scale = 1
      if (length === 0) return true
      this.#remaining = length
      if (this.#key !== undefined) this.#decipher = this.#open(length)
      else if (length !== KEY_LENGTH)
        throw new Error(`the sealed sink's first frame must be a ${KEY_LENGTH}-byte key`)
    }
    return false
  }

  #open(length: number): DecipherChaCha20Poly1305 {
    if (length < TAG_LENGTH) throw new Error('a sealed batch shorter than its tag')
    const decipher = createDecipheriv('chacha20-poly1305', this.#key!, nonceFor(this.#counter++), {
      authTagLength: TAG_LENGTH,
    })
    decipher.setAAD(SEALED_AAD, { plaintextLength: length - TAG_LENGTH })
    return decipher
  }

  /** A piece of the current frame: key bytes, ciphertext (opened and counted) or tag bytes. */
  #consume(piece: Uint8Array): void {
    const decipher = this.#decipher
    if (decipher === undefined) {
      this.#keyBytes.set(piece, KEY_LENGTH - this.#remaining)
      return
    }
    const ciphertext = Math.max(0, Math.min(piece.length, this.#remaining - TAG_LENGTH))
    if (ciphertext > 0) this.#inner.count(decipher.update(piece.subarray(0, ciphertext)))
    if (ciphertext < piece.length) {
      this.#tag.set(piece.subarray(ciphertext), TAG_LENGTH - (this.#remaining - ciphertext))
    }
  }

  #frameEnded(): void {
    const decipher = this.#decipher
    if (decipher === undefined) {
      this.#key = createSecretKey(this.#keyBytes)
      return
    }
    decipher.setAuthTag(this.#tag)
    decipher.final()
    this.#decipher = undefined
  }
}

async function rtt(target: string, runs: number, warmup: number): Promise<void> {
  const node = await bareNode([])
  const connection = await node.dial(multiaddr(target), { signal: AbortSignal.timeout(STEP_TIMEOUT_MS) })
  const stream = await connection.newStream(ECHO_PROTOCOL, { signal: AbortSignal.timeout(STEP_TIMEOUT_MS) })
  const lp = lpStream(stream)
  const request = new Uint8Array([42])
  const samples: number[] = []
  for (let run = 0; run < warmup + runs; run += 1) {
    const signal = AbortSignal.timeout(STEP_TIMEOUT_MS)
    const started = performance.now()
    await lp.write(request, { signal })
    const reply = await lp.read({ signal })
    const elapsed = performance.now() - started
    if (reply.byteLength !== 1 || reply.get(0) !== 42)
      throw new Error('The echo server answered other bytes.')
    if (run >= warmup) samples.push(elapsed)
  }
  await stream.close()
  await node.stop()
  console.log(JSON.stringify({ samples }))
}

async function throughput(target: string, size: number, count: number, maxMs: number, sealed: boolean) {
  const node = await bareNode([])
  const connection = await node.dial(multiaddr(target), { signal: AbortSignal.timeout(STEP_TIMEOUT_MS) })
  const protocol = sealed ? SEALED_SINK_PROTOCOL : SINK_PROTOCOL
  const stream = await connection.newStream(protocol, { signal: AbortSignal.timeout(STEP_TIMEOUT_MS) })
  const lp = lpStream(stream)
  const frame = new Uint8Array([...varint(size), ...randomBytes(size)])
  const perBatch = Math.max(1, Math.floor(BATCH_BYTES / frame.length))
  const batch = new Uint8Array(frame.length * perBatch)
  for (let i = 0; i < perBatch; i += 1) batch.set(frame, i * frame.length)
  const keyBytes = randomBytes(KEY_LENGTH)
  const sealer = new BatchSealer(keyBytes)

  const started = performance.now()
  const cpu = process.cpuUsage()
  if (sealed) stream.send(Uint8Array.from([...varint(KEY_LENGTH), ...keyBytes]))
  let sent = 0
  while (sent < count && performance.now() - started < maxMs) {
    const frames = Math.min(perBatch, count - sent)
    const plaintext = frames === perBatch ? batch : batch.subarray(0, frames * frame.length)
    stream.send(sealed ? sealer.seal(plaintext) : plaintext)
    sent += frames
    await room(stream)
  }
  stream.send(new Uint8Array([0]))
  const reply = await lp.read({ signal: AbortSignal.timeout(PROCESS_TIMEOUT_MS) })
  const ms = performance.now() - started
  const senderCpuMs = cpuMs(process.cpuUsage(cpu))
  const counted = JSON.parse(new TextDecoder().decode(reply.subarray())) as {
    frames: number
    bytes: number
    receiverCpuMs: number
  }
  await stream.close()
  await node.stop()
  const { frames: received, bytes, receiverCpuMs } = counted
  console.log(JSON.stringify({ size, sent, received, bytes, ms, senderCpuMs, receiverCpuMs }))
}

/** The ceiling's sender: each batch sealed at send time under the next nonce, as head, ciphertext and tag. */
export class BatchSealer {
  readonly #key: KeyObject
  #counter = 0

  constructor(key: Uint8Array) {
    this.#key = createSecretKey(key)
  }

  seal(plaintext: Uint8Array): Uint8ArrayList {
    const cipher = createCipheriv('chacha20-poly1305', this.#key, nonceFor(this.#counter++), {
      authTagLength: TAG_LENGTH,
    })
    cipher.setAAD(SEALED_AAD, { plaintextLength: plaintext.length })
    const ciphertext = cipher.update(plaintext)
    cipher.final()
    const head = Uint8Array.from(varint(plaintext.length + TAG_LENGTH))
    return new Uint8ArrayList(head, ciphertext, cipher.getAuthTag())
  }
}

/**
 * Waits while the stream holds more than MAX_UNSENT_BYTES it could not send yet, until half of that is left: the
 * link's own rule, so both sides of the comparison queue alike. (`stream.onDrain()` cannot be used: once it has
 * resolved it keeps resolving at once, and the sender would queue everything and ignore `maxMs`.)
 */
export async function room(stream: Stream): Promise<void> {
  if (stream.writeBufferLength <= MAX_UNSENT_BYTES) return
  const { promise, resolve, reject } = Promise.withResolvers<void>()
  const check = () => {
    if (stream.writeBufferLength <= MAX_UNSENT_BYTES / 2) resolve()
  }
  const closed = () => reject(new Error('the sink stream closed while the floor was sending'))
  const timer = setTimeout(() => reject(new Error(`no room within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS)
  stream.addEventListener('drain', check)
  stream.addEventListener('idle', check)
  stream.addEventListener('close', closed)
  try {
    await promise
  } finally {
    clearTimeout(timer)
    stream.removeEventListener('drain', check)
    stream.removeEventListener('idle', check)
    stream.removeEventListener('close', closed)
  }
}

/** How a stranger's stream ended: refused while negotiating, reset or ended before any byte, data, or silence. */
export type ProbeOutcome = 'refused' | 'reset' | 'ended' | 'data' | 'timeout'

export interface ProbeResult {
  connected: boolean
  outcome?: ProbeOutcome
  /** `name: message` of the error that ended it. */
  error?: string
  ms: number
}

async function probe(target: string, protocol: string, readMs: number): Promise<void> {
  const node = await bareNode([])
  const started = performance.now()
  const report = (result: Omit<ProbeResult, 'ms'>) =>
    console.log(JSON.stringify({ ...result, ms: performance.now() - started }))
  const describe = (error: unknown) =>
    error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  try {
    let connection: Awaited<ReturnType<Libp2p['dial']>>
    try {
      connection = await node.dial(multiaddr(target), { signal: AbortSignal.timeout(STEP_TIMEOUT_MS) })
    } catch (error) {
      return report({ connected: false, error: describe(error) })
    }
    let stream: Stream
    try {
      stream = await connection.newStream(protocol, { signal: AbortSignal.timeout(STEP_TIMEOUT_MS) })
    } catch (error) {
      return report({ connected: true, outcome: 'refused', error: describe(error) })
    }
    const deadline = AbortSignal.timeout(readMs)
    try {
      const first = await byteStream(stream).read({ signal: deadline })
      report({ connected: true, outcome: first === null ? 'ended' : 'data' })
    } catch (error) {
      report({ connected: true, outcome: deadline.aborted ? 'timeout' : 'reset', error: describe(error) })
    }
  } finally {
    await node.stop()
  }
}

/** User + system CPU time in ms. */
export function cpuMs(usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1000
}

export function varint(value: number): number[] {
  const bytes: number[] = []
  let rest = value
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) | 0x80)
    rest = Math.floor(rest / 0x80)
  }
  bytes.push(rest)
  return bytes
}

// ---- from the bench process

/** Runs this file in `mode` on `host` and returns what it printed as its one JSON line. */
async function runHere<T>(host: Host, args: string[], label: string): Promise<T> {
  const child = new WatchedProcess(
    host.run(process.execPath, [import.meta.filename, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
    `${label} on host ${host.name}`,
  )
  const result = await child.finished(PROCESS_TIMEOUT_MS)
  if (result.code !== 0) throw new Error(`${label} failed.\n${child.transcript()}`)
  return JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '') as T
}

export interface FloorServer {
  /** Its multiaddr, /p2p/ included. */
  target: string
  /** Ends it (SIGTERM, then SIGKILL by pid). */
  stop(): Promise<void>
}

/** Starts the echo + sink server on `host`. */
export async function startFloorServer(host: Host): Promise<FloorServer> {
  const serving = new WatchedProcess(
    host.run(process.execPath, [import.meta.filename, 'serve', host.address], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
    `floor server on host ${host.name}`,
  )
  const stop = async () => {
    serving.kill()
    await serving.finished(PROCESS_TIMEOUT_MS).catch(() => {})
  }
  try {
    const line = await serving.waitForLine((text) => text.startsWith('{'), 'its address', PROCESS_TIMEOUT_MS)
    const { multiaddr: target } = JSON.parse(line.text) as { multiaddr?: string }
    if (!target) throw new Error(`The floor server printed no address.\n${serving.transcript()}`)
    return { target, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

export interface ThroughputSample {
  size: number
  sent: number
  received: number
  /** Payload bytes the receiver counted. */
  bytes: number
  /** First send until the receiver's count came back. */
  ms: number
  /** CPU time (user + system) each process spent meanwhile: what a message costs where, beside the floor's. */
  senderCpuMs: number
  receiverCpuMs: number
  /** sdnet only: the receiver's main thread paused for garbage collection, in total. */
  receiverGcMs?: number
}

/** Round trips of 1 byte on one reused stream from a client on `client` (ms each, after `warmup` unrecorded). */
export async function floorRoundTrips(
  client: Host,
  server: FloorServer,
  runs: number,
  warmup: number,
): Promise<number[]> {
  const args = ['rtt', server.target, String(runs), String(warmup)]
  return (await runHere<{ samples: number[] }>(client, args, 'floor round trips')).samples
}

/**
 * One-way throughput from `client`: `count` frames of `size` bytes, at most `maxMs`. `sealed`: each 64 KiB batch
 * of frames is also sealed with ChaCha20-Poly1305 by the sender and opened by the receiver (Node's crypto, a key
 * object, counter nonces, as the link): the floor plus only the second AEAD layer the spec asks for.
 */
export function floorThroughput(
  client: Host,
  server: FloorServer,
  load: { size: number; count: number; maxMs: number },
  sealed = false,
): Promise<ThroughputSample> {
  const mode = sealed ? 'sealed-throughput' : 'throughput'
  const args = [mode, server.target, String(load.size), String(load.count), String(load.maxMs)]
  return runHere<ThroughputSample>(
    client,
    args,
    `${sealed ? 'sealed ' : ''}floor throughput (${load.size} B)`,
  )
}

/** A node that never paired, on `host`, opens `protocol` at `target` (a multiaddr with /p2p/) and reads once. */
export function probeProtocol(
  host: Host,
  target: string,
  protocol: string,
  readMs = 3_000,
): Promise<ProbeResult> {
  return runHere<ProbeResult>(host, ['probe', target, protocol, String(readMs)], `probe of ${protocol}`)
}

async function main(): Promise<void> {
  const [mode, ...args] = process.argv.slice(2)
  if (mode === 'serve') return serve(args[0] ?? '127.0.0.1')
  if (mode === 'rtt') return rtt(args[0]!, Number(args[1] ?? 200), Number(args[2] ?? 20))
  if (mode === 'throughput' || mode === 'sealed-throughput') {
    const sealed = mode === 'sealed-throughput'
    return throughput(args[0]!, Number(args[1]), Number(args[2]), Number(args[3] ?? 20_000), sealed)
  }
  if (mode === 'probe') return probe(args[0]!, args[1]!, Number(args[2] ?? 3_000))
  const capability = canCreateNamespaces()
  if (!capability.ok) {
    console.log(`messaging floor skipped: ${capability.reason}`)
    return
  }
  const lan = await createLan(2)
  try {
    const [a, b] = lan.hosts as [Host, Host]
    const server = await startFloorServer(b)
    try {
      const rtt = await floorRoundTrips(a, server, 200, 20)
      console.log(
        `round trip (1 B, reused stream): p50 ${round(percentile(rtt, 50))} ms, p99 ${round(percentile(rtt, 99))} ms`,
      )
      for (const size of [64, 64 * 1024]) {
        for (const sealed of [false, true]) {
          const plan = { size, count: size === 64 ? 10_000_000 : 100_000, maxMs: 3_000 }
          const load = await floorThroughput(a, server, plan, sealed)
          const seconds = load.ms / 1000
          console.log(
            `${sealed ? 'sealed ' : ''}${size} B x ${load.received}: ${Math.round(load.received / seconds)} msg/s, ${round(load.bytes / seconds / 1e6)} MB/s`,
          )
        }
      }
    } finally {
      await server.stop()
    }
  } finally {
    await lan.destroy()
  }
}

if (import.meta.main) await main()
