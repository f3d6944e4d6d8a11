// Runs the real `sdnet` CLI inside the hosts of a virtual LAN (see netns.ts). Every device gets a throwaway
// directory holding its data dir and its HOME, so no test ever reads or writes the user's files.
//
//   const bed = await createTestbed(2)
//   const alpha = await bed.device(0, 'alpha')        // `sdnet init` on host a
//   const session = await alpha.generate(['--auto-accept'])
//   const joined = await beta.run(['pair', 'join', session.code, '--json'])
//   ...
//   await bed.cleanup()                               // stop daemons, destroy the LAN, delete the directories
//
// Everything waits on output lines or process exit, each wait with a deadline that kills the process and fails
// with what it printed so far.

import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { createLan, type Host, type Lan, terminate } from './netns.ts'

export const repoRoot = path.resolve(import.meta.dirname, '..', '..')
export const sdnetEntry = path.join(repoRoot, 'cli', 'sdnet.ts')

export const DEFAULT_TIMEOUT_MS = 30_000
const KILL_GRACE_MS = 2_000
// A process whose stdout stays open after it exited left a child (a daemon) holding our pipe.
const STDIO_GRACE_MS = 2_000

export type JsonObject = { [key: string]: unknown }

export interface Finished {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  durationMs: number
}

export interface Line {
  text: string
  /** `performance.now()` when the line arrived. */
  at: number
}

interface LineWaiter {
  match: (line: string) => boolean
  resolve: (line: Line) => void
  reject: (error: Error) => void
}

/** A child process whose stdout lines and exit can be awaited with deadlines. */
export class WatchedProcess {
  readonly label: string
  readonly child: ChildProcess
  readonly startedAt = performance.now()
  readonly lines: Line[] = []
  #stdout = ''
  #stderr = ''
  #partial = ''
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined
  #failure: Error | undefined
  readonly #waiters = new Set<LineWaiter>()
  readonly #closed: Promise<Finished>

