// Virtual LANs for end-to-end tests: every host is a Linux network namespace with one veth pair into a bridge
// that lives in a namespace of its own, so nothing (addresses, mDNS multicast, processes) touches the machine's
// real network. Needs root and iproute2.
//
//   const lan = await createLan(2)
//   const child = lan.hosts[0]!.run(process.execPath, ['server.ts'])
//   ...
//   await lan.destroy()   // kills every process in the LAN's namespaces, deletes the namespaces
//
// Names start with `sdnet-<pid>-` so parallel runs and leftovers of crashed runs never collide. A crashed run
// still cleans up: live LANs are torn down synchronously on process 'exit', SIGINT and SIGTERM.

import { type ChildProcess, execFile, execFileSync, type SpawnOptions, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'

/** Every namespace this process creates starts with this. */
export const runPrefix = `sdnet-${process.pid}-`

export interface Host {
  /** `a`, `b`, `c`, ... in creation order. */
  readonly name: string
  /** The network namespace the host's processes run in. */
  readonly ns: string
  /** The host's IPv4 address on the LAN (its `eth0`). */
  readonly address: string
  /** Spawns `cmd args` inside the host's namespace (`ip netns exec`); the LAN kills it on destroy(). */
  run(cmd: string, args: string[], options?: SpawnOptions): ChildProcess
  /** Pulls the host's cable: its `eth0` loses carrier, so nothing it sends or expects arrives. */
  linkDown(): Promise<void>
  /** Plugs the cable back in and resolves once `eth0` has carrier again. */
  linkUp(): Promise<void>
  /** Pids of every process living in the host's namespace, started by run() or by what it ran. */
  processes(): Promise<number[]>
}

export interface Lan {
  readonly hosts: Host[]
  /** Prefix shared by this LAN's namespaces (`sdnet-<pid>-<n>-`). */
  readonly prefix: string
  /** Every namespace of this LAN, the bridge's included. */
  readonly namespaces: string[]
  /** Kills every process in the LAN (SIGTERM, then SIGKILL) and deletes its namespaces. Idempotent. */
  destroy(): Promise<void>
}

const COMMAND_TIMEOUT_MS = 10_000
const TERM_GRACE_MS = 3_000
const KILL_GRACE_MS = 2_000
const POLL_INTERVAL_MS = 10
// Multicast (mDNS is 224.0.0.251) must leave through eth0; a namespace has no default route to fall back on.
const MULTICAST_RANGE = '224.0.0.0/4'
const MAX_HOSTS = 26

export function canCreateNamespaces(): { ok: true } | { ok: false; reason: string } {
  if (process.platform !== 'linux') return { ok: false, reason: 'network namespaces need Linux' }
  if (process.getuid?.() !== 0) return { ok: false, reason: 'creating network namespaces needs root' }
  const probe = `${runPrefix}probe`
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe', timeout: COMMAND_TIMEOUT_MS })
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe', timeout: COMMAND_TIMEOUT_MS })
    return { ok: true }
  } catch (error) {
    return { ok: false, reason: `\`ip netns add\` does not work here: ${errorText(error)}` }
  }
}

let lanCount = 0
const liveLans = new Set<VirtualLan>()

export async function createLan(hostCount: number): Promise<Lan> {
  if (!Number.isInteger(hostCount) || hostCount < 1 || hostCount > MAX_HOSTS) {
    throw new RangeError(`A LAN holds 1 to ${MAX_HOSTS} hosts, not ${hostCount}.`)
  }
  lanCount += 1
  const lan = new VirtualLan(lanCount, hostCount)
  registerCleanup(lan)
  try {
    await lan.build()
  } catch (error) {
    await lan.destroy()
    throw error
  }
  return lan
}

class VirtualLan implements Lan {
  readonly hosts: VirtualHost[]
  readonly prefix: string
  readonly bridgeNs: string
  readonly subnet: string
  readonly children = new Set<ChildProcess>()
  #destroying: Promise<void> | undefined

  constructor(index: number, hostCount: number) {
    this.prefix = `${runPrefix}${index}-`
    this.bridgeNs = `${this.prefix}br`
    // Each LAN lives in its own namespaces, so reusing a subnet across LANs or runs cannot clash.
    this.subnet = `10.213.${((index - 1) % 250) + 1}`
    this.hosts = Array.from({ length: hostCount }, (_, i) => new VirtualHost(this, i))
  }

