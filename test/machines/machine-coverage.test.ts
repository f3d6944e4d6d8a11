// The coverage helper on a small machine that has what sdnet's machines do not (nesting, eventless transitions,
// numeric delays, combined guards), so that its listing is right before a coverage gate relies on it.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { and, assign, createActor, not, SimulatedClock, setup } from 'xstate'
import {
  CoverageRecorder,
  formatTransition,
  listStates,
  listTransitions,
  nextTimer,
  pendingTimers,
} from '../helpers/machine-coverage.ts'

const door = setup({
  types: {
    context: {} as { locked: boolean; opens: number },
    events: {} as { type: 'push' } | { type: 'lock' },
  },
  guards: { isLocked: ({ context }) => context.locked, isWorn: ({ context }) => context.opens > 1 },
  delays: { autoClose: 500 },
}).createMachine({
  id: 'door',
  context: { locked: false, opens: 0 },
  initial: 'Closed',
  on: { lock: { actions: assign({ locked: true }) } },
  states: {
    Closed: {
      on: {
        push: [
          { guard: and(['isLocked', not('isWorn')]) },
          { target: 'Open', actions: assign({ opens: ({ context }) => context.opens + 1 }) },
        ],
      },
    },
    Open: {
      initial: 'Swinging',
      states: {
        Swinging: { after: { 100: 'Still' } },
        Still: { always: { guard: 'isWorn', target: '#door.Broken' } },
      },
      after: { autoClose: 'Closed' },
    },
    Broken: { type: 'final' },
  },
})

test('listStates names every state node below the root, nested and final ones included', () => {
  assert.deepEqual(listStates(door), [
    'door.Closed',
    'door.Open',
    'door.Open.Swinging',
    'door.Open.Still',
    'door.Broken',
  ])
})

test('listTransitions lists root, guarded, delayed and eventless transitions with readable guards', () => {
  assert.deepEqual(listTransitions(door).map(formatTransition), [
    'door --lock--> (stays)',
    'door.Closed --push [and(isLocked, not(isWorn))]--> (stays)',
    'door.Closed --push--> door.Open',
    'door.Open --xstate.after.autoClose.door.Open--> door.Closed',
    'door.Open.Swinging --xstate.after.100.door.Open.Swinging--> door.Open.Still',
    'door.Open.Still --(always) [isWorn]--> door.Broken',
  ])
  assert.deepEqual(
    listTransitions(door).map((t) => t.key),
    [
      'door lock #0',
      'door.Closed push #0',
      'door.Closed push #1',
      'door.Open xstate.after.autoClose.door.Open #0',
      'door.Open.Swinging xstate.after.100.door.Open.Swinging #0',
      'door.Open.Still (always) #0',
    ],
  )
})

test('CoverageRecorder sees what a run entered and took, and reports the rest as missing', () => {
  const coverage = new CoverageRecorder(door)
  const clock = new SimulatedClock()
  const actor = createActor(door, { clock, inspect: coverage.inspect }).start()
  actor.send({ type: 'push' })
  assert.deepEqual(
    pendingTimers(actor.getSnapshot()).map((t) => [t.event.type, t.ms]),
    [
      ['xstate.after.100.door.Open.Swinging', 100],
      ['xstate.after.autoClose.door.Open', 500],
    ],
  )
  assert.equal(nextTimer(actor.getSnapshot())?.ms, 100)
  clock.increment(500)
  const report = coverage.report()
  assert.deepEqual(report.states.missing, ['door.Broken'])
  assert.deepEqual(report.transitions.missing.map(formatTransition), [
    'door --lock--> (stays)',
    'door.Closed --push [and(isLocked, not(isWorn))]--> (stays)',
    'door.Open.Still --(always) [isWorn]--> door.Broken',
  ])
  assert.deepEqual([report.states.reached, report.states.total], [4, 5])
  assert.deepEqual([report.transitions.reached, report.transitions.total], [3, 6])
})