  constructor(child: ChildProcess, label: string) {
    this.child = child
    this.label = label
    child.stdout?.setEncoding('utf8')
    child.stderr?.setEncoding('utf8')
    child.stdout?.on('data', (chunk: string) => this.#onStdout(chunk))
    child.stderr?.on('data', (chunk: string) => {
      this.#stderr += chunk
    })
    this.#closed = new Promise<Finished>((resolve, reject) => {
      child.once('error', (error) => {
        this.#failure = new Error(`${label} could not run: ${error.message}`)
        this.#settleWaiters()
        reject(this.#failure)
      })
      child.once('exit', (code, signal) => {
        this.#exit = { code, signal }
      })
      child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        this.#exit ??= { code, signal }
        if (this.#partial) this.#addLine(this.#partial)
        this.#partial = ''
        this.#settleWaiters()
        resolve({
          code,
          signal,
          stdout: this.#stdout,
          stderr: this.#stderr,
          durationMs: performance.now() - this.startedAt,
        })
      })
    })
    this.#closed.catch(() => {}) // rejections surface through finished() and waitForLine()
  }

  get running(): boolean {
    return this.#exit === undefined && this.#failure === undefined
  }

  get stdout(): string {
    return this.#stdout
  }

  get stderr(): string {
    return this.#stderr
  }

  /**
   * Resolves with the first line (already printed or still to come) that matches. `from` skips the lines before
   * that index: pass `lines.length` taken before an action to wait for what the action causes.
   */
  waitForLine(
    match: (line: string) => boolean,
    what: string,
    timeoutMs = DEFAULT_TIMEOUT_MS,
    from = 0,
  ): Promise<Line> {
    let seen: Line | undefined
    try {
      seen = this.lines.slice(from).find((line) => match(line.text))
    } catch (error) {
      return Promise.reject(error)
    }
    if (seen) return Promise.resolve(seen)
    if (!this.running) return Promise.reject(this.#error(`ended before printing ${what}`))
    return new Promise<Line>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter)
        this.kill()
        reject(this.#error(`did not print ${what} within ${timeoutMs} ms (killed)`))
      }, timeoutMs)
      const waiter: LineWaiter = {
        match,
        resolve: (line) => {
          clearTimeout(timer)
          resolve(line)
        },
        reject: (error) => {
          clearTimeout(timer)
          reject(error)
        },
      }
      this.#waiters.add(waiter)
    })
  }

  /** Resolves once the process exited and closed its output; past the deadline it is killed and this rejects. */
  finished(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Finished> {
    return new Promise<Finished>((resolve, reject) => {
      let exitTimer: NodeJS.Timeout | undefined
      const deadline = setTimeout(() => {
        this.kill()
        reject(this.#error(`did not finish within ${timeoutMs} ms (killed)`))
      }, timeoutMs)
      const onExit = (): void => {
        exitTimer = setTimeout(() => {
          clearTimeout(deadline)
          reject(
            this.#error(
              `exited but its stdout/stderr stayed open for ${STDIO_GRACE_MS} ms: a process it started ` +
                '(the daemon?) inherited them; start it with its output redirected',
            ),
          )
        }, STDIO_GRACE_MS)
      }
      if (this.#exit) onExit()
      else this.child.once('exit', onExit)
      this.#closed.then(
        (result) => {
          clearTimeout(deadline)
          clearTimeout(exitTimer)
          resolve(result)
        },
        (error: Error) => {
          clearTimeout(deadline)
          clearTimeout(exitTimer)
          reject(error)
        },
      )
    })
  }

  /** SIGTERM now, SIGKILL if it is still there after a grace period. */
  kill(): void {
    if (!this.running) return
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => {
      if (this.running) this.child.kill('SIGKILL')
    }, KILL_GRACE_MS)
    timer.unref()
  }

  /** What the process printed, for failure messages. */
  transcript(): string {
    const exit = this.#exit
      ? `exit code ${this.#exit.code}${this.#exit.signal ? ` (${this.#exit.signal})` : ''}`
      : 'running'
    return `${this.label} [${exit}]\n  stdout: ${indent(this.#stdout)}\n  stderr: ${indent(this.#stderr)}`
  }

  #onStdout(chunk: string): void {
    this.#stdout += chunk
    const parts = (this.#partial + chunk).split('\n')
    this.#partial = parts.pop() ?? ''
    for (const part of parts) this.#addLine(part)
  }

  #addLine(text: string): void {
    const line = { text, at: performance.now() }
    this.lines.push(line)
    for (const waiter of this.#waiters) {
      let matched: boolean
      try {
        matched = waiter.match(text)
      } catch (error) {
        this.#waiters.delete(waiter)
        waiter.reject(error instanceof Error ? error : new Error(String(error)))
        continue
      }
      if (matched) {
        this.#waiters.delete(waiter)
        waiter.resolve(line)
      }
    }
  }

  #settleWaiters(): void {
    for (const waiter of this.#waiters) waiter.reject(this.#error('ended before printing the awaited line'))
    this.#waiters.clear()
  }

  #error(what: string): Error {
    return new Error(`${this.label} ${what}.\n${this.transcript()}`)
  }
}

function indent(text: string): string {
  const trimmed = text.trimEnd()
  if (!trimmed) return '(nothing)'
  const lines = trimmed.split('\n')
  const shown = lines.length > 40 ? ['…', ...lines.slice(-40)] : lines
  return shown.join('\n    ')
}

// ---- sdnet

export type Output = 'events' | 'document'
export type EventMatch = string | ((event: JsonObject) => boolean)

export interface CliResult extends Finished {
  command: string
  /** stdout parsed as NDJSON objects (empty for `output: 'document'`: parse `stdout` then). */
  events: JsonObject[]
  /** What it printed, for assertion messages. */
  transcript: string
}

/** One `sdnet` process whose NDJSON output can be awaited event by event. */
export class CliProcess {
  readonly command: string
  readonly process: WatchedProcess

  constructor(process: WatchedProcess, command: string) {
    this.process = process
    this.command = command
  }

