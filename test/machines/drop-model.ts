// The model-based tests of a drop machine, one side or the other (drop-sender.model.test.ts,
// drop-receiver.model.test.ts): xstate/graph walks the machine's definition from the catalog's scenarios (a new
// transfer, one resumed after a restart) and every path it finds is replayed on a real actor on a SimulatedClock,
// which must end up exactly where the model says and emit effects that keep the rules both sides share.
// The last test proves that the replayed paths entered every state and took every transition.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  type AnyMachineSnapshot,
  type AnyStateMachine,
  type EventObject,
  initialTransition,
  transition,
} from 'xstate'
import type { DropInput, DropOutput } from '../../machines/drop.ts'
import {
  afterAllTimers,
  assertSameSnapshot,
  CoverageRecorder,
  createMachineModel,
  fireTimer,
  formatTransition,
  isTimerEvent,
  type ModelDriver,
  nextTimer,
  pathReplayTests,
  reachableStates,
} from '../helpers/machine-coverage.ts'
import { startRecorded } from './harness.ts'

export type DropEffectRecord = { type: string; transferId: string; deviceId: string } & Record<
  string,
  unknown
>

/** What one step did: where it came from, on which event, where it ended, what it emitted on the way. */
export type DropStep = {
  before: AnyMachineSnapshot
  event: EventObject
  after: AnyMachineSnapshot
  effects: DropEffectRecord[]
}

export type DropModelOptions = {
  machine: AnyStateMachine
  scenarios: ReadonlyArray<{ name: string; input: DropInput; events: readonly EventObject[] }>
  /** Where a new transfer starts (a resumed one starts in WaitingForPeer). */
  offer: string
  /** The rules of one side, checked after every step of every path. */
  check: (step: DropStep) => void
}

/** The phase a snapshot is in: its top-level state (`Sending` for Sending.Streaming). */
export const phaseOf = (snapshot: AnyMachineSnapshot): string =>
  typeof snapshot.value === 'string' ? snapshot.value : Object.keys(snapshot.value)[0]!

/** The rules both sides keep, whatever the path. */
function checkShared({ before, after, effects }: DropStep, input: DropInput): void {
  for (const effect of effects) {
    assert.deepEqual([effect.transferId, effect.deviceId], [input.transferId, input.deviceId], effect.type)
  }
  // A new phase is persisted before anything else happens in it; staying in a phase persists nothing.
  const persisted = effects.filter((effect) => effect.type === 'persist')
  if (after.status === 'active' && phaseOf(after) !== phaseOf(before)) {
    assert.deepEqual(persisted, [effects[0]])
    assert.equal(persisted[0]?.phase, phaseOf(after))
  } else assert.deepEqual(persisted, [])
  // The peer hears why this side failed, unless the link is what failed; it is never told what it said itself.
  const told = effects.filter((effect) => effect.type === 'sendFailure')
  if (after.status === 'done' && before.status === 'active') {
    const output = after.output as DropOutput
    assert.equal(output.outcome, phaseOf(after).toLowerCase())
    const tells = output.outcome === 'failed' && output.by === 'local' && output.reason !== 'PeerLost'
    const { outcome: _, by: __, ...failure } = output as Extract<DropOutput, { outcome: 'failed' }>
    const said = { type: 'sendFailure', transferId: input.transferId, deviceId: input.deviceId, ...failure }
    assert.deepEqual(told, tells ? [said] : [])
  } else assert.deepEqual(told, [])
}

export function dropModelTests({ machine, scenarios, offer, check }: DropModelOptions): void {
  const modelFor = (scenario: DropModelOptions['scenarios'][number]) =>
    createMachineModel(machine, {
      input: scenario.input,
      // Only the timer that fires first can happen next, so it is the only one offered.
      events: (snapshot) => {
        const timer = nextTimer(snapshot)
        return timer === undefined ? scenario.events : [...scenario.events, timer.event]
      },
      serializeState: (snapshot) => JSON.stringify({ value: snapshot.value, context: snapshot.context }),
    })
  const models = scenarios.map((scenario) => ({ scenario, model: modelFor(scenario) }))
  const coverage = new CoverageRecorder(machine)

  function driver(input: DropInput): ModelDriver {
    const run = startRecorded(machine, input, coverage.inspect)
    let before: AnyMachineSnapshot | undefined
    let last: EventObject = { type: 'xstate.init' }
    return {
      execute: (event) => {
        last = event
        return isTimerEvent(event) ? fireTimer(run.actor, run.clock, event) : run.actor.send(event)
      },
      check: (expected) => {
        const after: AnyMachineSnapshot = run.actor.getSnapshot()
        assertSameSnapshot(after, expected)
        const effects = run.drain() as DropEffectRecord[]
        // Nothing is emitted as the machine starts: the actor wrote the first record before spawning it.
        if (before === undefined) assert.deepEqual(effects, [])
        else {
          const step = { before, event: last, after, effects }
          checkShared(step, input)
          check(step)
        }
        before = after
      },
    }
  }

  pathReplayTests(
    models.map(({ scenario, model }) => ({
      model,
      walks: ['shortest', 'simple', 'transition'],
      driver: () => driver(scenario.input),
    })),
  )

  test('a new transfer starts in the offer, one re-spawned after a restart in WaitingForPeer', () => {
    assert.deepEqual(
      scenarios.map(({ input }) => [input.resumed, initialTransition(machine, input)[0].value]),
      [
        [false, offer],
        [true, 'WaitingForPeer'],
      ],
    )
  })

  test('every wait ends: from any state, time alone or cmd.cancel reaches a final state', () => {
    for (const { model } of models) {
      for (const state of reachableStates(model)) {
        if (state.status === 'done') continue
        assert.equal(afterAllTimers(state).status, 'done', `time does not end ${JSON.stringify(state.value)}`)
        const [cancelled] = transition(machine, state, { type: 'cmd.cancel' })
        assert.deepEqual(cancelled.output, { outcome: 'cancelled', by: 'local' })
      }
    }
  })

  test('late events are no-ops: a final state ignores every event', () => {
    const reached = new Set<unknown>()
    for (const { scenario, model } of models) {
      const finals = reachableStates(model).filter((state) => state.status === 'done')
      for (const state of finals) {
        reached.add(state.value)
        for (const event of scenario.events) {
          assert.equal(transition(machine, state, event)[0], state, event.type)
        }
      }
    }
    assert.deepEqual(reached, new Set(['Completed', 'Rejected', 'Cancelled', 'Failed']))
  })

  test('the paths above entered every state and took every transition', (t) => {
    const report = coverage.report()
    t.diagnostic(`states ${report.states.reached}/${report.states.total}`)
    t.diagnostic(`transitions ${report.transitions.reached}/${report.transitions.total}`)
    assert.deepEqual(report.states.missing, [])
    assert.deepEqual(report.transitions.missing.map(formatTransition), [])
  })
}
