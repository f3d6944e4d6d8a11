// Model-based tests: xstate/graph walks the key schedule's definition (pure transitions, no clock) and every path
// it finds is replayed on a real actor running on a SimulatedClock, which must end up exactly where the model says.
// The schedule runs alone here, so the `.provide()` copy records `handshake.done` instead of telling a parent.
// The last test proves that the replayed paths entered every state and took every transition.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type AnyMachineSnapshot, emit, transition } from 'xstate'
import {
  type SessionKeyEffect,
  type SessionKeyEvent,
  type SessionKeyInput,
  type SessionKeyParentEvent,
  sessionKeyMachine,
} from '../../machines/session-key.machine.ts'
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

const timeouts = { handshake: 10_000, rekey: 5_000, rekeyInterval: 60_000 }
const inputs: SessionKeyInput[] = [
  { role: 'opener', rekeyAfterFrames: 100, timeouts },
  { role: 'acceptor', rekeyAfterFrames: 100, timeouts },
]

const handshakeDone: SessionKeyParentEvent = { type: 'handshake.done' }
const keys = sessionKeyMachine.provide({
  // `handshake.done` is not one of the schedule's effects, hence the cast: the stand-in emits it all the same.
  actions: { reportHandshakeDone: emit(handshakeDone as unknown as SessionKeyEffect) },
})
type Recorded = SessionKeyEffect | SessionKeyParentEvent

const events: SessionKeyEvent[] = [
  { type: 'peer.helloVerified' },
  { type: 'peer.welcomeVerified' },
  { type: 'peer.rekeyVerified' },
  { type: 'peer.rekeyAckVerified' },
  { type: 'peer.badSignature' },
  { type: 'keys.framesSent', count: 99 },
  { type: 'keys.framesSent', count: 100 },
  { type: 'link.closed' },
]
// Every re-key adds an epoch: past epoch 2 the model stops offering what completes one, so its graph is finite.
const completesRekey = new Set(['peer.rekeyVerified', 'peer.rekeyAckVerified'])
const MAX_EPOCH = 2

function modelFor(input: SessionKeyInput): MachineModel {
  return createMachineModel(keys, {
    input,
    // Only the timer that fires first can happen next, so it is the only one offered.
    events: (snapshot) => {
      const offered =
        snapshot.context.epoch < MAX_EPOCH ? events : events.filter((e) => !completesRekey.has(e.type))
      const timer = nextTimer(snapshot)
      return timer === undefined ? offered : [...offered, timer.event]
    },
    serializeState: (snapshot) => JSON.stringify({ value: snapshot.value, context: snapshot.context }),
  })
}

const coverage = new CoverageRecorder(sessionKeyMachine)

function driver(input: SessionKeyInput): ModelDriver {
  const run = startRecorded<typeof keys, Recorded>(keys, input, coverage.inspect)
  let told = 0
  let installed = -1
  return {
    execute: (event) =>
      isTimerEvent(event) ? fireTimer(run.actor, run.clock, event) : run.actor.send(event as SessionKeyEvent),
    check: (expected: AnyMachineSnapshot) => {
      const actual = run.actor.getSnapshot()
      assertSameSnapshot(actual, expected)
      // Whatever the path: epochs are installed one after the other from 0, a re-key proposes the next one,
      // and the parent hears of the handshake exactly once, when epoch 0 is installed.
      for (const effect of run.drain()) {
        if (effect.type === 'installKeys') assert.equal(effect.epoch, ++installed)
        if (effect.type === 'sendRekey' || effect.type === 'sendRekeyAck')
          assert.equal(effect.epoch, installed + 1)
        if (effect.type === 'handshake.done') assert.equal([++told, installed].join(), '1,0')
        if (effect.type === 'sendHello') assert.equal(input.role, 'opener')
        if (effect.type === 'sendWelcome') assert.equal(input.role, 'acceptor')
      }
      if (
        actual.status === 'active' &&
        !['AwaitingHello', 'AwaitingWelcome'].includes(String(actual.value))
      ) {
        assert.equal(installed, actual.context.epoch)
        assert.equal(told, 1)
      }
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

test('every wait ends: the handshake and a re-key in flight fail on their own timers', () => {
  for (const input of inputs) {
    for (const state of reachableStates(modelFor(input))) {
      if (state.status === 'done' || state.value === 'Established') continue
      assert.deepEqual(
        afterAllTimers(state).output,
        { outcome: 'failed', reason: 'Timeout' },
        String(state.value),
      )
    }
  }
})

test('Established waits for the next re-key, which time alone starts', () => {
  for (const input of inputs) {
    for (const state of reachableStates(modelFor(input))) {
      if (state.value !== 'Established') continue
      const timer = nextTimer(state)
      assert.ok(timer !== undefined)
      assert.equal(timer.ms, timeouts.rekeyInterval)
      assert.equal(transition(state.machine, state, timer.event)[0].value, 'Rekeying')
    }
  }
})

test('late events are no-ops: a final state ignores every event', () => {
  for (const input of inputs) {
    for (const state of reachableStates(modelFor(input))) {
      if (state.status !== 'done') continue
      for (const event of events) assert.equal(transition(keys, state, event)[0], state, event.type)
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
