// The daemon: one node per data dir, driven over NDJSON on the Unix socket `<dataDir>/sdnet.sock`
// (ARCHITECTURE.md "Daemon RPC"). Each request gets zero or more `{ id, event }` lines and exactly one
// `{ id, result }` or `{ id, error }`. A pairing session started by a client is cancelled if that client goes away.
import { chmod, rm } from 'node:fs/promises'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { createInterface } from 'node:readline'
import { writeFileAtomic } from './atomic-file.ts'
import { BadRequestError, DaemonRunningError, SdnetError } from './errors.ts'
import type { Logger } from './logger.ts'
import { createNode, type NodeOptions, type PairingHandle, type SdnetNode } from './node.ts'
import type { SessionEvent } from './pairing-service.ts'
import { pidPath, socketPath } from './paths.ts'

/** The longest request line the daemon reads; anything longer is refused and the client dropped. */
const MAX_REQUEST_BYTES = 64 * 1024

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

  // Clients are served from the moment the socket exists: one that connects while the node starts gets its answer
  // (pairing commands answer NodeNotRunningError until then) instead of waiting forever.
  server.on('connection', (socket) => {
    clients.add(socket)
    socket.once('close', () => clients.delete(socket))
    serveClient(socket, node, status, close, log)
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

function serveClient(
  socket: Socket,
  node: SdnetNode,
  status: () => DaemonStatus,
  close: () => Promise<void>,
  log: Logger,
): void {
  const owned = new Set<string>()
  const send = (message: object) => {
    if (!socket.destroyed) socket.write(`${JSON.stringify(message)}\n`)
  }
  socket.on('error', (err) => log.debug({ err }, 'client socket error'))
  socket.on('close', () => {
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
    handle(request, node, status, close, owned, (event) => send({ id, event }))
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

function stringParam(params: Record<string, unknown>, key: string): string {
  const value = params[key]
  if (typeof value !== 'string' || value.length === 0)
    throw new BadRequestError(`"${key}" must be a non-empty string`)
  return value
}

async function handle(
  { method, params }: Request,
  node: SdnetNode,
  status: () => DaemonStatus,
  close: () => Promise<void>,
  owned: Set<string>,
  emit: (event: object) => void,
): Promise<unknown> {
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
