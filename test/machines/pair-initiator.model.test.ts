// Model-based tests: xstate/graph walks the initiator's definition (pure transitions, no clock) and every path it
// finds is replayed on a real actor running on a SimulatedClock, which must end up exactly where the model says.
// The last test proves that the replayed paths entered every state and took every transition.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { transition } from 'xstate'
import { initiatorScenarios } from '../../machines/index.ts'
import {
  type InitiatorEffect,
  type InitiatorEvent,
  type InitiatorInput,
  initiatorMachine,
} from '../../machines/pair-initiator.machine.ts'
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

// The catalog's scenarios (machines/index.ts): J asks first; M is any other peer, whose events must be no-ops once
// the session is bound. Both offer the same events.
const inputs: InitiatorInput[] = initiatorScenarios.map((scenario) => scenario.input)
const events: InitiatorEvent[] = initiatorScenarios[0]?.events ?? []

function modelFor(input: InitiatorInput) {
  return createMachineModel(initiatorMachine, {
    input,
    // Only the timer that fires first can happen next, so it is the only one offered.
    events: (snapshot) => {
      const timer = nextTimer(snapshot)
      return timer === undefined ? events : [...events, timer.event]
    },
    serializeState: (snapshot) => JSON.stringify({ value: snapshot.value, context: snapshot.context }),
  })
}

const coverage = new CoverageRecorder(initiatorMachine)

function driver(input: InitiatorInput): ModelDriver {
  const run = startRecorded(initiatorMachine, input, coverage.inspect)
  return {
    execute: (event) =>
      isTimerEvent(event) ? fireTimer(run.actor, run.clock, event) : run.actor.send(event as InitiatorEvent),
    check: (expected) => {
      const actual = run.actor.getSnapshot()
      assertSameSnapshot(actual, expected)
      // Whatever the path, effects only ever go to the peer the session is bound to.
      for (const effect of run.drain() satisfies InitiatorEffect[]) {
        assert.equal(effect.sessionId, input.sessionId)
        assert.equal(effect.peerId, actual.context.peerId)
      }
      // final states name their outcome
      if (actual.status === 'done') assert.equal(actual.output?.outcome, String(actual.value).toLowerCase())
    },
  }
}

pathReplayTests(
  inputs.map((input) => ({
    model: modelFor(input),
    walks: ['shortest', 'simple', 'transition'],
    driver: () => driver(input),
  })),
)

test('every wait ends: from any state, time alone or cmd.cancel reaches a final state', () => {
  for (const input of inputs) {
    for (const state of reachableStates(modelFor(input))) {
      if (state.status === 'done') continue
      assert.equal(afterAllTimers(state).status, 'done', `time does not end ${JSON.stringify(state.value)}`)
      const [cancelled] = transition(initiatorMachine, state, { type: 'cmd.cancel' })
      assert.equal(cancelled.value, 'Cancelled')
    }
  }
})

test('late events are no-ops: a final state ignores every event', () => {
  for (const input of inputs) {
    for (const state of reachableStates(modelFor(input))) {
      if (state.status !== 'done') continue
      for (const event of events)
        assert.equal(transition(initiatorMachine, state, event)[0], state, event.type)
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
