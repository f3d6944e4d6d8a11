// Every statechart of sdnet, by the name of its file (`pair-initiator` for pair-initiator.machine.ts), with what
// the coverage gate needs to walk it. The diagrams, the coverage gate, the liveness proof and trace replay all
// read this list; test/machines/coverage-gate.test.ts fails naming any `*.machine.ts` that is missing here.
//
// `modelConfig` describes what may happen to a machine: for each scenario an input and the events the outside
// world can send. Timers are not listed: the gate offers the first pending `after` timer of every state. Pure
// data, so it lives beside the machines; the model-based tests in test/machines/ walk the same machines deeper.
import type { AnyEventObject, AnyMachineSnapshot, AnyStateMachine } from 'xstate'
import { type ConnectionEvent, type ConnectionInput, connectionMachine } from './connection.machine.ts'
import type { DropInput, DropTimeouts } from './drop.ts'
import { type DropReceiverEvent, dropReceiverMachine } from './drop-receiver.machine.ts'
import { type DropSenderEvent, dropSenderMachine } from './drop-sender.machine.ts'
import { type NodeEvent, type NodeInput, nodeMachine } from './node.machine.ts'
import { type InitiatorEvent, type InitiatorInput, initiatorMachine } from './pair-initiator.machine.ts'
import { type JoinerEvent, type JoinerInput, joinerMachine } from './pair-joiner.machine.ts'
import { type SessionKeyEvent, type SessionKeyInput, sessionKeyMachine } from './session-key.machine.ts'
import type { DeviceInfo } from './types.ts'

export type ModelScenario = {
  name: string
  input: unknown
  /** Everything the outside world may send, in any state (an event a state does not take is a no-op). */
  events: readonly AnyEventObject[]
}

export type ModelConfig = {
  scenarios: readonly ModelScenario[]
  /** Which snapshots count as the same vertex of the model's graph; the value and context by default. */
  serializeState?: (snapshot: AnyMachineSnapshot) => string
  /** The copy to walk and run, when the machine cannot run alone (`sendParent` throws without a parent). */
  machine?: AnyStateMachine
}

export type MachineEntry = { name: string; machine: AnyStateMachine; modelConfig?: ModelConfig }

// Typed shorthands: every event listed below must be a real event of its machine.
const initiatorEvents = (events: InitiatorEvent[]) => events
const joinerEvents = (events: JoinerEvent[]) => events

const device: DeviceInfo = { id: 'laptop', name: 'Laptop', publicKey: new Uint8Array(32) }

/** Every event the joiner takes from `peerId`: from the current candidate they act, from another they are no-ops. */
const joinerEventsFrom = (peerId: string) =>
  joinerEvents([
    { type: 'link.requestSent', peerId },
    { type: 'link.dialFailed', peerId },
    { type: 'link.responseSent', peerId },
    { type: 'link.lost', peerId },
    { type: 'peer.sessionUnknown', peerId },
    { type: 'peer.challengeReceived', peerId, device },
    { type: 'peer.completeVerified', peerId, device, sas: '123 456' },
    { type: 'peer.proofRejected', peerId },
    { type: 'peer.failed', peerId, code: 'Rejected' },
    { type: 'peer.failed', peerId, code: 'Expired' },
    { type: 'peer.failed', peerId, code: 'ProtocolError' },
  ])

// settle < discovery, as in real use: after a refusal the joiner waits a little for other peers, not the full time.
const joinerTimeouts = { discovery: 30_000, settle: 3_000, dial: 5_000, step: 10_000, confirm: 60_000 }
const initiatorTimeouts = { codeTtl: 60_000, step: 10_000, confirm: 30_000 }
const keyTimeouts = { handshake: 10_000, rekey: 10_000, rekeyInterval: 86_400_000 }
// reconnect > verify, as in real use: a sender waiting for its peer outlasts the receiver's final check.
const dropTimeouts: DropTimeouts = {
  offer: 30_000,
  consent: 300_000,
  stall: 30_000,
  verify: 60_000,
  reconnect: 600_000,
}

/** The initiator's scenarios, typed: test/machines/pair-initiator.model.test.ts walks them deeper. */
export const initiatorScenarios: Array<{ name: string; input: InitiatorInput; events: InitiatorEvent[] }> = [
  false,
  true,
].map((autoAccept) => ({
  name: autoAccept ? 'auto-accept' : 'asks the user',
  input: { sessionId: 's1', autoAccept, timeouts: initiatorTimeouts },
  // J asks first; M is any other peer, whose events are no-ops once the session is bound to J
  events: initiatorEvents([
    { type: 'peer.requestReceived', peerId: 'J', device },
    ...['J', 'M'].flatMap((peerId) =>
      initiatorEvents([
        { type: 'peer.responseVerified', peerId, device },
        { type: 'peer.proofRejected', peerId },
        { type: 'peer.failed', peerId, code: 'ProtocolError' },
        { type: 'link.lost', peerId },
      ]),
    ),
    { type: 'cmd.accept' },
    { type: 'cmd.reject' },
    { type: 'cmd.cancel' },
  ]),
}))