  get events(): JsonObject[] {
    return this.process.lines.filter((line) => line.text.trim()).map((line) => this.#parse(line.text))
  }

  /** The first event matching `match` (by its `event` field when given a string), already printed or to come. */
  async waitFor(match: EventMatch, timeoutMs = DEFAULT_TIMEOUT_MS, from = 0): Promise<JsonObject> {
    return (await this.waitForTimed(match, timeoutMs, from)).event
  }

  /** How many lines it printed so far: a mark for `waitFor*(…, from)`, to skip what came before an action. */
  get printed(): number {
    return this.process.lines.length
  }

  /** Like waitFor, but also says when the line arrived (`performance.now()`); `from` as in `waitForLine`. */
  async waitForTimed(
    match: EventMatch,
    timeoutMs = DEFAULT_TIMEOUT_MS,
    from = 0,
  ): Promise<{ event: JsonObject; at: number }> {
    const predicate = typeof match === 'string' ? (event: JsonObject) => event.event === match : match
    const what = typeof match === 'string' ? `an {"event":"${match}"} line` : 'the awaited event'
    const line = await this.process.waitForLine(
      (text) => text.trim() !== '' && predicate(this.#parse(text)),
      what,
      timeoutMs,
      from,
    )
    return { event: this.#parse(line.text), at: line.at }
  }

  /** `output: 'document'` for commands that print one JSON document (status, devices) instead of NDJSON. */
  async finished(timeoutMs = DEFAULT_TIMEOUT_MS, output: Output = 'events'): Promise<CliResult> {
    const result = await this.process.finished(timeoutMs)
    const events = output === 'events' ? this.events : []
    return { ...result, command: this.command, events, transcript: this.process.transcript() }
  }

  get running(): boolean {
    return this.process.running
  }

  transcript(): string {
    return this.process.transcript()
  }

  kill(): void {
    this.process.kill()
  }

  // With --json every stdout line is a JSON object; anything else is a contract violation worth failing on.
  #parse(text: string): JsonObject {
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      throw new Error(
        `${this.command} printed a line that is not JSON: ${text}\n${this.process.transcript()}`,
      )
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new Error(`${this.command} printed a JSON line that is not an object: ${text}`)
    }
    return value as JsonObject
  }
}

export interface Identity {
  deviceId: string
  name: string
  fingerprint: string
  peerId: string
}

export interface Started {
  pid: number
  peerId: string
  addresses: string[]
}

export interface StoredDevice {
  id: string
  name: string
  fingerprint: string
  peerId: string
  pairedAt: unknown
}

export interface DeviceConnection {
  id: string
  name: string
  /** 'connected' | 'connecting' | 'reconnecting' | 'offline' */
  state: string
  rttMs: number | null
  lastSeen: number | null
}

export interface PairingCode {
  cli: CliProcess
  code: string
  sessionId: string
  expiresAt: number
}

/** One sdnet installation: a data dir on one host of the LAN. */
export class Device {
  readonly host: Host
  readonly name: string
  readonly root: string
  readonly dataDir: string
  readonly env: NodeJS.ProcessEnv
  readonly processes = new Set<CliProcess>()
  #identity: Identity | undefined

  constructor(host: Host, name: string, root: string) {
    this.host = host
    this.name = name
    this.root = root
    this.dataDir = path.join(root, 'data')
    const home = path.join(root, 'home')
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      HOME: home,
      XDG_DATA_HOME: path.join(home, '.local', 'share'),
      XDG_CONFIG_HOME: path.join(home, '.config'),
      XDG_STATE_HOME: path.join(home, '.local', 'state'),
      // What `npm test` does too: the Node that runs the tests comes first on PATH.
      PATH: [path.dirname(process.execPath), process.env.PATH].filter(Boolean).join(path.delimiter),
    }
    delete env.NODE_TEST_CONTEXT // set by `node --test`; not meant for the CLI's own processes
    this.env = env
  }

