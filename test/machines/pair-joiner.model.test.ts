// Model-based tests: xstate/graph walks the joiner's definition (pure transitions, no clock) and the paths it finds
// are replayed on a real actor running on a SimulatedClock, which must end up exactly where the model says.
// Two models: one candidate (small enough for every simple path) and several candidates (queueing, the
// maxCandidates cap, moving on to the next one), walked by shortest paths and one path per transition.
// The last test proves that the replayed paths entered every state and took every transition.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { transition } from 'xstate'
import { joinerScenarios } from '../../machines/index.ts'
import {
  type JoinerEffect,
  type JoinerEvent,
  type JoinerInput,
  joinerMachine,
} from '../../machines/pair-joiner.machine.ts'
import {
  afterAllTimers,
  assertSameSnapshot,
  CoverageRecorder,
  createMachineModel,
  fireTimer,
  formatTransition,
  isTimerEvent,
  type MachineModel,
  type ModelDriver,
  nextTimer,
  pathReplayTests,
  reachableStates,
} from '../helpers/machine-coverage.ts'
import { startRecorded } from './harness.ts'

// The catalog's scenarios (machines/index.ts); every simple path only in the small one.
type Scenario = (typeof joinerScenarios)[number] & { simplePaths: boolean }
const scenarios: Scenario[] = joinerScenarios.map((scenario) => ({
  ...scenario,
  simplePaths: scenario.name === 'one candidate',
}))

function modelFor(scenario: Scenario): MachineModel {
  return createMachineModel(joinerMachine, {
    input: scenario.input,
    // Only the timer that fires first can happen next, so it is the only one offered.
    events: (snapshot) => {
      const timer = nextTimer(snapshot)
      return timer === undefined ? scenario.events : [...scenario.events, timer.event]
    },
    serializeState: (snapshot) => JSON.stringify({ value: snapshot.value, context: snapshot.context }),
  })
}

const coverage = new CoverageRecorder(joinerMachine)

function driver(input: JoinerInput): ModelDriver {
  const run = startRecorded(joinerMachine, input, coverage.inspect)
  return {
    execute: (event) =>
      isTimerEvent(event) ? fireTimer(run.actor, run.clock, event) : run.actor.send(event as JoinerEvent),
    check: (expected) => {
      const actual = run.actor.getSnapshot()
      assertSameSnapshot(actual, expected)
      const { current, attempt, seen } = actual.context
      const effects: JoinerEffect[] = run.drain()
      for (const effect of effects) {
        assert.equal(effect.sessionId, input.sessionId)
        assert.ok(seen.includes(effect.peerId), `${effect.type} to ${effect.peerId}, never a candidate`)
      }
      // Whatever the path: entering Connecting dials the current candidate; ChallengeReceived answers it.
      const last = effects.at(-1)
      if (actual.value === 'Connecting' && last !== undefined) {
        assert.deepEqual(last, {
          type: 'dialCandidate',
          sessionId: input.sessionId,
          peerId: current,
          attempt,
        })
      }
      if (actual.value === 'ChallengeReceived' && last !== undefined) {
        assert.deepEqual(effects, [{ type: 'sendResponse', sessionId: input.sessionId, peerId: current }])
      }
      // final states name their outcome
      if (actual.status === 'done') assert.equal(actual.output?.outcome, String(actual.value).toLowerCase())
    },
  }
}

pathReplayTests(
  scenarios.map((scenario) => ({
    model: modelFor(scenario),
    // Simple paths only where the model is small enough to walk them all.
    walks: scenario.simplePaths ? ['shortest', 'simple', 'transition'] : ['shortest', 'transition'],
    driver: () => driver(scenario.input),
  })),
)

test('every wait ends: from any state, time alone or cmd.cancel reaches a final state', () => {
  for (const scenario of scenarios) {
    for (const state of reachableStates(modelFor(scenario))) {
      if (state.status === 'done') continue
      assert.equal(afterAllTimers(state).status, 'done', `time does not end ${JSON.stringify(state.value)}`)
      assert.equal(transition(joinerMachine, state, { type: 'cmd.cancel' })[0].value, 'Cancelled')
    }
  }
})

test('late events are no-ops: a final state ignores every event', () => {
  for (const scenario of scenarios) {
    for (const state of reachableStates(modelFor(scenario))) {
      if (state.status !== 'done') continue
      for (const event of scenario.events) {
        assert.equal(transition(joinerMachine, state, event)[0], state, event.type)
      }
    }
  }
})

test('the paths above entered every state and took every transition', (t) => {
  const report = coverage.report()
  t.diagnostic(`states ${report.states.reached}/${report.states.total}`)
  t.diagnostic(`transitions ${report.transitions.reached}/${report.transitions.total}`)
  assert.deepEqual(report.states.missing, [])
  assert.deepEqual(report.transitions.missing.map(formatTransition), [])
})
