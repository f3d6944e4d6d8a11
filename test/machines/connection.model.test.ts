// Model-based tests: xstate/graph walks the connection's definition (pure transitions, no clock, a `keys` child
// that never starts) and every path it finds is replayed on a real actor with the real key schedule as its child,
// on a SimulatedClock. What the child tells the connection is a model event (`handshake.done`,
// `xstate.done.actor.keys`, `xstate.error.actor.keys`); the driver makes the real child say it: it delivers the
// verified frame, the bad signature, or lets the child's own timers run out.
// The last test proves that the replayed paths entered every state and took every transition.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type AnyActorRef, type AnyEventObject, type AnyMachineSnapshot, transition } from 'xstate'
import {
  type ConnectionEvent,
  type ConnectionInput,
  connectionMachine,
} from '../../machines/connection.machine.ts'
import type { SessionKeyEffect, SessionKeyOutput } from '../../machines/session-key.machine.ts'
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

// backoffCap is 8 base delays: attempts 0..3 are distinct, then the counter stays (machines/backoff.ts).
const input: ConnectionInput = {
  deviceId: 'laptop',
  peerId: 'PL',
  rekeyAfterFrames: 100,
  timeouts: {
    dial: 5_000,
    handshake: 10_000,
    backoffBase: 1_000,
    backoffCap: 8_000,
    rekey: 5_000,
    rekeyInterval: 60_000,
  },
  jitterSeed: 7,
}

const outside: ConnectionEvent[] = [
  { type: 'peer.discovered', peerId: 'PL' },
  { type: 'cmd.connect' },
  { type: 'cmd.revoke' },
  { type: 'link.up' },
  { type: 'link.inbound' },
  { type: 'link.dialFailed', message: 'ECONNREFUSED' },
  { type: 'link.lost' },
  { type: 'peer.revoked' },
  // forwarded to `keys`; whatever the schedule does with them, the connection stays where it is
  { type: 'keys.framesSent', count: 100 },
  { type: 'peer.rekeyVerified' },
  { type: 'peer.rekeyAckVerified' },
]

const keysFailed = (reason: 'Timeout' | 'BadSignature'): AnyEventObject => ({
  type: 'xstate.done.actor.keys',
  actorId: 'keys',
  output: { outcome: 'failed', reason } satisfies SessionKeyOutput,
})
const keysErred: AnyEventObject = {
  type: 'xstate.error.actor.keys',
  error: new Error('the key schedule threw'),
}

/** What the key schedule can tell the connection while a link is up. */
function fromKeys(snapshot: AnyMachineSnapshot): AnyEventObject[] {
  if (!('keys' in snapshot.children)) return []
  const handshake = snapshot.matches({ Linked: 'Handshaking' }) ? [{ type: 'handshake.done' }] : []
  return [...handshake, keysFailed('Timeout'), keysFailed('BadSignature'), keysErred]
}

function modelFor(input: ConnectionInput): MachineModel {
  return createMachineModel(connectionMachine, {
    input,
    events: (snapshot) => {
      const timer = nextTimer(snapshot)
      return [...outside, ...fromKeys(snapshot), ...(timer === undefined ? [] : [timer.event])]
    },
    serializeState: (snapshot) => JSON.stringify({ value: snapshot.value, context: snapshot.context }),
  })
}

const model = modelFor(input)
// With the cap at the base delay the attempt never grows: few enough vertices for every simple path.
const flat: ConnectionInput = {
  ...input,
  timeouts: { ...input.timeouts, backoffCap: input.timeouts.backoffBase },
}
const flatModel = modelFor(flat)

const coverage = new CoverageRecorder(connectionMachine)

