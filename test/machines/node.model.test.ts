// Model-based tests: xstate/graph walks the node machine's definition (pure transitions, no clock, children
// that never start) and every path it finds is replayed on a real actor: a SimulatedClock for `after`, promises
// settled by hand for `startTransport` / `stopTransport`, and real pairing machines as children.
// The last test proves that the replayed paths entered every state and took every transition.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type AnyEventObject, type AnyMachineSnapshot, fromPromise } from 'xstate'
import type { Device } from '../../machines/devices.ts'
import { type NodeEvent, nodeMachine, type Session, type TransportInfo } from '../../machines/node.machine.ts'
import type { Transfer } from '../../machines/transfers.ts'
import {
  afterAllTimers,
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
import { DROP_INPUT, NODE_INPUT, startRecorded } from './harness.ts'

const input = NODE_INPUT
const transport: TransportInfo = { peerId: '12D3KooWself', addresses: ['/ip4/127.0.0.1/tcp/4001'] }

const sessionCommands: NodeEvent[] = [
  {
    type: 'cmd.pairGenerate',
    sessionId: 's1',
    autoAccept: false,
    timeouts: { codeTtl: 600_000, step: 10_000, confirm: 60_000 },
  },
  {
    type: 'cmd.pairJoin',
    sessionId: 's2',
    timeouts: { discovery: 30_000, settle: 3_000, dial: 5_000, step: 10_000, confirm: 60_000 },
  },
  // s1 again, as a joiner: refused while s1 is taken, spawned once it is free
  {
    type: 'cmd.pairJoin',
    sessionId: 's1',
    timeouts: { discovery: 30_000, settle: 3_000, dial: 5_000, step: 10_000, confirm: 60_000 },
  },
  // cmd.accept leaves either kind of session where it is, so the model's never-started children stay in step
  { type: 'session.forward', sessionId: 's1', event: { type: 'cmd.accept' } },
  { type: 'session.forward', sessionId: 'unknown', event: { type: 'cmd.accept' } },
  { type: 'session.finished', sessionId: 's1' },
  { type: 'session.finished', sessionId: 's2' },
]

const deviceCommands: NodeEvent[] = [
  // d1 again: refused while d1 is held, spawned once it is forgotten
  { type: 'cmd.connectDevice', deviceId: 'd1', peerId: 'P', jitterSeed: 7 },
  // cmd.connect leaves a connection alive whatever its state, so the model's never-started children stay in step
  { type: 'device.forward', deviceId: 'd1', event: { type: 'cmd.connect' } },
  { type: 'device.forward', deviceId: 'unknown', event: { type: 'cmd.connect' } },
  { type: 'cmd.forgetDevice', deviceId: 'd1' },
]

const transferCommands: NodeEvent[] = [
  // t1 on either side: refused while t1 is held, spawned once it is finished; t2 is resumed after a restart
  { type: 'cmd.startDrop', role: 'sender', ...DROP_INPUT },
  { type: 'cmd.startDrop', role: 'receiver', ...DROP_INPUT },
  { type: 'cmd.startDrop', role: 'receiver', ...DROP_INPUT, transferId: 't2', resumed: true },
  // data.progressed leaves a drop of either side where it is, so the model's never-started children stay in step
  { type: 'drop.forward', transferId: 't1', event: { type: 'data.progressed' } },
  { type: 'drop.forward', transferId: 'unknown', event: { type: 'data.progressed' } },
  { type: 'drop.finished', transferId: 't1' },
]

// P is both a peer the joiner s2 may try and the device d1's peer.
const nodeCommands: NodeEvent[] = [
  { type: 'transport.peerDiscovered', peerId: 'P' },
  { type: 'cmd.stop' },
  { type: 'transport.failed', message: 'the listener closed' },
]

/** What the invoked transport effects can do, offered only while they run (anything else would be an error). */
function invokeEvents(snapshot: AnyMachineSnapshot): AnyEventObject[] {
  const events: AnyEventObject[] = []
  if ('startTransport' in snapshot.children) {
    events.push({ type: 'xstate.done.actor.startTransport', output: transport, actorId: 'startTransport' })
    events.push({ type: 'xstate.error.actor.startTransport', error: new Error('listen EADDRINUSE') })
  }
  if ('stopTransport' in snapshot.children) {
    events.push({ type: 'xstate.done.actor.stopTransport', output: undefined, actorId: 'stopTransport' })
    events.push({ type: 'xstate.error.actor.stopTransport', error: new Error('close timed out') })
  }
  return events
}

/** The part of a snapshot that the model and the actor must agree on: children are actors, not data. */
function observable(snapshot: AnyMachineSnapshot) {
  const sessions: Record<string, Session> = snapshot.context.sessions
  const devices: Record<string, Device> = snapshot.context.devices
  const transfers: Record<string, Transfer> = snapshot.context.transfers
  return {
    value: snapshot.value,
    status: snapshot.status,
    output: snapshot.output,
    sessions: Object.entries(sessions).map(([id, session]) => [id, session.role]),
    devices: Object.entries(devices).map(([id, device]) => [id, device.peerId]),
    transfers: Object.entries(transfers).map(([id, transfer]) => [id, transfer.role]),
    transport: snapshot.context.transport,
    failure: snapshot.context.failure,
  }
}

function modelOf(commands: NodeEvent[]): MachineModel {
  return createMachineModel(nodeMachine, {
    input,
    events: (snapshot) => {
      const timer = nextTimer(snapshot)
      return [...commands, ...invokeEvents(snapshot), ...(timer === undefined ? [] : [timer.event])]
    },
    serializeState: (snapshot) => JSON.stringify(observable(snapshot)),
  })
}

const model = modelOf([...sessionCommands, ...deviceCommands, ...transferCommands, ...nodeCommands])
// Simple paths grow with every combination of children: sessions, devices and drops are walked apart.
const sessionModel = modelOf([...sessionCommands, ...nodeCommands])
const deviceModel = modelOf([...deviceCommands, ...nodeCommands])
const transferModel = modelOf([...transferCommands, ...nodeCommands])

const coverage = new CoverageRecorder(nodeMachine)

/** Lets settled promises deliver their results (invoked actors answer on the microtask queue). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

function driver(): ModelDriver {
  const start = Promise.withResolvers<TransportInfo>()
  const stop = Promise.withResolvers<void>()
  const machine = nodeMachine.provide({
    actors: {
      startTransport: fromPromise(() => start.promise),
      stopTransport: fromPromise(() => stop.promise),
    },
  })
  const run = startRecorded(machine, input, coverage.inspect)
  return {
    execute: async (event) => {
      if (event.type === 'xstate.done.actor.startTransport') start.resolve(transport)
      else if (event.type === 'xstate.error.actor.startTransport')
        start.reject(new Error('listen EADDRINUSE'))
      else if (event.type === 'xstate.done.actor.stopTransport') stop.resolve()
      else if (event.type === 'xstate.error.actor.stopTransport') stop.reject(new Error('close timed out'))
      else if (isTimerEvent(event)) return fireTimer(run.actor, run.clock, event)
      else return run.actor.send(event as NodeEvent)
      await settle()
    },
    check: (expected) => {
      const actual = run.actor.getSnapshot()
      assert.deepEqual(observable(actual), observable(expected))
      // Every session and device the node holds is a child registered under its deterministic id, until it ends.
      if (actual.status === 'active') {
        for (const [id, session] of Object.entries(actual.context.sessions)) {
          assert.equal(actual.children[`pair:${id}`], session.ref)
        }
        for (const [id, device] of Object.entries(actual.context.devices)) {
          assert.equal(actual.children[`conn:${id}`], device.ref)
        }
        for (const [id, transfer] of Object.entries(actual.context.transfers)) {
          assert.equal(actual.children[`drop:${id}`], transfer.ref)
        }
      }
    },
  }
}

pathReplayTests([
  { model, walks: ['shortest', 'transition'], driver },
  { model: sessionModel, walks: ['simple'], driver },
  { model: deviceModel, walks: ['simple'], driver },
  { model: transferModel, walks: ['simple'], driver },
])

test('every state but Running ends by itself', () => {
  for (const state of reachableStates(model)) {
    if (state.status === 'done' || state.value === 'Running') continue
    assert.equal(afterAllTimers(state).status, 'done', `time does not end ${JSON.stringify(state.value)}`)
  }
})

test('the paths above entered every state and took every transition', (t) => {
  const report = coverage.report()
  t.diagnostic(`states ${report.states.reached}/${report.states.total}`)
  t.diagnostic(`transitions ${report.transitions.reached}/${report.transitions.total}`)
  assert.deepEqual(report.states.missing, [])
  assert.deepEqual(report.transitions.missing.map(formatTransition), [])
})
