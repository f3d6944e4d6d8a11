// The daemon: one node per data dir, driven over NDJSON on the Unix socket `<dataDir>/sdnet.sock`
// (ARCHITECTURE.md "Daemon RPC"). Each request gets zero or more `{ id, event }` lines and exactly one
// `{ id, result }` or `{ id, error }`. A pairing session started by a client is cancelled if that client goes away;
// a file drop is not: it goes on in the daemon (its methods are in drop-rpc.ts).
import { chmod, rm } from 'node:fs/promises'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { createInterface } from 'node:readline'
import type { IncomingMessage } from '../connections/index.ts'
import { BadRequestError, DaemonRunningError, SdnetError } from '../errors.ts'
import type { Logger } from '../logger.ts'
import { createNode, type NodeOptions, type PairingHandle, type SdnetNode } from '../node.ts'
import type { SessionEvent } from '../pairing/index.ts'
import { writeFileAtomic } from '../store/index.ts'
import { handleDrop } from './drop-rpc.ts'
import { bodyParam, intParam, stringParam } from './params.ts'
import { pidPath, socketPath } from './paths.ts'

/** The longest request line the daemon reads (a 1 MiB message in base64 fits); longer ones drop the client. */
const MAX_REQUEST_BYTES = 2 * 1024 * 1024

export interface DaemonStatus {
  running: true
  pid: number
  peerId: string
  deviceId: string
  name: string
  fingerprint: string
  addresses: string[]
  sessions: ReturnType<SdnetNode['pair']['list']>
}

export interface Daemon {
  status(): DaemonStatus
  /** Resolves once the node has stopped and the socket and pid file are gone. */
  closed: Promise<void>
  close(): Promise<void>
}

export async function startDaemon(options: NodeOptions & { logger: Logger }): Promise<Daemon> {
  const { dataDir, logger: log } = options
  const node = await createNode(options)
  const server = await listen(socketPath(dataDir))
  const clients = new Set<Socket>()

  const status = (): DaemonStatus => ({
    running: true,
    pid: process.pid,
    peerId: node.peerId,
    deviceId: node.deviceId,
    name: node.name,
    fingerprint: node.fingerprint,
    addresses: node.addresses(),
    sessions: node.pair.list(),
  })

  let resolveClosed!: () => void
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve
  })
  let closing: Promise<void> | undefined
  const close = () => {
    closing ??= (async () => {
      log.info('daemon stopping')
      await node.stop()
      await closeServer(server, clients, dataDir)
      await rm(pidPath(dataDir), { force: true })
      log.info('daemon stopped')
      resolveClosed()
    })()
    return closing
  }

  const scope: DaemonScope = { node, status, close, listeners: new Listeners(node), log }
  // Clients are served from the moment the socket exists: one that connects while the node starts gets its answer
  // (pairing commands answer NodeNotRunningError until then) instead of waiting forever.
  server.on('connection', (socket) => {
    clients.add(socket)
    socket.once('close', () => clients.delete(socket))
    serveClient(socket, scope)
  })
  try {
    await node.start()
  } catch (err) {
    await closeServer(server, clients, dataDir)
    throw err
  }
  await writeFileAtomic(pidPath(dataDir), `${process.pid}\n`, { mode: 0o600 })
  log.info({ dataDir, peerId: node.peerId, addresses: node.addresses() }, 'daemon ready')
  return { status, closed, close }
}

async function listen(path: string): Promise<Server> {
  const server = createServer()
  const tryListen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(path, () => {
        server.off('error', reject)
        resolve()
      })
    })
  try {
    await tryListen()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err
    // A socket file is there: either a live daemon (refuse) or one that died without cleaning up (replace it).
    if (await socketAnswers(path)) throw new DaemonRunningError(path)
    await rm(path, { force: true })
    await tryListen()
  }
  await chmod(path, 0o600)
  return server
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(path)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

/**
 * Stops accepting clients and ends the connected ones (their last lines are flushed first); `server.close()`
 * alone would wait for every client to hang up, including the `stop` client waiting for us.
 */
async function closeServer(server: Server, clients: Set<Socket>, dataDir: string): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()))
  for (const socket of clients) {
    socket.end()
    setTimeout(() => socket.destroy(), 1_000).unref()
  }
  await closed
  await rm(socketPath(dataDir), { force: true })
}

interface Request {
  id: number | string
  method: string
  params: Record<string, unknown>
}

/** What every client connection shares: the node, the daemon's controls and the `listen` fan-out. */
interface DaemonScope {
  node: SdnetNode
  status: () => DaemonStatus
  close: () => Promise<void>
  listeners: Listeners
  log: Logger
}