  get identity(): Identity {
    if (!this.#identity) throw new Error(`Device ${this.name} has no identity yet: call init() first.`)
    return this.#identity
  }

  get socketPath(): string {
    return path.join(this.dataDir, 'sdnet.sock')
  }

  /** Starts `sdnet --data-dir D <args>` on the device's host. */
  spawn(args: string[]): CliProcess {
    const argv = [sdnetEntry, '--data-dir', this.dataDir, ...args]
    const command = `sdnet ${args.join(' ')} (${this.name} on host ${this.host.name})`
    const child = this.host.run(process.execPath, argv, {
      env: this.env,
      cwd: this.root,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const cli = new CliProcess(new WatchedProcess(child, command), command)
    this.processes.add(cli)
    child.once('close', () => this.processes.delete(cli))
    return cli
  }

  /** Runs a command to completion. */
  run(args: string[], timeoutMs = DEFAULT_TIMEOUT_MS, output: Output = 'events'): Promise<CliResult> {
    return this.spawn(args).finished(timeoutMs, output)
  }

  async init(): Promise<Identity> {
    const result = await this.run(['init', '--name', this.name, '--json'])
    assert.equal(result.code, 0, result.transcript)
    const event = onlyEvent(result, 'identity')
    this.#identity = {
      deviceId: text(event.deviceId, 'identity.deviceId'),
      name: text(event.name, 'identity.name'),
      fingerprint: text(event.fingerprint, 'identity.fingerprint'),
      peerId: text(event.peerId, 'identity.peerId'),
    }
    assert.equal(this.#identity.name, this.name, 'init should keep the name it was given')
    return this.#identity
  }

  async start(): Promise<Started> {
    const result = await this.run(['start', '--json'])
    assert.equal(result.code, 0, result.transcript)
    const event = onlyEvent(result, 'started')
    const started = {
      pid: integer(event.pid, 'started.pid'),
      peerId: text(event.peerId, 'started.peerId'),
      addresses: texts(event.addresses, 'started.addresses'),
    }
    if (this.#identity)
      assert.equal(started.peerId, this.#identity.peerId, 'the daemon runs as the identity init made')
    return started
  }

  async stop(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    const result = await this.run(['stop', '--json'], timeoutMs)
    assert.equal(result.code, 0, result.transcript)
    onlyEvent(result, 'stopped')
  }

  async status(): Promise<JsonObject> {
    const result = await this.run(['status', '--json'], DEFAULT_TIMEOUT_MS, 'document')
    assert.equal(result.code, 0, result.transcript)
    return jsonDocument(result)
  }

  async devices(): Promise<StoredDevice[]> {
    return (await this.#deviceList()).map(({ item, what }) => ({
      id: text(item.id, `${what}.id`),
      name: text(item.name, `${what}.name`),
      fingerprint: text(item.fingerprint, `${what}.fingerprint`),
      peerId: text(item.peerId, `${what}.peerId`),
      pairedAt: item.pairedAt,
    }))
  }

  /** `devices --json` with each device's connection state, last round-trip time and last contact. */
  async connections(): Promise<DeviceConnection[]> {
    return (await this.#deviceList()).map(({ item, what }) => ({
      id: text(item.id, `${what}.id`),
      name: text(item.name, `${what}.name`),
      state: text(item.state, `${what}.state`),
      rttMs: nullableNumber(item.rttMs, `${what}.rttMs`),
      lastSeen: nullableNumber(item.lastSeen, `${what}.lastSeen`),
    }))
  }

  async #deviceList(): Promise<Array<{ item: JsonObject; what: string }>> {
    const result = await this.run(['devices', '--json'], DEFAULT_TIMEOUT_MS, 'document')
    assert.equal(result.code, 0, result.transcript)
    const list = JSON.parse(result.stdout) as unknown
    assert.ok(Array.isArray(list), `devices --json should print an array.\n${result.transcript}`)
    return list.map((entry: unknown, index) => ({
      item: object(entry, `devices[${index}]`),
      what: `devices[${index}]`,
    }))
  }

  /** `events --json` left running: the node's events as NDJSON `{ type, at, … }` until killed. */
  events(): CliProcess {
    return this.spawn(['events', '--json'])
  }

  /** Ends (by pid) any process on the host that still runs for this data dir, such as a daemon stop missed. */
  async killLeftovers(): Promise<number[]> {
    const pids = (await this.host.processes()).filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(this.dataDir)
      } catch {
        return false // already gone
      }
    })
    await terminate(pids)
    return pids
  }

  /** `pair generate --json <options>` left running; resolves once it printed its code. */
  async generate(options: string[] = [], timeoutMs = DEFAULT_TIMEOUT_MS): Promise<PairingCode> {
    const cli = this.spawn(['pair', 'generate', '--json', ...options])
    const event = await cli.waitFor('code', timeoutMs)
    const code = text(event.code, 'code.code')
    assert.equal(code.split(' ').length, 12, `a pairing code is 12 words, got "${code}"`)
    return {
      cli,
      code,
      sessionId: text(event.sessionId, 'code.sessionId'),
      expiresAt: integer(event.expiresAt, 'code.expiresAt'),
    }
  }
}

