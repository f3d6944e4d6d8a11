// Output for people and for scripts: with `--json` every message is one NDJSON object on stdout; without it,
// short readable lines. Failures end the process with a non-zero exit code and a one-line reason.

export class UsageError extends Error {
  override readonly name = 'UsageError'
}

export class CommandFailed extends Error {
  override readonly name = 'CommandFailed'
}

export interface Output {
  readonly json: boolean
  /** An NDJSON event (json) or the given human line. */
  event(event: Record<string, unknown>, human?: string): void
  /** A final JSON document (json) or the given human text. */
  result(value: unknown, human: string): void
  info(line: string): void
}

export function createOutput(json: boolean): Output {
  return {
    json,
    event(event, human) {
      if (json) process.stdout.write(`${JSON.stringify(event)}\n`)
      else if (human !== undefined) process.stdout.write(`${human}\n`)
    },
    result(value, human) {
      process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${human}\n`)
    },
    info(line) {
      if (!json) process.stderr.write(`${line}\n`)
    },
  }
}

/** Reports an error the way the mode asks and returns the exit code: 2 for usage, 1 for everything else. */
export function reportError(err: unknown, json: boolean): number {
  const remote = (err as { remoteName?: unknown }).remoteName
  const name = typeof remote === 'string' ? remote : err instanceof Error ? err.name : 'Error'
  const message = err instanceof Error ? err.message : String(err)
  if (json) process.stdout.write(`${JSON.stringify({ event: 'error', name, message })}\n`)
  process.stderr.write(`sdnet: ${message}\n`)
  return err instanceof UsageError ? 2 : 1
}
