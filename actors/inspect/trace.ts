// Reading what actors/inspect.ts recorded: one readable line per trace line, following the file while a daemon
// writes it, and replaying it. Replay feeds each actor's recorded events to its machine with pure
// `initialTransition` / `transition` (no effects run) and says whether the machine still reaches the states that
// were recorded: a trace from a user's daemon becomes a reproducible run of the machines.
// Part of the light client API (actors/client.ts): xstate and the machines are loaded only when replaying.
import { existsSync, statSync, watch } from 'node:fs'
import { open, readFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import type { AnyMachineSnapshot, AnyStateMachine, StateValue } from 'xstate'
import type { TraceEvent, TraceLine } from './inspect.ts'

export type { TraceLine } from './inspect.ts'

/** The trace a daemon started with `--inspect` writes in its data dir. */
export const inspectPath = (dataDir: string) => join(dataDir, 'inspect.ndjson')

const LINE_TYPES = new Set(['actor', 'event', 'snapshot'])

/** One NDJSON line as a trace line, or undefined when it is not one (blank, cut short, foreign). */
export function parseTraceLine(text: string): TraceLine | undefined {
  if (text.trim() === '') return undefined
  try {
    const value = JSON.parse(text) as Partial<TraceLine>
    const valid =
      typeof value === 'object' &&
      value !== null &&
      LINE_TYPES.has(value.type as string) &&
      typeof value.actor === 'string' &&
      typeof value.at === 'number'
    return valid ? (value as TraceLine) : undefined
  } catch {
    return undefined
  }
}

/** `Connecting`, or `Linked.Connected` for a nested state, `(Motor.Still, Display.Dark)` for parallel ones. */
export function formatState(value: StateValue): string {
  if (typeof value === 'string') return value
  const parts = Object.entries(value).map(([key, child]) =>
    child === undefined || (typeof child === 'object' && Object.keys(child).length === 0)
      ? key
      : `${key}.${formatState(child)}`,
  )
  return parts.length === 1 ? parts[0]! : `(${parts.join(', ')})`
}

/**
 * A trace line as a person reads it:
 * `pair:3f2a [ChallengeSent] peer.responseVerified -> AwaitingConfirmation` for a snapshot,
 * `pair:3f2a started (initiator) by node` for a new actor, `pair:3f2a <- cmd.accept from node` for an event.
 */
export function formatTrace(line: TraceLine): string {
  switch (line.type) {
    case 'actor':
      return `${line.actor} started${line.machine === undefined ? '' : ` (${line.machine})`}${line.parent === undefined ? '' : ` by ${line.parent}`}`
    case 'event':
      return `${line.actor} <- ${line.event.type}${line.source === undefined ? '' : ` from ${line.source}`}`
    case 'snapshot': {
      const from = line.from === undefined ? '-' : formatState(line.from)
      const to = line.state === undefined ? `(${line.status})` : formatState(line.state)
      return `${line.actor} [${from}] ${line.event.type} -> ${to}${ending(line)}`
    }
  }
}

/** ` (failed: WrongCode)` for a finished machine with an outcome; ` (error)`, ` (stopped)` for the other ends. */
function ending(line: Extract<TraceLine, { type: 'snapshot' }>): string {
  if (line.status === 'error' || line.status === 'stopped') return ` (${line.status})`
  const output = line.output as { outcome?: unknown; reason?: unknown } | undefined
  if (line.status !== 'done' || typeof output?.outcome !== 'string') return ''
  return ` (${output.outcome}${typeof output.reason === 'string' ? `: ${output.reason}` : ''})`
}

/** Every trace line of a file, in order; `skipped` counts lines that are not trace lines (e.g. one cut short). */
export async function readTrace(file: string): Promise<{ lines: TraceLine[]; skipped: number }> {
  const lines: TraceLine[] = []
  let skipped = 0
  for (const text of (await readFile(file, 'utf8')).split('\n')) {
    const line = parseTraceLine(text)
    if (line !== undefined) lines.push(line)
    else if (text.trim() !== '') skipped++
  }
  return { lines, skipped }
}

const sizeOf = (file: string) => (existsSync(file) ? statSync(file).size : 0)

/**
 * The lines appended to `file` after this call (all of it with `fromStart`), as they are written, until
 * `signal` aborts or the caller stops iterating. The file may not exist yet; when it is truncated or replaced,
 * reading starts over from its beginning.
 */
export function followTrace(
  file: string,
  options: { signal?: AbortSignal; fromStart?: boolean } = {},
): AsyncGenerator<TraceLine> {
  const { signal } = options
  // Where to start and the watch are set up now, not at the first `next()`: nothing written after this call
  // is missed.
  let offset = options.fromStart === true ? 0 : sizeOf(file)
  let partial = ''
  let changed = Promise.withResolvers<void>()
  const watcher = watch(dirname(file), (_, name) => {
    if (name === null || name === basename(file)) changed.resolve()
  })
  const aborted = new Promise<void>((resolve) => {
    if (signal?.aborted === true) resolve()
    signal?.addEventListener('abort', () => resolve(), { once: true })
  })

  async function* drain(): AsyncGenerator<TraceLine> {
    const size = sizeOf(file)
    if (size < offset) {
      offset = 0
      partial = ''
    }
    if (size === offset) return
    const handle = await open(file, 'r')
    try {
      const buffer = Buffer.alloc(size - offset)
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset)
      offset += bytesRead
      const texts = (partial + buffer.subarray(0, bytesRead).toString('utf8')).split('\n')
      partial = texts.pop() ?? ''
      for (const text of texts) {
        const line = parseTraceLine(text)
        if (line !== undefined) yield line
      }
    } finally {
      await handle.close()
    }
  }

  return (async function* () {
    try {
      while (signal?.aborted !== true) {
        // A change noticed while reading wakes the next wait, so it is read too.
        changed = Promise.withResolvers<void>()
        yield* drain()
        await Promise.race([changed.promise, aborted])
      }
    } finally {
      watcher.close()
    }
  })()
}

