// `sdnet init | start | stop | status | devices`: the instance and its daemon.
import { mkdir } from 'node:fs/promises'
import { hostname } from 'node:os'
import { resolve } from 'node:path'
import {
  DaemonClient,
  type DaemonStatus,
  ensureDaemon,
  spawnDaemon,
  writeFileAtomic,
} from '../actors/client.ts'
import {
  configPath,
  type GlobalOptions,
  password,
  readStartConfig,
  resolveDataDir,
  type StartConfig,
} from './options.ts'
import { type Output, UsageError } from './output.ts'

export const cliEntry = new URL('./sdnet.ts', import.meta.url).pathname

/** Global flags a spawned daemon needs to find the same instance. */
export function instanceArgs(dataDir: string, opts: GlobalOptions): string[] {
  return ['--data-dir', dataDir, ...(opts.verbose === true ? ['--verbose'] : [])]
}

/** How to start a background daemon for this instance; the password travels in its environment, not argv. */
function daemonSpawnOptions(dataDir: string, opts: GlobalOptions) {
  const pw = password(opts)
  return {
    entry: cliEntry,
    args: instanceArgs(dataDir, opts),
    dataDir,
    ...(pw !== undefined && { env: { ...process.env, SDNET_PASSWORD: pw } }),
  }
}

export async function connect(opts: GlobalOptions): Promise<DaemonClient> {
  const dataDir = resolveDataDir(opts)
  return ensureDaemon(daemonSpawnOptions(dataDir, opts))
}

export async function initCommand(opts: GlobalOptions, name: string | undefined, out: Output): Promise<void> {
  const dataDir = resolveDataDir(opts)
  const { createIdentity, identitySummary, loadIdentity } = await import('../actors/index.ts')
  const pw = password(opts)
  let created = true
  let identity: Awaited<ReturnType<typeof createIdentity>>
  try {
    identity = await createIdentity(dataDir, {
      name: name ?? hostname(),
      ...(pw && { password: pw }),
    })
  } catch (err) {
    if ((err as Error).name !== 'IdentityExistsError') throw err
    identity = await loadIdentity(dataDir, pw ? { password: pw } : {})
    created = false
  }
  const summary = identitySummary(identity)
  out.event(
    { event: 'identity', created, ...summary },
    `${created ? 'Created' : 'Already initialised:'} ${summary.name}\n  device id    ${summary.deviceId}\n  fingerprint  ${summary.fingerprint}\n  peer id      ${summary.peerId}\n  data dir     ${dataDir}`,
  )
}

export interface StartFlags {
  foreground?: boolean
  detached?: boolean
  listen?: string[]
  mdns?: boolean
  mdnsInterface?: string
  dht?: boolean
  inspect?: boolean | string
  dropDir?: string
  /** The devices given with --accept-drops-from; false for --no-accept-drops-from. */
  acceptDropsFrom?: string[] | false
}

export async function startCommand(opts: GlobalOptions, flags: StartFlags, out: Output): Promise<void> {
  const dataDir = resolveDataDir(opts)
  const saved = readStartConfig(dataDir)
  const config: StartConfig = {
    ...saved,
    ...(flags.listen !== undefined && { listen: flags.listen }),
    ...(flags.mdns === false && { mdns: false }),
    ...(flags.mdnsInterface !== undefined && { mdnsInterface: flags.mdnsInterface, mdns: true }),
    ...(flags.dht === false && { dht: false }),
    ...(flags.inspect !== undefined && { inspect: inspectMode(flags.inspect) }),
    // Resolved here: the daemon runs in another working directory.
    ...(flags.dropDir !== undefined && { dropDir: resolve(flags.dropDir) }),
    ...(flags.acceptDropsFrom !== undefined && { acceptDropsFrom: flags.acceptDropsFrom || [] }),
  }
  if (flags.foreground === true) return runForeground(opts, dataDir, config, flags.detached === true)

  const running = await DaemonClient.connectIfRunning(dataDir)
  if (running !== undefined) {
    const status = await running.call<DaemonStatus>('status')
    running.close()
    out.event({ event: 'started', already: true, ...pick(status) }, `Already running (pid ${status.pid}).`)
    return
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  await writeFileAtomic(configPath(dataDir), `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 })
  await spawnDaemon(daemonSpawnOptions(dataDir, opts))
  const client = await DaemonClient.connect(dataDir)
  const status = await client.call<DaemonStatus>('status')
  client.close()
  out.event(
    { event: 'started', ...pick(status) },
    `Daemon started (pid ${status.pid}) as ${status.name} [${status.fingerprint}]\n  listening on ${status.addresses.join(', ')}`,
  )
  if (config.inspect) out.info('Recording actor transitions: follow them with `sdnet trace`')
  if (config.inspect === 'stately') {
    out.info(
      `Stately viewer: http://127.0.0.1:${STATELY_PORT}/ (loads stately.ai), or ws://127.0.0.1:${STATELY_PORT}`,
    )
  }
}