const initiator: ModelConfig = { scenarios: initiatorScenarios }

/** The joiner's scenarios, typed: test/machines/pair-joiner.model.test.ts walks them deeper. */
export const joinerScenarios: Array<{ name: string; input: JoinerInput; events: JoinerEvent[] }> = [
  {
    name: 'one candidate',
    input: { sessionId: 's2', timeouts: joinerTimeouts, maxDialAttempts: 2 },
    events: [
      { type: 'peer.discovered', peerId: 'A' },
      ...joinerEventsFrom('A'),
      ...joinerEventsFrom('M'),
      { type: 'cmd.cancel' },
    ],
  },
  {
    name: 'several candidates',
    // C is discovered but never taken: the cap of two candidates is reached first or C comes too late
    input: { sessionId: 's2', timeouts: joinerTimeouts, maxDialAttempts: 2, maxCandidates: 2 },
    events: [
      ...joinerEvents(['A', 'B', 'C'].map((peerId) => ({ type: 'peer.discovered', peerId }))),
      ...joinerEventsFrom('A'),
      ...joinerEventsFrom('B'),
      { type: 'cmd.cancel' },
    ],
  },
]

const joiner: ModelConfig = { scenarios: joinerScenarios }

const node: ModelConfig = {
  scenarios: [
    {
      name: 'sessions and devices',
      input: {
        timeouts: { start: 30_000, stop: 10_000 },
        connection: {
          rekeyAfterFrames: 1000,
          timeouts: {
            dial: 5_000,
            backoffBase: 1_000,
            backoffCap: 60_000,
            ...keyTimeouts,
          },
        },
      } satisfies NodeInput,
      events: [
        ...([
          { type: 'cmd.pairGenerate', sessionId: 's1', autoAccept: false, timeouts: initiatorTimeouts },
          { type: 'cmd.pairJoin', sessionId: 's2', timeouts: joinerTimeouts },
          // s1 again as a joiner: refused while s1 is taken
          { type: 'cmd.pairJoin', sessionId: 's1', timeouts: joinerTimeouts },
          // cmd.accept leaves either kind of session where it is
          { type: 'session.forward', sessionId: 's1', event: { type: 'cmd.accept' } },
          { type: 'session.forward', sessionId: 'unknown', event: { type: 'cmd.accept' } },
          { type: 'session.finished', sessionId: 's1' },
          { type: 'cmd.connectDevice', deviceId: 'd1', peerId: 'P', jitterSeed: 7 },
          // cmd.connect leaves a connection alive whatever its state
          { type: 'device.forward', deviceId: 'd1', event: { type: 'cmd.connect' } },
          { type: 'device.forward', deviceId: 'unknown', event: { type: 'cmd.connect' } },
          { type: 'cmd.forgetDevice', deviceId: 'd1' },
          // t1 again as a receiver: refused while t1 is taken
          ...(['sender', 'receiver'] as const).map((role) => ({
            type: 'cmd.startDrop' as const,
            role,
            transferId: 't1',
            deviceId: 'd1',
            timeouts: dropTimeouts,
          })),
          // data.progressed leaves a drop of either side where it is
          { type: 'drop.forward', transferId: 't1', event: { type: 'data.progressed' } },
          { type: 'drop.forward', transferId: 'unknown', event: { type: 'data.progressed' } },
          { type: 'drop.finished', transferId: 't1' },
          { type: 'transport.peerDiscovered', peerId: 'P' },
          { type: 'cmd.stop' },
          { type: 'transport.failed', message: 'the listener closed' },
        ] satisfies NodeEvent[]),
        // what the invoked transport effects can answer
        {
          type: 'xstate.done.actor.startTransport',
          output: { peerId: 'S', addresses: [] },
          actorId: 'startTransport',
        },
        { type: 'xstate.error.actor.startTransport', error: new Error('listen EADDRINUSE') },
        { type: 'xstate.done.actor.stopTransport', output: undefined, actorId: 'stopTransport' },
        { type: 'xstate.error.actor.stopTransport', error: new Error('close timed out') },
      ],
    },
  ],
  // Children are actors, not data: a vertex is the node's own state and which children it holds.
  serializeState: ({ value, status, context }) =>
    JSON.stringify({
      value,
      status,
      sessions: Object.entries(context.sessions).map(([id, s]) => [id, (s as { role: string }).role]),
      devices: Object.keys(context.devices),
      transfers: Object.entries(context.transfers).map(([id, t]) => [id, (t as { role: string }).role]),
      failure: context.failure,
    }),
}

const connectionInput: ConnectionInput = {
  deviceId: 'd1',
  peerId: 'P',
  rekeyAfterFrames: 1000,
  timeouts: { dial: 5_000, backoffBase: 1_000, backoffCap: 8_000, ...keyTimeouts },
  jitterSeed: 7,
}