export type ReplayResult = {
  actor: string
  /** The machine id the trace names (`initiator`). */
  machine: string
  /** Replayed: the state after each recorded snapshot's event. */
  states: StateValue[]
  /** Recorded: the state each snapshot line holds. */
  recorded: StateValue[]
  matches: boolean
  /** Index (in `recorded`) of the first snapshot whose state the machine did not reach. */
  mismatchAt?: number
  /** Why the actor could not be replayed (its machine is unknown, its start was not recorded, ...). */
  error?: string
}

type Track = ReplayResult & { logic?: AnyStateMachine; snapshot?: AnyMachineSnapshot }
type Transitions = Pick<typeof import('xstate'), 'initialTransition' | 'transition'>

/**
 * Replays the recorded events of every machine actor in `lines` against its machine, found by id in `registry`
 * (machines/index.ts by default). One result per actor run: an actor id that starts again (a daemon restarted
 * and appended to the same file) is a new run. Actors that run no machine (promises) are left out.
 */
export async function replayTrace(
  lines: Iterable<TraceLine>,
  registry?: readonly { machine: AnyStateMachine }[],
): Promise<ReplayResult[]> {
  const xstate: Transitions = await import('xstate')
  const known = registry ?? (await import('../../machines/index.ts')).machines
  const results: Track[] = []
  const live = new Map<string, Track>()
  for (const line of lines) {
    if (line.type === 'actor') {
      live.delete(line.actor)
      if (line.machine === undefined) continue
      const logic = known.find((entry) => entry.machine.id === line.machine)?.machine
      const track: Track = {
        actor: line.actor,
        machine: line.machine,
        states: [],
        recorded: [],
        matches: false,
      }
      if (logic === undefined) track.error = `no machine with id "${line.machine}" is registered`
      else track.logic = logic
      results.push(track)
      live.set(line.actor, track)
      continue
    }
    const track = live.get(line.actor)
    if (line.type !== 'snapshot' || track?.logic === undefined || track.error !== undefined) continue
    try {
      track.snapshot = step(xstate, track.logic, track.snapshot, line.event)
    } catch (error) {
      track.error = `${line.event.type}: ${error instanceof Error ? error.message : String(error)}`
      continue
    }
    track.states.push(track.snapshot.value)
    track.recorded.push(line.state as StateValue)
  }
  return results.map(({ logic: _logic, snapshot: _snapshot, ...result }) => {
    const index = result.recorded.findIndex((state, i) => !sameState(state, result.states[i]))
    return {
      ...result,
      matches: result.error === undefined && index < 0,
      ...(index >= 0 && { mismatchAt: index }),
    }
  })
}

function step(
  xstate: Transitions,
  logic: AnyStateMachine,
  snapshot: AnyMachineSnapshot | undefined,
  event: TraceEvent,
): AnyMachineSnapshot {
  if (event.type === 'xstate.init') return xstate.initialTransition(logic, event.input)[0]
  if (snapshot === undefined) throw new Error('the actor was not recorded from its start')
  return xstate.transition(logic, snapshot, event)[0]
}

const sameState = (a: StateValue | undefined, b: StateValue | undefined) =>
  JSON.stringify(a) === JSON.stringify(b)