function driver(input: ConnectionInput): ModelDriver {
  const run = startRecorded<typeof connectionMachine, SessionKeyEffect>(
    connectionMachine,
    input,
    coverage.inspect,
  )
  // Follows every key schedule the way actors/ must: on the effect that comes before the child starts.
  run.actor.on('*', (effect) => {
    if (effect.type === 'openHandshake' || effect.type === 'acceptHandshake') {
      run.follow(run.actor.getSnapshot().children.keys as AnyActorRef)
    }
  })
  const keys = () => run.actor.getSnapshot().children.keys as AnyActorRef
  /** Lets the key schedule's own timers run until it ends. */
  const runOutKeys = () => {
    const child = keys()
    while (child.getSnapshot().status === 'active') {
      const timer = nextTimer(child.getSnapshot())
      assert.ok(timer !== undefined, `the key schedule waits forever in ${child.getSnapshot().value}`)
      run.clock.increment(timer.ms)
    }
  }
  return {
    execute: (event) => {
      const role = run.actor.getSnapshot().context.role
      if (event.type === 'handshake.done') {
        run.actor.send(role === 'opener' ? { type: 'peer.welcomeVerified' } : { type: 'peer.helloVerified' })
      } else if (event.type === 'xstate.done.actor.keys') {
        const output = (event as AnyEventObject).output as SessionKeyOutput
        const badSignature = output.outcome === 'failed' && output.reason === 'BadSignature'
        if (badSignature) run.actor.send({ type: 'peer.badSignature' })
        else runOutKeys()
      } else if (event.type === 'xstate.error.actor.keys') {
        // A machine errs only when an effect provided by actors/ throws; the connection receives just this.
        run.actor.send(event as unknown as ConnectionEvent)
      } else if (isTimerEvent(event)) fireTimer(run.actor, run.clock, event)
      else run.actor.send(event as ConnectionEvent)
    },
    check: (expected) => {
      const actual = run.actor.getSnapshot()
      assertSameSnapshot(actual, expected)
      const effects = run.drain()
      for (const effect of effects) {
        if ('deviceId' in effect) assert.deepEqual([effect.deviceId, effect.peerId], ['laptop', 'PL'])
      }
      // Whatever the path: entering Dialing dials, and Connected is announced only with keys installed.
      const types = effects.map((effect) => effect.type)
      if (actual.value === 'Dialing' && effects.length > 0) assert.equal(types.at(-1), 'dial')
      const announced = types.indexOf('announceConnected')
      if (announced >= 0) {
        assert.deepEqual(actual.value, { Linked: 'Connected' })
        assert.deepEqual(effects[announced - 1], { type: 'installKeys', epoch: 0 })
      }
      if (types.includes('sendRevoke')) assert.deepEqual(types, ['sendRevoke', 'closeLink'])
      // A link is up exactly while Linked, and then the key schedule runs as `keys`.
      assert.equal('keys' in actual.children, actual.matches('Linked'))
      assert.equal(actual.context.role !== undefined, actual.matches('Linked'))
    },
  }
}

pathReplayTests([
  { model, walks: ['shortest', 'transition'], driver: () => driver(input) },
  { model: flatModel, walks: ['simple'], driver: () => driver(flat) },
])

test('every wait ends: Dialing and Reconnecting on their timers, a link through its key schedule', () => {
  for (const state of reachableStates(model)) {
    if (state.status === 'done' || state.value === 'Disconnected') continue
    if (state.matches('Linked')) {
      // A handshake ends on the schedule's own timer (a Connected link on its re-key timer: connection.test.ts),
      // and a schedule that failed moves the connection on.
      if (state.matches({ Linked: 'Handshaking' })) {
        const keys = (state.children.keys as AnyActorRef).getSnapshot()
        assert.deepEqual(afterAllTimers(keys).output, { outcome: 'failed', reason: 'Timeout' })
      }
      const [next] = transition(state.machine, state, keysFailed('Timeout'))
      assert.equal(next.value, 'Reconnecting')
      continue
    }
    const timer = nextTimer(state)
    assert.ok(timer !== undefined, `${JSON.stringify(state.value)} has no timer`)
    assert.notDeepEqual(transition(state.machine, state, timer.event)[0].value, state.value)
  }
})

test('every non-final state can be revoked, and Disconnected is idle: it has no timer', () => {
  for (const state of reachableStates(model)) {
    if (state.status === 'done') continue
    const [revoked] = transition(state.machine, state, { type: 'cmd.revoke' })
    assert.deepEqual(revoked.output, { outcome: 'revoked', by: 'local' })
    if (state.value === 'Disconnected') assert.equal(nextTimer(state), undefined)
  }
})

test('late events are no-ops: Revoked ignores every event', () => {
  const revoked = reachableStates(model).filter((state) => state.status === 'done')
  assert.deepEqual(new Set(revoked.map((state) => state.output.by)), new Set(['local', 'peer']))
  for (const state of revoked) {
    for (const event of outside) assert.equal(transition(state.machine, state, event)[0], state, event.type)
  }
})

test('the paths above entered every state and took every transition', (t) => {
  const report = coverage.report()
  t.diagnostic(`states ${report.states.reached}/${report.states.total}`)
  t.diagnostic(`transitions ${report.transitions.reached}/${report.transitions.total}`)
  assert.deepEqual(report.states.missing, [])
  assert.deepEqual(report.transitions.missing.map(formatTransition), [])
})