/** A LAN plus every device made on it, torn down together. */
export interface Testbed {
  lan: Lan
  /** A fresh device on host `hostIndex`, already `init`ed. */
  device(hostIndex: number, name: string): Promise<Device>
  /** Stops the daemons of these devices (errors are collected, not thrown, so cleanup always finishes). */
  stop(devices: Device[]): Promise<Error[]>
  /** Stops every daemon, kills every CLI still running, destroys the LAN, deletes the directories. */
  cleanup(): Promise<Error[]>
}

export async function createTestbed(hostCount: number): Promise<Testbed> {
  if (!existsSync(sdnetEntry)) {
    throw new Error(`The sdnet CLI ${sdnetEntry} does not exist; the end-to-end tests run the real CLI.`)
  }
  const lan = await createLan(hostCount)
  const devices: Device[] = []

  // A daemon that `stop` failed to end would answer the next test's mDNS queries: end it by pid.
  const stop = async (some: Device[]): Promise<Error[]> => {
    const outcomes = await Promise.allSettled(some.map((device) => device.stop(10_000)))
    await Promise.all(some.map((device) => device.killLeftovers()))
    return outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [asError(outcome.reason)] : []))
  }

  return {
    lan,
    async device(hostIndex, name) {
      const host = lan.hosts[hostIndex]
      if (!host) throw new RangeError(`The LAN has ${lan.hosts.length} hosts, not ${hostIndex + 1}.`)
      const root = await mkdtemp(path.join(os.tmpdir(), `sdnet-e2e-${name}-`))
      const device = new Device(host, name, root)
      devices.push(device)
      await mkdir(path.join(root, 'home'), { recursive: true })
      await device.init()
      return device
    },
    stop,
    async cleanup() {
      const errors = await stop(devices)
      for (const device of devices) for (const cli of device.processes) cli.kill()
      await lan.destroy()
      await Promise.all(devices.map((device) => rm(device.root, { recursive: true, force: true })))
      return errors
    },
  }
}

// ---- reading events

/** The result's single event, which must be `name`. */
export function onlyEvent(result: CliResult, name: string): JsonObject {
  assert.equal(
    result.events.length,
    1,
    `expected exactly one {"event":"${name}"} line.\n${result.transcript}`,
  )
  const [event] = result.events
  assert.equal(event?.event, name, result.transcript)
  return event!
}

/** The last event, which must be `name`. */
export function lastEvent(result: CliResult, name: string): JsonObject {
  const event = result.events.at(-1)
  assert.equal(event?.event, name, `expected the last line to be {"event":"${name}"}.\n${result.transcript}`)
  return event!
}

/** A command that prints one JSON document (status, devices). */
export function jsonDocument(result: CliResult): JsonObject {
  return object(JSON.parse(result.stdout), `output of ${result.command}`)
}

export function object(value: unknown, what: string): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new assert.AssertionError({ message: `${what}: expected an object, got ${JSON.stringify(value)}` })
  }
  return value as JsonObject
}

export function text(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '') {
    throw new assert.AssertionError({
      message: `${what}: expected a non-empty string, got ${JSON.stringify(value)}`,
    })
  }
  return value
}

export function integer(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new assert.AssertionError({ message: `${what}: expected an integer, got ${JSON.stringify(value)}` })
  }
  return value
}

function nullableNumber(value: unknown, what: string): number | null {
  if (value === null || (typeof value === 'number' && Number.isFinite(value))) return value
  throw new assert.AssertionError({
    message: `${what}: expected a number or null, got ${JSON.stringify(value)}`,
  })
}

function texts(value: unknown, what: string): string[] {
  if (!Array.isArray(value)) {
    throw new assert.AssertionError({ message: `${what}: expected an array, got ${JSON.stringify(value)}` })
  }
  return value.map((item, index) => text(item, `${what}[${index}]`))
}

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason))
}