/** `--inspect` -> 'file', `--inspect=stately` -> 'stately', `--no-inspect` -> false. */
function inspectMode(flag: boolean | string): StartConfig['inspect'] {
  if (flag === true) return 'file'
  if (flag === false || flag === 'stately' || flag === 'file') return flag
  throw new UsageError(`--inspect takes no value or "stately", not "${flag}"`)
}

/** The port of the Stately relay: the one @statelyai/inspect's clients use by default. */
const STATELY_PORT = 8080

function pick(status: DaemonStatus) {
  return { pid: status.pid, peerId: status.peerId, addresses: status.addresses }
}

async function runForeground(opts: GlobalOptions, dataDir: string, config: StartConfig, detached: boolean) {
  // libp2p's `debug` reads DEBUG when it loads, so set it before the import.
  if (opts.verbose === true && process.env.DEBUG === undefined) process.env.DEBUG = 'libp2p:*,-*:trace'
  // The daemon is the only command that needs libp2p; clients stay light (see actors/client.ts).
  const { createInspector, createLogger, inspectPath, startDaemon } = await import('../actors/index.ts')
  const logger = createLogger({ dataDir, pretty: !detached, level: opts.verbose === true ? 'debug' : 'info' })
  const pw = password(opts)
  const inspector = config.inspect
    ? await createInspector({
        file: inspectPath(dataDir),
        ...(config.inspect === 'stately' && { stately: { port: STATELY_PORT } }),
      })
    : undefined
  if (inspector?.stately !== undefined) {
    const { viewerUrl, url } = inspector.stately
    logger.info(`inspector: open ${viewerUrl} (Stately's viewer, from stately.ai) or connect to ${url}`)
  }
  try {
    const daemon = await startDaemon({
      ...(inspector !== undefined && { inspect: inspector }),
      dataDir,
      logger,
      ...(pw !== undefined && { password: pw }),
      ...(config.listen !== undefined && { listen: config.listen }),
      mdns:
        config.mdns === false
          ? false
          : config.mdnsInterface !== undefined
            ? { interface: config.mdnsInterface }
            : {},
      dht: config.dht !== false,
      drop: {
        ...(config.dropDir !== undefined && { dir: config.dropDir }),
        acceptFrom: config.acceptDropsFrom ?? [],
      },
    })
    const stop = () => void daemon.close()
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop)
    process.send?.({ ready: true })
    if (detached && process.connected) process.disconnect()
    await daemon.closed
    await inspector?.close()
    logger.flush()
  } catch (err) {
    logger.error({ err }, 'daemon failed')
    process.send?.({ error: { name: (err as Error).name, message: (err as Error).message } })
    throw err
  }
}

export async function stopCommand(opts: GlobalOptions, out: Output): Promise<void> {
  const client = await DaemonClient.connectIfRunning(resolveDataDir(opts))
  if (client === undefined) {
    out.event({ event: 'stopped', running: false }, 'No daemon was running.')
    return
  }
  const closed = new Promise<void>((resolve) => client.onClose(resolve))
  await client.call('stop')
  await closed
  out.event({ event: 'stopped' }, 'Daemon stopped.')
}

export async function statusCommand(opts: GlobalOptions, out: Output): Promise<void> {
  const dataDir = resolveDataDir(opts)
  const client = await DaemonClient.connectIfRunning(dataDir)
  if (client === undefined) {
    out.result({ running: false, dataDir }, `Not running (data dir ${dataDir}).`)
    return
  }
  const status = await client.call<DaemonStatus>('status')
  client.close()
  const sessions = status.sessions.map((s) => `\n  session ${s.sessionId} (${s.role}) ${s.state}`).join('')
  out.result(
    status,
    `Running (pid ${status.pid}) as ${status.name} [${status.fingerprint}]\n  peer id ${status.peerId}\n  listening on ${status.addresses.join(', ')}${sessions}`,
  )
}
