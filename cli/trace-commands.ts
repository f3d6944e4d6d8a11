// `sdnet trace` and `sdnet trace replay FILE`: what the actors of a daemon started with `--inspect` did, live or
// after the fact. The trace holds no secrets (actors/inspect.ts strips them), so it can be shared in a bug report.
import {
  followTrace,
  formatTrace,
  inspectPath,
  type ReplayResult,
  readTrace,
  replayTrace,
  type TraceLine,
} from '../actors/client.ts'
import { type GlobalOptions, resolveDataDir } from './options.ts'
import { CommandFailed, type Output } from './output.ts'

const clock = (at: number) => new Date(at).toISOString().slice(11, 23)

/**
 * Follows `<dataDir>/inspect.ndjson` and prints each new line: readable transitions and new actors (events are
 * also in the snapshot lines that follow them), or every line as it is with `--json`. Runs until interrupted
 * (or `signal` aborts).
 */
export async function traceCommand(opts: GlobalOptions, out: Output, signal?: AbortSignal): Promise<void> {
  const file = inspectPath(resolveDataDir(opts))
  out.info(`Following ${file} (the daemon writes it when started with --inspect). Ctrl-C to stop.`)
  for await (const line of followTrace(file, signal === undefined ? {} : { signal })) {
    out.event(line, line.type === 'event' ? undefined : `${clock(line.at)} ${formatTrace(line)}`)
  }
}

function describe(result: ReplayResult): string {
  const name = `${result.actor} (${result.machine})`
  if (result.error !== undefined) return `✘ ${name}: ${result.error}`
  if (result.matches) return `✔ ${name}: ${result.recorded.length} snapshots, same states`
  const at = result.mismatchAt!
  const recorded = JSON.stringify(result.recorded[at])
  const replayed = JSON.stringify(result.states[at])
  return `✘ ${name}: snapshot ${at + 1} of ${result.recorded.length} was ${recorded}, the machine reaches ${replayed}`
}

/**
 * Replays a recorded trace against the current machines and reports, per actor, whether they reach the
 * recorded states. Fails when one does not: the machines changed, or the trace shows a bug.
 */
export async function traceReplayCommand(file: string, out: Output): Promise<void> {
  let trace: { lines: TraceLine[]; skipped: number }
  try {
    trace = await readTrace(file)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    throw new CommandFailed(
      `${file} does not exist: record one with \`sdnet start --inspect\`, then try again`,
    )
  }
  if (trace.skipped > 0) out.info(`${trace.skipped} lines of ${file} are not trace lines and were skipped`)
  const results = await replayTrace(trace.lines)
  for (const result of results) {
    const { actor, machine, matches, mismatchAt, error } = result
    out.event(
      {
        event: 'replay',
        actor,
        machine,
        snapshots: result.recorded.length,
        matches,
        ...(mismatchAt !== undefined && { mismatchAt }),
        ...(error !== undefined && { error }),
      },
      describe(result),
    )
  }
  const failed = results.filter((result) => !result.matches).length
  if (failed > 0) {
    throw new CommandFailed(`${failed} of ${results.length} actors did not replay to their recorded states`)
  }
  const actors = `${results.length} actor${results.length === 1 ? '' : 's'}`
  out.result({ actors: results.length, matches: true }, `${actors} replayed to the states they recorded`)
}