const connection: ModelConfig = {
  scenarios: [
    {
      name: 'one device',
      input: connectionInput,
      events: [
        ...([
          { type: 'peer.discovered', peerId: 'P' },
          { type: 'cmd.connect' },
          { type: 'cmd.revoke' },
          { type: 'link.up' },
          { type: 'link.inbound' },
          { type: 'link.dialFailed' },
          { type: 'link.lost' },
          { type: 'peer.revoked' },
          { type: 'peer.helloVerified' },
          { type: 'peer.welcomeVerified' },
          { type: 'peer.rekeyVerified' },
          { type: 'peer.rekeyAckVerified' },
          { type: 'peer.badSignature' },
          { type: 'keys.framesSent', count: 1 },
        ] satisfies ConnectionEvent[]),
        // what the invoked key schedule tells the connection
        { type: 'handshake.done' },
        { type: 'xstate.done.actor.keys', output: { outcome: 'failed', reason: 'Timeout' }, actorId: 'keys' },
        { type: 'xstate.error.actor.keys', error: new Error('the key schedule crashed') },
      ],
    },
  ],
}

const keyEvents: SessionKeyEvent[] = [
  { type: 'peer.helloVerified' },
  { type: 'peer.welcomeVerified' },
  { type: 'peer.rekeyVerified' },
  { type: 'peer.rekeyAckVerified' },
  { type: 'peer.badSignature' },
  { type: 'keys.framesSent', count: 1 },
  { type: 'keys.framesSent', count: 100 },
  { type: 'link.closed' },
]

const sessionKey: ModelConfig = {
  scenarios: (['opener', 'acceptor'] as const).map((role) => ({
    name: role,
    input: { role, rekeyAfterFrames: 100, timeouts: keyTimeouts } satisfies SessionKeyInput,
    events: keyEvents,
  })),
  // The epoch grows with every re-key: a vertex is where the schedule is, not how often it re-keyed.
  serializeState: ({ value, status, context }) => JSON.stringify({ value, status, reason: context.reason }),
  // Alone, there is no connection to tell `handshake.done`.
  machine: sessionKeyMachine.provide({ actions: { reportHandshakeDone: () => {} } }),
}

/** A drop's scenarios: a new transfer and one re-spawned after a restart, offered the same events. */
const dropScenarios = <TEvent>(events: TEvent[]) =>
  [false, true].map((resumed) => ({
    name: resumed ? 'resumed after a restart' : 'new',
    input: { transferId: 't1', deviceId: 'd1', resumed, timeouts: dropTimeouts } satisfies DropInput,
    events,
  }))

/** The sender's scenarios, typed: test/machines/drop-sender.model.test.ts walks them deeper. */
export const dropSenderScenarios = dropScenarios<DropSenderEvent>([
  { type: 'cmd.cancel' },
  { type: 'link.up' },
  { type: 'link.lost' },
  { type: 'peer.accepted' },
  { type: 'peer.rejected' },
  { type: 'peer.resumed' },
  { type: 'peer.completed' },
  { type: 'peer.cancelled' },
  { type: 'peer.failed', reason: 'DiskFull' },
  { type: 'peer.misbehaved', message: 'resume offset past the end of file 0' },
  { type: 'data.progressed' },
  { type: 'data.allSent' },
  { type: 'source.changed', file: 0 },
  { type: 'source.failed', file: 0, message: 'EIO: i/o error, read' },
])

/** The receiver's scenarios, typed: test/machines/drop-receiver.model.test.ts walks them deeper. */
export const dropReceiverScenarios = dropScenarios<DropReceiverEvent>([
  { type: 'cmd.accept' },
  { type: 'cmd.reject' },
  { type: 'cmd.cancel' },
  { type: 'link.up' },
  { type: 'link.lost' },
  { type: 'peer.cancelled' },
  { type: 'peer.failed', reason: 'SourceChanged' },
  { type: 'peer.misbehaved', message: 'a chunk past the end of file 0' },
  { type: 'data.progressed' },
  // one file is enough to fail a check once and then again
  { type: 'data.chunkFailed', file: 0 },
  { type: 'data.fileFailed', file: 0 },
  { type: 'data.allReceived' },
  { type: 'disk.full', message: 'ENOSPC: no space left on device, write' },
  { type: 'disk.failed', message: 'EIO: i/o error, write' },
  { type: 'verify.passed' },
  { type: 'verify.failed', file: 0 },
])

export const machines: readonly MachineEntry[] = [
  { name: 'connection', machine: connectionMachine, modelConfig: connection },
  { name: 'drop-receiver', machine: dropReceiverMachine, modelConfig: { scenarios: dropReceiverScenarios } },
  { name: 'drop-sender', machine: dropSenderMachine, modelConfig: { scenarios: dropSenderScenarios } },
  { name: 'node', machine: nodeMachine, modelConfig: node },
  { name: 'pair-initiator', machine: initiatorMachine, modelConfig: initiator },
  { name: 'pair-joiner', machine: joinerMachine, modelConfig: joiner },
  { name: 'session-key', machine: sessionKeyMachine, modelConfig: sessionKey },
]

/** The registered machine whose id is `id` (`initiator` for pair-initiator), as traces name them. */
export const machineById = (id: string): MachineEntry | undefined =>
  machines.find((entry) => entry.machine.id === id)