/** Per client: the sessions it started and what to undo when it leaves (listens, event subscriptions). */
interface ClientScope extends DaemonScope {
  owned: Set<string>
  cleanups: Set<() => void>
}

function serveClient(socket: Socket, scope: DaemonScope): void {
  const { node, log } = scope
  const owned = new Set<string>()
  const cleanups = new Set<() => void>()
  const send = (message: object) => {
    if (!socket.destroyed) socket.write(`${JSON.stringify(message)}\n`)
  }
  socket.on('error', (err) => log.debug({ err }, 'client socket error'))
  socket.on('close', () => {
    for (const cleanup of cleanups) cleanup()
    // A client that started a session and left (Ctrl-C on `pair generate`) takes its session with it.
    for (const sessionId of owned) {
      try {
        node.pair.cancel(sessionId)
      } catch {
        // already finished
      }
    }
  })
  const lines = createInterface({ input: socket, crlfDelay: Number.POSITIVE_INFINITY })
  // readline re-emits its input's errors (a client that reset its socket): without a listener they crash the daemon.
  lines.on('error', (err) => log.debug({ err }, 'client socket error'))
  let buffered = 0
  socket.on('data', (chunk: Buffer) => {
    buffered = chunk.includes(10) ? chunk.length - chunk.lastIndexOf(10) - 1 : buffered + chunk.length
    if (buffered > MAX_REQUEST_BYTES) {
      send({
        id: null,
        error: errorBody(new BadRequestError(`a request line is longer than ${MAX_REQUEST_BYTES} bytes`)),
      })
      socket.destroy()
    }
  })
  lines.on('line', (line) => {
    let request: Request
    try {
      request = parseRequest(line)
    } catch (err) {
      send({ id: null, error: errorBody(err) })
      return
    }
    const { id } = request
    handle(request, { ...scope, owned, cleanups }, (event) => send({ id, event }))
      .then((result) => send({ id, result }))
      .catch((err: unknown) => {
        if (!(err instanceof SdnetError)) log.error({ err, method: request.method }, 'request failed')
        send({ id, error: errorBody(err) })
      })
  })
}

function parseRequest(line: string): Request {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    throw new BadRequestError('a request line is not JSON')
  }
  if (typeof value !== 'object' || value === null)
    throw new BadRequestError('a request must be a JSON object')
  const { id, method, params } = value as Record<string, unknown>
  if ((typeof id !== 'number' && typeof id !== 'string') || typeof method !== 'string') {
    throw new BadRequestError('a request needs an "id" and a "method"')
  }
  if (params !== undefined && (typeof params !== 'object' || params === null)) {
    throw new BadRequestError('"params" must be an object')
  }
  return { id, method, params: (params ?? {}) as Record<string, unknown> }
}

function errorBody(err: unknown): { name: string; message: string } {
  if (err instanceof Error) return { name: err.name, message: err.message }
  return { name: 'Error', message: String(err) }
}

function pingSummary(sent: number, rtts: number[]) {
  const sorted = [...rtts].sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? null
  return {
    sent,
    received: rtts.length,
    minMs: sorted[0] ?? null,
    p50Ms: at(0.5),
    maxMs: sorted.at(-1) ?? null,
  }
}

/** Fans each protocol's messages out to every `listen` client; the node handler exists while anyone listens. */
class Listeners {
  readonly #node: SdnetNode
  readonly #byProtocol = new Map<string, { sinks: Set<(m: IncomingMessage) => void>; off: () => void }>()

  constructor(node: SdnetNode) {
    this.#node = node
  }

  add(protocol: string, sink: (message: IncomingMessage) => void): () => void {
    let entry = this.#byProtocol.get(protocol)
    if (entry === undefined) {
      const sinks = new Set<(m: IncomingMessage) => void>()
      const off = this.#node.handle(protocol, (message) => {
        for (const s of sinks) s(message)
        return undefined
      })
      entry = { sinks, off }
      this.#byProtocol.set(protocol, entry)
    }
    const current = entry
    current.sinks.add(sink)
    return () => {
      current.sinks.delete(sink)
      if (current.sinks.size === 0 && this.#byProtocol.get(protocol) === current) {
        current.off()
        this.#byProtocol.delete(protocol)
      }
    }
  }
}

