// The coverage gate: every registered machine (machines/index.ts) is walked as a model from its `modelConfig`,
// every shortest path and one path per transition is replayed on a real actor (SimulatedClock for `after`,
// invoked actors that never answer, so the model's `xstate.done/error.actor.*` events decide), and the states
// entered and transitions taken must be all of them. Prints a table; fails naming what no path reached.
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import {
  type AnyMachineSnapshot,
  type AnyStateMachine,
  createActor,
  type EventObject,
  fromPromise,
  SimulatedClock,
} from 'xstate'
import { type MachineEntry, machines } from '../../machines/index.ts'
import { discoverMachines } from '../../scripts/diagrams.ts'
import { stateNodes } from '../../scripts/machine-graph.ts'
import {
  CoverageRecorder,
  type CoverageReport,
  createMachineModel,
  fireTimer,
  formatTransition,
  isTimerEvent,
  type ModelDriver,
  nextTimer,
  replayAll,
  transitionPaths,
} from '../helpers/machine-coverage.ts'

/** The machine with every invoked actor replaced by one that never settles: the model sends their results. */
function withSilentInvokes(machine: AnyStateMachine): AnyStateMachine {
  const sources = stateNodes(machine.root)
    .flatMap((node) => node.invoke)
    .map((invoke) => invoke.src)
    .filter((src) => typeof src === 'string')
  const silent = fromPromise(() => new Promise<never>(() => {}))
  return machine.provide({ actors: Object.fromEntries(sources.map((src) => [src, silent])) })
}

function driver(machine: AnyStateMachine, input: unknown, coverage: CoverageRecorder): ModelDriver {
  const clock = new SimulatedClock()
  const actor = createActor(machine, { input, clock, inspect: coverage.inspect }).start()
  return {
    execute: (event) => (isTimerEvent(event) ? fireTimer(actor, clock, event) : actor.send(event)),
    check: (expected) => {
      const actual: AnyMachineSnapshot = actor.getSnapshot()
      assert.deepEqual(
        { value: actual.value, status: actual.status, error: actual.error },
        { value: expected.value, status: expected.status, error: undefined },
      )
    },
  }
}

/**
 * An invoked actor answers (`xstate.done.actor.<id>`, `xstate.error.actor.<id>`) only while it runs; an error
 * nobody handles would put the machine in error status, which no real run can do.
 */
function isAnswerOfLiveActor(event: EventObject, snapshot: AnyMachineSnapshot): boolean {
  const answer = /^xstate\.(?:done|error)\.actor\.(.+)$/.exec(event.type)
  return answer === null || answer[1]! in snapshot.children
}

const defaultSerialize = (snapshot: AnyMachineSnapshot) =>
  JSON.stringify({ value: snapshot.value, context: snapshot.context })

async function measure(entry: MachineEntry): Promise<{ report: CoverageReport; paths: number }> {
  const config = entry.modelConfig
  if (config === undefined) {
    throw new Error(
      `${entry.name} has no modelConfig in machines/index.ts: list its inputs and the events it takes`,
    )
  }
  const machine = config.machine ?? entry.machine
  const runnable = withSilentInvokes(machine)
  const coverage = new CoverageRecorder(entry.machine)
  let paths = 0
  for (const scenario of config.scenarios) {
    const model = createMachineModel(machine, {
      input: scenario.input,
      // Only the timer that fires first can happen next, so it is the only one offered.
      events: (snapshot): readonly EventObject[] => {
        const timer = nextTimer(snapshot)
        const events = scenario.events.filter((event) => isAnswerOfLiveActor(event, snapshot))
        return timer === undefined ? events : [...events, timer.event]
      },
      serializeState: config.serializeState ?? defaultSerialize,
    })
    const walk = [...model.getShortestPaths(), ...transitionPaths(model).values()]
    paths += await replayAll(model, walk, () => driver(runnable, scenario.input, coverage))
  }
  return { report: coverage.report(), paths }
}

const rows: string[][] = [['machine', 'states', 'transitions', 'paths']]

after(() => {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  const table = rows.map((row) => row.map((text, column) => text.padEnd(widths[column]!)).join('  '))
  console.log(`\nmachine coverage\n${table.join('\n')}`)
})

test('every *.machine.ts is registered in machines/index.ts under its file name', async () => {
  const discovered = await discoverMachines()
  const unregistered = discovered.filter(
    (found) => !machines.some((entry) => entry.name === found.name && entry.machine === found.machine),
  )
  assert.deepEqual(
    unregistered.map((found) => `${found.file}: add { name: '${found.name}', machine, modelConfig }`),
    [],
    'machines/index.ts must list every machine',
  )
  const gone = machines.filter((entry) => !discovered.some((found) => found.name === entry.name))
  assert.deepEqual(
    gone.map((entry) => entry.name),
    [],
    'machines/index.ts lists machines that have no file',
  )
})

for (const entry of machines) {
  test(`${entry.name}: model paths enter every state and take every transition`, async () => {
    const { report, paths } = await measure(entry)
    const { states, transitions } = report
    rows.push([
      entry.name,
      `${states.reached}/${states.total}`,
      `${transitions.reached}/${transitions.total}`,
      String(paths),
    ])
    const missing = [
      ...states.missing.map((id) => `state ${id}`),
      ...transitions.missing.map((t) => `transition ${formatTransition(t)}`),
    ]
    assert.deepEqual(
      missing,
      [],
      `${entry.name} is not fully covered: add events or scenarios to its modelConfig in machines/index.ts`,
    )
  })
}
