// The CLI's side of the daemon RPC: connect to `<dataDir>/sdnet.sock`, starting the daemon first when none
// answers. Requests are NDJSON `{ id, method, params }`; see ARCHITECTURE.md "Daemon RPC".
import { spawn } from 'node:child_process'
import { mkdir, open } from 'node:fs/promises'
import { createConnection, type Socket } from 'node:net'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { DaemonError, DaemonStartError, DaemonUnavailableError } from '../errors.ts'
import { socketPath } from './paths.ts'

type Pending = {
  onEvent: (event: Record<string, unknown>) => void
  resolve: (result: unknown) => void
  reject: (err: Error) => void
}

const STREAMING_METHODS = new Set([
  'pair.generate',
  'pair.join',
  'listen',
  'events',
  'ping',
  'drop.send',
  'drop.accept',
  'drop.follow',
  'drop.wait',
])
const REPLY_TIMEOUT_MS = 30_000

export class DaemonClient {
  readonly #socket: Socket
  readonly #pending = new Map<number, Pending>()
  #nextId = 1

  private constructor(socket: Socket) {
    this.#socket = socket
    const lines = createInterface({ input: socket, crlfDelay: Number.POSITIVE_INFINITY })
    lines.on('line', (line) => this.#onLine(line))
    socket.on('close', () => {
      for (const pending of this.#pending.values()) {
        pending.reject(
          new DaemonUnavailableError(
            'the daemon closed the connection (it may have stopped or crashed; see sdnet.log in the data dir)',
          ),
        )
      }
      this.#pending.clear()
    })
    socket.on('error', () => {})
  }

  /** Connects to the daemon when one runs; undefined when none answers. */
  static async connectIfRunning(dataDir: string): Promise<DaemonClient | undefined> {
    try {
      return await DaemonClient.connect(dataDir)
    } catch (err) {
      if (err instanceof DaemonUnavailableError) return undefined
      throw err
    }
  }

  /** Connects to a running daemon; rejects with DaemonUnavailableError when none answers. */
  static connect(dataDir: string): Promise<DaemonClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(socketPath(dataDir))
      socket.once('connect', () => resolve(new DaemonClient(socket)))
      socket.once('error', (err) =>
        reject(
          new DaemonUnavailableError(
            `no daemon is running for ${dataDir} (${(err as NodeJS.ErrnoException).code})`,
          ),
        ),
      )
    })
  }

  /**
   * Sends one request. Methods that stream until something happens (a pairing, a file drop, `listen`, `events`,
   * `ping`) wait as long as that takes; every other answer must come within REPLY_TIMEOUT_MS, or the call fails
   * saying so.
   */
  call<T = unknown>(method: string, params: object = {}, onEvent: Pending['onEvent'] = () => {}): Promise<T> {
    const id = this.#nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = STREAMING_METHODS.has(method)
        ? undefined
        : setTimeout(() => {
            this.#pending.delete(id)
            reject(
              new DaemonUnavailableError(
                `the daemon did not answer "${method}" within ${REPLY_TIMEOUT_MS / 1000} s; see sdnet.log in the data dir`,
              ),
            )
          }, REPLY_TIMEOUT_MS)
      const settle =
        <V>(fn: (value: V) => void) =>
        (value: V) => {
          clearTimeout(timer)
          fn(value)
        }
      this.#pending.set(id, {
        onEvent,
        resolve: settle(resolve as (r: unknown) => void),
        reject: settle(reject),
      })
      this.#socket.write(`${JSON.stringify({ id, method, params })}\n`)
    })
  }

  close(): void {
    this.#socket.end()
  }

  /** Calls `listener` once the daemon's side of the connection has closed (e.g. after `stop`). */
  onClose(listener: () => void): void {
    if (this.#socket.closed) listener()
    else this.#socket.once('close', listener)
  }

  #onLine(line: string): void {
    let message: {
      id?: number
      event?: Record<string, unknown>
      result?: unknown
      error?: { name: string; message: string }
    }
    try {
      message = JSON.parse(line)
    } catch {
      return
    }
    const pending = message.id === undefined ? undefined : this.#pending.get(message.id)
    if (pending === undefined) return
    if (message.event !== undefined) pending.onEvent(message.event)
    else if (message.error !== undefined) {
      this.#pending.delete(message.id!)
      pending.reject(new DaemonError(message.error.name, message.error.message))
    } else {
      this.#pending.delete(message.id!)
      pending.resolve(message.result)
    }
  }
}

export interface SpawnDaemonOptions {
  /** The script that runs `start --foreground` (the CLI entry). */
  entry: string
  /** Arguments that select the instance and configure the node, passed before `start --foreground`. */
  args: string[]
  dataDir: string
  env?: NodeJS.ProcessEnv
  timeoutMs?: number
}

/**
 * Starts a daemon in the background and resolves once it listens on its socket. The child reports readiness
 * (or the reason it could not start) over an IPC channel, then detaches; its logs go to `sdnet.log`.
 */
export async function spawnDaemon(opts: SpawnDaemonOptions): Promise<{ pid: number }> {
  await mkdir(opts.dataDir, { recursive: true, mode: 0o700 })
  // What the daemon prints outside its log (libp2p debug with --verbose, a crash) goes to daemon.out.
  const output = await open(join(opts.dataDir, 'daemon.out'), 'a', 0o600)
  const child = spawn(process.execPath, [opts.entry, ...opts.args, 'start', '--foreground', '--detached'], {
    detached: true,
    stdio: ['ignore', output.fd, output.fd, 'ipc'],
    env: opts.env ?? process.env,
  })
  await output.close()
  const timeoutMs = opts.timeoutMs ?? 30_000
  try {
    return await new Promise<{ pid: number }>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new DaemonStartError(`the daemon did not become ready within ${timeoutMs / 1000} s`)),
        timeoutMs,
      )
      child.once('message', (message: { ready?: boolean; error?: { name: string; message: string } }) => {
        clearTimeout(timer)
        if (message.ready === true) resolve({ pid: child.pid! })
        else
          reject(
            new DaemonError(
              message.error?.name ?? 'DaemonStartError',
              message.error?.message ?? 'the daemon failed to start',
            ),
          )
      })
      child.once('exit', (code) => {
        clearTimeout(timer)
        reject(
          new DaemonStartError(
            `the daemon exited during start (exit code ${code}); see sdnet.log in ${opts.dataDir}`,
          ),
        )
      })
    })
  } finally {
    if (child.connected) child.disconnect()
    child.unref()
  }
}

/** Connects to the daemon for `dataDir`, starting one first when none answers. */
export async function ensureDaemon(opts: SpawnDaemonOptions): Promise<DaemonClient> {
  const running = await DaemonClient.connectIfRunning(opts.dataDir)
  if (running !== undefined) return running
  try {
    await spawnDaemon(opts)
  } catch (err) {
    // Another command may have started the daemon at the same moment: use that one.
    if (!(err instanceof DaemonError && err.remoteName === 'DaemonRunningError')) throw err
  }
  return DaemonClient.connect(opts.dataDir)
}