async function handle(
  { method, params }: Request,
  scope: ClientScope,
  emit: (event: object) => void,
): Promise<unknown> {
  const { node, status, close, owned } = scope
  if (method.startsWith('drop.'))
    return handleDrop(method, params, { drops: node.drop, cleanups: scope.cleanups }, emit)
  switch (method) {
    case 'status':
      return status()
    case 'stop':
      setImmediate(() => void close())
      return { stopping: true }
    case 'devices':
      return node.devices()
    case 'pair.list':
      return node.pair.list()
    case 'pair.generate': {
      const ttl = params.timeoutSeconds
      if (ttl !== undefined && (typeof ttl !== 'number' || !(ttl >= 1) || ttl > 24 * 3600)) {
        throw new BadRequestError('"timeoutSeconds" must be a number of seconds between 1 and 86400')
      }
      const handle = node.pair.generate({
        autoAccept: params.autoAccept === true,
        ...(typeof ttl === 'number' && { codeTtlMs: Math.round(ttl * 1000) }),
      })
      emit({ event: 'code', code: handle.code, sessionId: handle.sessionId, expiresAt: handle.expiresAt })
      return followSession(handle, owned, emit)
    }
    case 'pair.join': {
      const code = params.code
      if (typeof code !== 'string' && !(Array.isArray(code) && code.every((w) => typeof w === 'string'))) {
        throw new BadRequestError('"code" must be a string or an array of words')
      }
      return followSession(node.pair.join(code), owned, emit)
    }
    case 'pair.accept':
    case 'pair.reject':
    case 'pair.cancel': {
      const sessionId = stringParam(params, 'sessionId')
      const verb = method.slice('pair.'.length) as 'accept' | 'reject' | 'cancel'
      node.pair[verb](sessionId)
      return { sessionId }
    }
    case 'send': {
      const result = await node.send(
        stringParam(params, 'device'),
        stringParam(params, 'protocol'),
        bodyParam(params),
      )
      return result ?? { sent: true }
    }
    case 'request': {
      const body = await node.request(
        stringParam(params, 'device'),
        stringParam(params, 'protocol'),
        bodyParam(params),
      )
      return { text: new TextDecoder().decode(body), base64: Buffer.from(body).toString('base64') }
    }
    case 'ping': {
      const device = stringParam(params, 'device')
      const count = intParam(params, 'count', 1, 1_000, 1)
      const intervalMs = intParam(params, 'intervalMs', 0, 60_000, 1_000)
      const rtts: number[] = []
      // A client that leaves (Ctrl-C) ends its ping loop.
      let gone = false
      const stop = () => {
        gone = true
      }
      scope.cleanups.add(stop)
      for (let seq = 1; seq <= count && !gone; seq++) {
        try {
          const rttMs = await node.ping(device)
          rtts.push(rttMs)
          emit({ event: 'pong', seq, rttMs })
        } catch (err) {
          // A device that does not exist will not start existing: that ends the command; anything else is one loss.
          if (['UnknownDeviceError', 'AmbiguousDeviceError'].includes((err as Error).name)) throw err
          emit({ event: 'lost', seq, reason: (err as Error).message })
        }
        if (seq < count && intervalMs > 0) await new Promise((resolve) => setTimeout(resolve, intervalMs))
      }
      scope.cleanups.delete(stop)
      return pingSummary(count, rtts)
    }
    case 'listen': {
      const protocol = stringParam(params, 'protocol')
      const off = scope.listeners.add(protocol, (message) =>
        emit({
          event: 'message',
          deviceId: message.deviceId,
          name: message.name,
          protocol: message.protocol,
          bytes: message.body.length,
          text: new TextDecoder().decode(message.body),
          base64: Buffer.from(message.body).toString('base64'),
        }),
      )
      // Answered only when the client leaves: until then every message is an event line.
      return new Promise<never>(() => scope.cleanups.add(off))
    }
    case 'events': {
      const off = node.on('*', (event) => emit(event))
      return new Promise<never>(() => scope.cleanups.add(off))
    }
    case 'revoke': {
      const result = await node.revoke(stringParam(params, 'device'))
      return result === false ? { revoked: false, already: true } : { revoked: true, ...result }
    }
    default:
      throw new BadRequestError(`unknown method "${method}"`)
  }
}

async function followSession(
  handle: PairingHandle,
  owned: Set<string>,
  emit: (event: object) => void,
): Promise<unknown> {
  owned.add(handle.sessionId)
  const off = handle.on((event: SessionEvent) => {
    if (event.type === 'state') emit({ event: 'state', sessionId: event.sessionId, state: event.state })
    else if (event.type === 'comparison')
      emit({ event: 'comparison', sessionId: event.sessionId, sas: event.sas })
    else if (event.type === 'request') {
      emit({ event: 'request', sessionId: event.sessionId, device: event.device, sas: event.sas })
    }
  })
  const result = await handle.result
  off()
  owned.delete(handle.sessionId)
  return { sessionId: handle.sessionId, ...result }
}