  get namespaces(): string[] {
    return [this.bridgeNs, ...this.hosts.map((host) => host.ns)]
  }

  async build(): Promise<void> {
    await Promise.all(this.namespaces.map((ns) => ip(['netns', 'add', ns])))
    await ip(['-n', this.bridgeNs, 'link', 'set', 'lo', 'up'])
    // No IGMP snooping: without a querier on the LAN it could stop flooding mDNS to every port.
    await ip(['-n', this.bridgeNs, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0'])
    await ip(['-n', this.bridgeNs, 'link', 'set', 'br0', 'up'])
    await Promise.all(this.hosts.map((host) => host.build()))
  }

  destroy(): Promise<void> {
    this.#destroying ??= this.#teardown()
    return this.#destroying
  }

  async #teardown(): Promise<void> {
    // A process may fork while we kill (a CLI starting its daemon), so look again until the namespaces are empty.
    for (let round = 0; round < 3; round += 1) {
      const pids = await this.#pids()
      if (pids.size === 0) break
      await terminate(pids)
    }
    // Deleting a host namespace deletes its veth end and with it the peer on the bridge.
    await Promise.all(this.namespaces.map((ns) => ip(['netns', 'del', ns]).catch(ignoreMissingNamespace)))
    liveLans.delete(this)
    if (liveLans.size === 0) unregisterCleanup()
  }

  /** Processes we spawned plus anything else living in our namespaces (daemons our processes detached). */
  async #pids(): Promise<Set<number>> {
    const pids = new Set<number>()
    for (const child of this.children) if (child.pid !== undefined && isAlive(child.pid)) pids.add(child.pid)
    const listed = await Promise.all(this.namespaces.map((ns) => namespacePids(ns)))
    for (const pid of listed.flat()) pids.add(pid)
    return pids
  }

  /** For process exit: no awaiting possible, so kill hard and delete right away. */
  destroySync(): void {
    const pids = new Set<number>()
    for (const child of this.children) if (child.pid !== undefined) pids.add(child.pid)
    for (const ns of this.namespaces) for (const pid of namespacePidsSync(ns)) pids.add(pid)
    signalAll(pids, 'SIGKILL')
    for (const ns of this.namespaces) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: COMMAND_TIMEOUT_MS })
      } catch {
        // Already gone or never created; nothing else to do while exiting.
      }
    }
    liveLans.delete(this)
  }
}

class VirtualHost implements Host {
  readonly name: string
  readonly ns: string
  readonly address: string
  readonly #lan: VirtualLan
  readonly #bridgePort: string

  constructor(lan: VirtualLan, index: number) {
    this.#lan = lan
    this.name = String.fromCharCode('a'.charCodeAt(0) + index)
    this.ns = `${lan.prefix}${this.name}`
    this.address = `${lan.subnet}.${index + 1}`
    this.#bridgePort = `port-${this.name}`
  }

