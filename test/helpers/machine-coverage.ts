// What a machine definition contains (every state, every transition) and what a run of it exercised, so that
// model-based tests can prove they reached all of it. Also the bits of time arithmetic those tests need to drive
// `after` transitions with a SimulatedClock. Knows nothing about sdnet's machines.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  type AnyMachineSnapshot,
  type AnyStateMachine,
  type EventObject,
  type InspectionEvent,
  transition,
} from 'xstate'
import { type StatePath, TestModel } from 'xstate/graph'
import {
  describeGuard,
  formatTransition,
  listStates,
  listTransitions,
  type TransitionInfo,
  transitionKey,
} from '../../scripts/machine-graph.ts'

// The definition walk is shared with scripts/diagrams.ts; re-exported so tests keep one import.
export { describeGuard, formatTransition, listStates, listTransitions, type TransitionInfo, transitionKey }

export type CoverageReport = {
  states: { reached: number; total: number; missing: string[] }
  transitions: { reached: number; total: number; missing: TransitionInfo[] }
}

/**
 * Records the states entered and the transitions taken by the root actor of every actor created with
 * `createActor(machine, { inspect: coverage.inspect })`. Spawned or invoked children are ignored.
 */
export class CoverageRecorder {
  readonly states = new Set<string>()
  readonly transitions = new Set<string>()
  readonly #machine: AnyStateMachine

  constructor(machine: AnyStateMachine) {
    this.#machine = machine
  }

  readonly inspect = (event: InspectionEvent): void => {
    if (event.actorRef.sessionId !== event.rootId) return
    if (event.type === '@xstate.snapshot' || event.type === '@xstate.microstep') {
      for (const node of (event.snapshot as AnyMachineSnapshot)._nodes) this.states.add(node.id)
    }
    if (event.type === '@xstate.microstep') {
      for (const transition of event._transitions) {
        this.transitions.add(transitionKey(transition))
        // A transient state (left at once by an eventless transition) is in no snapshot, but it was entered.
        this.states.add(transition.source.id)
      }
    }
  }

