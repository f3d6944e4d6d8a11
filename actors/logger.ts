// Structured logging: pino JSON to a file in the data dir, quiet by default. Machines never log; the
// inspection hook in `trace.ts` turns their transitions into trace lines.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { type Logger, pino } from 'pino'

export type { Logger }

export interface LoggerOptions {
  /** Write JSON lines to `<dataDir>/sdnet.log`. */
  dataDir?: string
  /** Also write readable lines to the terminal (foreground daemon). */
  pretty?: boolean
  level?: pino.Level | 'silent'
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? 'info'
  const targets: pino.TransportTargetOptions[] = []
  if (opts.dataDir !== undefined) {
    mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 })
    targets.push({
      target: 'pino/file',
      level,
      options: { destination: join(opts.dataDir, 'sdnet.log'), mode: 0o600 },
    })
  }
  if (opts.pretty === true) {
    targets.push({
      target: 'pino-pretty',
      level,
      options: { destination: 2, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' },
    })
  }
  if (targets.length === 0) return pino({ level: 'silent' })
  return pino(
    { level, redact: ['code', 'words', 'password', 'proofKey', 'seed'] },
    pino.transport({ targets }),
  )
}

/** A logger that drops everything: the library default, so embedding apps see nothing unless they ask. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}