  async build(): Promise<void> {
    const bridge = this.#lan.bridgeNs
    // Both veth ends are created directly inside their namespaces: no name ever appears in the root namespace.
    await ip([
      '-n',
      bridge,
      'link',
      'add',
      this.#bridgePort,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      this.ns,
    ])
    await ip(['-n', bridge, 'link', 'set', this.#bridgePort, 'master', 'br0', 'up'])
    await ip(['-n', this.ns, 'link', 'set', 'lo', 'up'])
    await ip(['-n', this.ns, 'addr', 'add', `${this.address}/24`, 'dev', 'eth0'])
    await ip(['-n', this.ns, 'link', 'set', 'eth0', 'up'])
    await ip(['-n', this.ns, 'route', 'replace', MULTICAST_RANGE, 'dev', 'eth0'])
    await this.#waitForCarrier()
  }

  run(cmd: string, args: string[], options: SpawnOptions = {}): ChildProcess {
    if (liveLans.has(this.#lan) === false)
      throw new Error(`Host ${this.name} belongs to a LAN that was destroyed.`)
    const child = spawn('ip', ['netns', 'exec', this.ns, cmd, ...args], options)
    // `ip netns exec` execs the command in place, so this pid is the command's own.
    this.#lan.children.add(child)
    child.once('exit', () => this.#lan.children.delete(child))
    return child
  }

  processes(): Promise<number[]> {
    return namespacePids(this.ns)
  }

  async linkDown(): Promise<void> {
    await ip(['-n', this.#lan.bridgeNs, 'link', 'set', this.#bridgePort, 'down'])
  }

  async linkUp(): Promise<void> {
    await ip(['-n', this.#lan.bridgeNs, 'link', 'set', this.#bridgePort, 'up'])
    await this.#waitForCarrier()
  }

  // The kernel announces carrier changes only over netlink; polling `ip link` is the simple bounded substitute.
  async #waitForCarrier(): Promise<void> {
    const attempts = 300
    for (let attempt = 0; attempt < attempts; attempt += 1) {
      const { stdout } = await ip(['-n', this.ns, '-j', 'link', 'show', 'eth0'])
      const [link] = JSON.parse(stdout) as Array<{ flags?: string[] }>
      if (link?.flags?.includes('LOWER_UP')) return
      await delay(POLL_INTERVAL_MS)
    }
    throw new Error(
      `eth0 of host ${this.name} (${this.ns}) did not get carrier within ${attempts * POLL_INTERVAL_MS} ms.`,
    )
  }
}

function ip(args: string[]): Promise<{ stdout: string }> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: COMMAND_TIMEOUT_MS }, (error, stdout, stderr) => {
      if (error) reject(new Error(`ip ${args.join(' ')} failed: ${stderr.trim() || error.message}`))
      else resolve({ stdout })
    })
  })
}

function ignoreMissingNamespace(error: unknown): void {
  if (!/No such file|not found|Invalid argument/i.test(errorText(error))) throw error
}

async function namespacePids(ns: string): Promise<number[]> {
  try {
    return parsePids((await ip(['netns', 'pids', ns])).stdout)
  } catch {
    return [] // the namespace does not exist (yet, or any more)
  }
}

function namespacePidsSync(ns: string): number[] {
  try {
    return parsePids(
      execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS }),
    )
  } catch {
    return []
  }
}

function parsePids(text: string): number[] {
  return text
    .split('\n')
    .map((line) => Number.parseInt(line, 10))
    .filter((pid) => Number.isInteger(pid) && pid > 0 && pid !== process.pid)
}

function signalAll(pids: Set<number>, signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal)
    } catch {
      // Exited in the meantime.
    }
  }
}

/** A zombie counts as gone: it holds no sockets, and in a container nobody may ever reap it. */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    return state !== 'Z' && state !== 'X'
  } catch {
    return false
  }
}

/** SIGTERM, then SIGKILL for whatever still runs after a grace period; resolves once all are gone or given up. */
export async function terminate(pids: Iterable<number>): Promise<void> {
  const targets = new Set(pids)
  signalAll(targets, 'SIGTERM')
  if (await waitUntilGone(targets, TERM_GRACE_MS)) return
  signalAll(targets, 'SIGKILL')
  await waitUntilGone(targets, KILL_GRACE_MS)
}

async function waitUntilGone(pids: Set<number>, timeoutMs: number): Promise<boolean> {
  const attempts = Math.ceil(timeoutMs / POLL_INTERVAL_MS)
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    if ([...pids].every((pid) => !isAlive(pid))) return true
    await delay(POLL_INTERVAL_MS)
  }
  return [...pids].every((pid) => !isAlive(pid))
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function errorText(error: unknown): string {
  if (error instanceof Error) {
    const stderr = (error as { stderr?: unknown }).stderr
    const detail = typeof stderr === 'string' || Buffer.isBuffer(stderr) ? String(stderr).trim() : ''
    return detail || error.message
  }
  return String(error)
}

// Crash safety: tear down whatever is still alive when the process ends. Installed only while a LAN exists, so an
// idle import changes no signal behaviour.
const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM']

function destroyAllSync(): void {
  for (const lan of [...liveLans]) lan.destroySync()
}

function onSignal(signal: NodeJS.Signals): void {
  destroyAllSync()
  unregisterCleanup()
  process.kill(process.pid, signal) // default action now that our handler is gone
}

function registerCleanup(lan: VirtualLan): void {
  if (liveLans.size === 0) {
    process.on('exit', destroyAllSync)
    for (const signal of signals) process.on(signal, onSignal)
  }
  liveLans.add(lan)
}

function unregisterCleanup(): void {
  process.off('exit', destroyAllSync)
  for (const signal of signals) process.off(signal, onSignal)
}
