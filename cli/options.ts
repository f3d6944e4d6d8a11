// Where an instance lives and how its daemon is configured. `sdnet start` saves its node options in
// `<dataDir>/config.json` so that a daemon started later by another command (or after a restart) runs the same way.
import { existsSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { UsageError } from './output.ts'

export interface GlobalOptions {
  instance?: string
  dataDir?: string
  json?: boolean
  verbose?: boolean
  password?: string
}

export interface StartConfig {
  listen?: string[]
  mdns?: boolean
  mdnsInterface?: string
  dht?: boolean
  /** Record every actor transition to `<dataDir>/inspect.ndjson`; `stately` also serves them on ws://127.0.0.1:8080. */
  inspect?: false | 'file' | 'stately'
  /** The receive folder (absolute); the node's default (`$XDG_DOWNLOAD_DIR/sdnet`, else `~/Downloads/sdnet`) when unset. */
  dropDir?: string
  /** Devices (ids or names) whose drops are accepted without asking. */
  acceptDropsFrom?: string[]
}

export function resolveDataDir(opts: GlobalOptions): string {
  if (opts.dataDir !== undefined) return resolve(opts.dataDir)
  const instance = opts.instance ?? 'default'
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(instance) || instance.startsWith('.')) {
    throw new UsageError(`--instance "${instance}" may use only letters, digits, ".", "_" and "-"`)
  }
  const base = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share')
  return join(base, 'sdnet', instance)
}

export const configPath = (dataDir: string) => join(dataDir, 'config.json')

export function readStartConfig(dataDir: string): StartConfig {
  const path = configPath(dataDir)
  if (!existsSync(path)) return {}
  try {
    const value = JSON.parse(readFileSync(path, 'utf8')) as StartConfig
    return typeof value === 'object' && value !== null ? value : {}
  } catch {
    throw new UsageError(`${path} is not valid JSON: fix or delete it, then run the command again`)
  }
}

export function password(opts: GlobalOptions): string | undefined {
  return opts.password ?? (process.env.SDNET_PASSWORD || undefined)
}