  report(): CoverageReport {
    const states = listStates(this.#machine)
    const transitions = listTransitions(this.#machine)
    const missingStates = states.filter((id) => !this.states.has(id))
    const missingTransitions = transitions.filter((t) => !this.transitions.has(t.key))
    return {
      states: { reached: states.length - missingStates.length, total: states.length, missing: missingStates },
      transitions: {
        reached: transitions.length - missingTransitions.length,
        total: transitions.length,
        missing: missingTransitions,
      },
    }
  }
}

export type Timer = { event: EventObject; ms: number }

/** A replayed actor's snapshot is the model's: same state, status, context and output. */
export function assertSameSnapshot(actual: AnyMachineSnapshot, expected: AnyMachineSnapshot): void {
  assert.deepEqual(actual.value, expected.value)
  assert.equal(actual.status, expected.status)
  assert.deepEqual(actual.context, expected.context)
  assert.deepEqual(actual.output, expected.output)
}

/** The `after` timers of the active states, with their delays resolved against the snapshot's context. */
export function pendingTimers(snapshot: AnyMachineSnapshot): Timer[] {
  const delays = snapshot.machine.implementations.delays as Record<string, unknown>
  const timers = new Map<string, Timer>()
  for (const node of snapshot._nodes) {
    for (const transition of node.after) {
      const delay = transition.delay
      const named = typeof delay === 'string' ? delays[delay] : delay
      const ms =
        typeof named === 'function'
          ? named({ context: snapshot.context, event: { type: transition.eventType } })
          : Number(named)
      timers.set(transition.eventType, { event: { type: transition.eventType }, ms })
    }
  }
  return [...timers.values()].sort((a, b) => a.ms - b.ms)
}

/**
 * The timer that fires first and does something: earlier ones whose guards fail are passed over, as the real
 * clock would pass over them. A model offers only this one, since no other can come first.
 */
export function nextTimer(snapshot: AnyMachineSnapshot): Timer | undefined {
  return pendingTimers(snapshot).find(
    (timer) => snapshot.machine.getTransitionData(snapshot, timer.event).length > 0,
  )
}

export function isTimerEvent(event: EventObject): boolean {
  return event.type.startsWith('xstate.after.')
}

/** Advances `clock` to the moment `timer` (an `xstate.after.*` event of the actor's current state) fires. */
export function fireTimer(
  actor: { getSnapshot(): AnyMachineSnapshot },
  clock: { increment(ms: number): void },
  timer: EventObject,
): void {
  const pending = pendingTimers(actor.getSnapshot()).find((t) => t.event.type === timer.type)
  if (pending === undefined) throw new Error(`${timer.type} is not pending in the actor's current state`)
  // Time passes only through timer steps, and each leaves its state, so the state's timers started "now".
  clock.increment(pending.ms)
}

export type MachineModel = TestModel<AnyMachineSnapshot, EventObject, unknown>
export type ModelPath = StatePath<AnyMachineSnapshot, EventObject>

/**
 * A `TestModel` of a machine with `after` and `invoke` (which `createTestModel` refuses). `events` lists what may
 * happen in a state, `xstate.after.*` and `xstate.done.actor.*` events included; `serializeState` decides which
 * snapshots count as the same vertex.
 */
export function createMachineModel(
  machine: AnyStateMachine,
  options: {
    input: unknown
    events: (snapshot: AnyMachineSnapshot) => readonly EventObject[]
    serializeState?: (snapshot: AnyMachineSnapshot) => string
  },
): MachineModel {
  return new TestModel(machine, options)
}

/**
 * For every transition some edge of the model takes, the shortest path that ends by taking it. Edges are
 * attributed with `getTransitionData` (eventless follow-ups are not attributed here; `CoverageRecorder` sees
 * them when the paths run).
 */
export function transitionPaths(model: MachineModel): Map<string, ModelPath> {
  const serialize = model.options.serializeState ?? ((state) => JSON.stringify(state))
  const heads = new Map(
    model
      .getShortestPaths({ allowDuplicatePaths: true })
      .map((path) => [serialize(path.state, undefined), path]),
  )
  const paths = new Map<string, ModelPath>()
  // The adjacency map is built breadth first, so the first edge that takes a transition is on a shortest path.
  for (const [vertex, { state, transitions }] of Object.entries(model.getAdjacencyMap())) {
    const head = heads.get(vertex)
    if (head === undefined) continue
    const edges: Array<{ event: EventObject; state: AnyMachineSnapshot }> = Object.values(transitions)
    for (const { event, state: next } of edges) {
      for (const transition of state.machine.getTransitionData(state, event)) {
        const key = transitionKey(transition)
        if (paths.has(key)) continue
        paths.set(key, {
          state: next,
          steps: [...head.steps, { state: next, event }],
          weight: head.weight + 1,
        })
      }
    }
  }
  return paths
}

export type ModelDriver = {
  /** Makes the system under test take `event`: send it, advance its clock, settle one of its promises. */
  execute(event: EventObject): void | Promise<void>
  /** Asserts that the system under test is where the model says it is. */
  check(state: AnyMachineSnapshot): void | Promise<void>
}

const describeBytes = (value: unknown) => (value instanceof Uint8Array ? `<${value.length} bytes>` : value)

/** Runs one model path against a fresh system under test; a failure names the path step by step. */
export async function runModelPath(model: MachineModel, path: ModelPath, driver: ModelDriver): Promise<void> {
  const executors: Record<string, (step: { event: EventObject }) => void | Promise<void>> = {}
  for (const { event } of path.steps) executors[event.type] = (step) => driver.execute(step.event)
  delete executors['xstate.init']
  try {
    await model.testPath(path, { events: executors, states: { '*': (state) => driver.check(state) } })
  } catch (error) {
    const events = path.steps.map(({ event }) => JSON.stringify(event, (_, value) => describeBytes(value)))
    throw new Error(`the actor left the model on the path\n  ${events.join('\n  ')}`, { cause: error })
  }
}

/** Every distinct snapshot the model can reach (one per vertex of its graph). */
export function reachableStates(model: MachineModel): AnyMachineSnapshot[] {
  return Object.values(model.getAdjacencyMap()).map((vertex) => vertex.state)
}

/** Lets time pass with no other event: fires the next timer until none is left. Returns where that ends. */
export function afterAllTimers(snapshot: AnyMachineSnapshot, maxSteps = 1000): AnyMachineSnapshot {
  let current = snapshot
  for (let step = 0; step < maxSteps; step++) {
    const timer = nextTimer(current)
    if (timer === undefined) return current
    current = transition(current.machine, current, timer.event)[0]
  }
  throw new Error(`still waiting after ${maxSteps} timers`)
}

/** Runs every path, each against a fresh system under test from `driver()`. Returns how many ran. */
export async function replayAll(
  model: MachineModel,
  paths: ModelPath[],
  driver: () => ModelDriver,
): Promise<number> {
  for (const path of paths) await runModelPath(model, path, driver())
  return paths.length
}

/** How paths are drawn from a model: xstate/graph's shortest or simple paths, or one shortest path per transition. */
export type Walk = 'shortest' | 'simple' | 'transition'

/** A model, the walks to replay it by, and a fresh system under test for each path. */
export type ReplayScenario = { model: MachineModel; walks: readonly Walk[]; driver: () => ModelDriver }

const WALKS: Array<[Walk, string, (model: MachineModel) => ModelPath[]]> = [
  ['shortest', 'shortest paths reach every state the model can be in', (model) => model.getShortestPaths()],
  [
    'simple',
    'simple paths, from the start to every state, replay on the actor',
    (model) => model.getSimplePaths(),
  ],
  [
    'transition',
    'for every transition, the shortest path that takes it replays on the actor',
    (model) => [...transitionPaths(model).values()],
  ],
]

/**
 * Registers the three replay tests every model-based test file runs, one per walk: each replays the paths of every
 * scenario that asks for that walk, and fails if there were none.
 */
export function pathReplayTests(scenarios: ReplayScenario[]): void {
  for (const [walk, name, pathsOf] of WALKS) {
    test(name, async (t) => {
      let count = 0
      for (const { model, walks, driver } of scenarios) {
        if (walks.includes(walk)) count += await replayAll(model, pathsOf(model), driver)
      }
      assert.ok(count > 0, `no ${walk} paths to replay`)
      t.diagnostic(`${count} paths`)
    })
  }
}
