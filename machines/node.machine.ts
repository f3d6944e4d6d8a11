// The root of a daemon: starts the libp2p transport, owns one spawned child per pairing session
// (`pair:<sessionId>`), one per paired device (`conn:<deviceId>`) and one per file drop (`drop:<transferId>`),
// routes events to them, and stops everything on the way out.
//
// Owns: the tables of live sessions, device connections and file drops, and the transport's identity once
// started.
// Receives: `cmd.*` from the API (actors/node.ts); `session.forward` (a frame or link fact for one session) and
// `session.finished` (its end has been handled) from the pairing service in actors/; `device.forward` from the
// messaging service in actors/; `drop.forward` and `drop.finished` from the drop service in actors/;
// `transport.*` facts from the libp2p node. Invokes `startTransport` / `stopTransport`, which actors/ provides
// with `machine.provide()`.
// Drives (emitted): `node.started`, `session.rejected` / `device.rejected` / `drop.rejected` (the id is taken),
// `session.unknown` / `device.unknown` / `drop.unknown` (no live child under that id). Each child's own effects
// are emitted by the child: subscribe with `child.on('*')` right after the spawn; a child emits nothing before
// its first event, so nothing is missed.
// Stopping cancels live pairing sessions but not drops: an accepted drop resumes after the restart.
// Late events in Stopped and Failed are no-ops: they are final and declare no transitions.
import {
  type ActorRefFrom,
  assign,
  emit,
  enqueueActions,
  fromPromise,
  sendTo,
  setup,
  stopChild,
} from 'xstate'
import { type ConnectionEvent, connectionMachine } from './connection.machine.ts'
import {
  type ConnectionSettings,
  connectionInput,
  type DeviceSpec,
  type DeviceTable,
  deviceChildId,
  deviceOf,
  isLiveChild,
  liveDevicesOn,
  withoutDevice,
} from './devices.ts'
import { dropReceiverMachine } from './drop-receiver.machine.ts'
import { dropSenderMachine } from './drop-sender.machine.ts'
import { type InitiatorEvent, type InitiatorInput, initiatorMachine } from './pair-initiator.machine.ts'
import { type JoinerEvent, type JoinerInput, joinerMachine } from './pair-joiner.machine.ts'
import {
  type DropEvent,
  type DropSpec,
  dropChildId,
  dropInput,
  type Transfer,
  type TransferTable,
  transferOf,
  withoutTransfer,
} from './transfers.ts'

/** Thrown by the default `startTransport` / `stopTransport`: the composition root forgot to provide them. */
export class EffectNotProvidedError extends Error {
  override readonly name = 'EffectNotProvidedError'
  constructor(effect: string) {
    super(`${effect} must be provided with machine.provide()`)
  }
}

export type NodeInput = {
  /** Milliseconds. */
  timeouts: { start: number; stop: number }
  /** What every device connection is spawned with. */
  connection: ConnectionSettings
}

export type TransportInfo = { peerId: string; addresses: string[] }

export type NodeEvent =
  // from the API
  | { type: 'cmd.pairGenerate'; sessionId: string; autoAccept: boolean; timeouts: InitiatorInput['timeouts'] }
  | { type: 'cmd.pairJoin'; sessionId: string; timeouts: JoinerInput['timeouts'] }
  | ({ type: 'cmd.connectDevice' } & DeviceSpec)
  | { type: 'cmd.forgetDevice'; deviceId: string }
  | ({ type: 'cmd.startDrop' } & DropSpec)
  | { type: 'cmd.stop' }
  // from the pairing service
  | { type: 'session.forward'; sessionId: string; event: InitiatorEvent | JoinerEvent }
  | { type: 'session.finished'; sessionId: string }
  // from the messaging service
  | { type: 'device.forward'; deviceId: string; event: ConnectionEvent }
  // from the drop service
  | { type: 'drop.forward'; transferId: string; event: DropEvent }
  | { type: 'drop.finished'; transferId: string }
  // from the libp2p node
  | { type: 'transport.peerDiscovered'; peerId: string }
  | { type: 'transport.failed'; message: string }

export type NodeEffect =
  | ({ type: 'node.started' } & TransportInfo)
  | { type: 'session.rejected'; sessionId: string; reason: 'SessionIdTaken' }
  | { type: 'session.unknown'; sessionId: string }
  | { type: 'device.rejected'; deviceId: string; reason: 'DeviceIdTaken' }
  | { type: 'device.unknown'; deviceId: string }
  | { type: 'drop.rejected'; transferId: string; reason: 'TransferIdTaken' }
  | { type: 'drop.unknown'; transferId: string }

export type NodeFailureReason = 'StartFailed' | 'StartTimeout' | 'TransportFailed'

export type NodeOutput =
  | { outcome: 'stopped' }
  | { outcome: 'failed'; reason: NodeFailureReason; message: string }

export type Session =
  | { role: 'initiator'; ref: ActorRefFrom<typeof initiatorMachine> }
  | { role: 'joiner'; ref: ActorRefFrom<typeof joinerMachine> }

type NodeContext = NodeInput & {
  /** Keyed by session id; the child's actor id is `pair:<sessionId>`. */
  sessions: Record<string, Session>
  devices: DeviceTable
  transfers: TransferTable
  transport?: TransportInfo
  failure?: { reason: NodeFailureReason; message: string }
}

const childId = (sessionId: string) => `pair:${sessionId}`
// Session ids come from outside: look them up as own keys only (`constructor` is not a session).
const sessionOf = (context: NodeContext, sessionId: string) =>
  Object.hasOwn(context.sessions, sessionId) ? context.sessions[sessionId] : undefined
const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error))

export const nodeMachine = setup({
  types: {
    input: {} as NodeInput,
    context: {} as NodeContext,
    events: {} as NodeEvent,
    emitted: {} as NodeEffect,
    output: {} as NodeOutput,
  },
  actors: {
    initiator: initiatorMachine,
    joiner: joinerMachine,
    connection: connectionMachine,
    dropSender: dropSenderMachine,
    dropReceiver: dropReceiverMachine,
    startTransport: fromPromise<TransportInfo>(async () => {
      throw new EffectNotProvidedError('startTransport')
    }),
    stopTransport: fromPromise<void>(async () => {
      throw new EffectNotProvidedError('stopTransport')
    }),
  },
  actions: {
    recordTransport: assign((_, params: TransportInfo) => ({ transport: params })),
    recordFailure: assign((_, failure: { reason: NodeFailureReason; message: string }) => ({ failure })),
    spawnInitiator: assign(({ context, spawn }, params: InitiatorInput) => {
      const ref = spawn('initiator', { id: childId(params.sessionId), input: params })
      return { sessions: { ...context.sessions, [params.sessionId]: { role: 'initiator', ref } } }
    }),
    spawnJoiner: assign(({ context, spawn }, params: JoinerInput) => {
      const ref = spawn('joiner', { id: childId(params.sessionId), input: params })
      return { sessions: { ...context.sessions, [params.sessionId]: { role: 'joiner', ref } } }
    }),
    spawnConnection: assign(({ context, spawn }, params: DeviceSpec) => {
      const input = connectionInput(context.connection, params)
      const ref = spawn('connection', { id: deviceChildId(params.deviceId), input })
      return { devices: { ...context.devices, [params.deviceId]: { peerId: params.peerId, ref } } }
    }),
    spawnDrop: assign(({ context, spawn }, params: DropSpec) => {
      const id = dropChildId(params.transferId)
      const input = dropInput(params)
      const transfer: Transfer =
        params.role === 'sender'
          ? { role: 'sender', ref: spawn('dropSender', { id, input }) }
          : { role: 'receiver', ref: spawn('dropReceiver', { id, input }) }
      return { transfers: { ...context.transfers, [params.transferId]: transfer } }
    }),
    forwardToSession: sendTo(
      ({ context }, params: { sessionId: string; event: InitiatorEvent | JoinerEvent }) =>
        sessionOf(context, params.sessionId)!.ref,
      (_, params) => params.event,
    ),
    forwardToDevice: sendTo(
      ({ context }, params: { deviceId: string; event: ConnectionEvent }) =>
        deviceOf(context.devices, params.deviceId)!.ref,
      (_, params) => params.event,
    ),
    forwardToDrop: sendTo(
      ({ context }, params: { transferId: string; event: DropEvent }) =>
        transferOf(context.transfers, params.transferId)!.ref,
      (_, params) => params.event,
    ),
    // A discovered peer may hold a session a joiner looks for, or be a paired device to reconnect to.
    announcePeer: enqueueActions(({ context, enqueue }, params: { peerId: string }) => {
      const discovered = { type: 'peer.discovered' as const, peerId: params.peerId }
      for (const session of Object.values(context.sessions)) {
        if (session.role === 'joiner' && isLiveChild(session)) enqueue.sendTo(session.ref, discovered)
      }
      for (const device of liveDevicesOn(context.devices, params.peerId))
        enqueue.sendTo(device.ref, discovered)
    }),
    cancelSessions: enqueueActions(({ context, enqueue }) => {
      for (const session of Object.values(context.sessions)) {
        if (isLiveChild(session)) enqueue.sendTo(session.ref, { type: 'cmd.cancel' })
      }
    }),
    stopSession: stopChild((_, params: { sessionId: string }) => childId(params.sessionId)),
    forgetSession: assign(({ context }, params: { sessionId: string }) => {
      const { [params.sessionId]: _finished, ...sessions } = context.sessions
      return { sessions }
    }),
    dropDevice: enqueueActions(({ context, enqueue }, params: { deviceId: string }) => {
      enqueue.stopChild(deviceChildId(params.deviceId))
      enqueue.assign({ devices: withoutDevice(context.devices, params.deviceId) })
    }),
    forgetDrop: enqueueActions(({ context, enqueue }, params: { transferId: string }) => {
      enqueue.stopChild(dropChildId(params.transferId))
      enqueue.assign({ transfers: withoutTransfer(context.transfers, params.transferId) })
    }),
    // effects
    reportStarted: emit((_, params: TransportInfo) => ({ type: 'node.started' as const, ...params })),
    reportSessionTaken: emit((_, params: { sessionId: string }) => ({
      type: 'session.rejected' as const,
      sessionId: params.sessionId,
      reason: 'SessionIdTaken' as const,
    })),
    reportUnknownSession: emit((_, params: { sessionId: string }) => ({
      type: 'session.unknown' as const,
      sessionId: params.sessionId,
    })),
    reportDeviceTaken: emit((_, params: { deviceId: string }) => ({
      type: 'device.rejected' as const,
      deviceId: params.deviceId,
      reason: 'DeviceIdTaken' as const,
    })),
    reportUnknownDevice: emit((_, params: { deviceId: string }) => ({
      type: 'device.unknown' as const,
      deviceId: params.deviceId,
    })),
    reportTransferTaken: emit((_, params: { transferId: string }) => ({
      type: 'drop.rejected' as const,
      transferId: params.transferId,
      reason: 'TransferIdTaken' as const,
    })),
    reportUnknownTransfer: emit((_, params: { transferId: string }) => ({
      type: 'drop.unknown' as const,
      transferId: params.transferId,
    })),
  },
  guards: {
    // Spawning a second child under an existing id would put this whole actor into error status.
    isSessionIdFree: ({ context }, params: { sessionId: string }) =>
      sessionOf(context, params.sessionId) === undefined,
    isLiveSession: ({ context }, params: { sessionId: string }) =>
      isLiveChild(sessionOf(context, params.sessionId)),
    isDeviceIdFree: ({ context }, params: { deviceId: string }) =>
      deviceOf(context.devices, params.deviceId) === undefined,
    isLiveDevice: ({ context }, params: { deviceId: string }) =>
      isLiveChild(deviceOf(context.devices, params.deviceId)),
    isTransferIdFree: ({ context }, params: { transferId: string }) =>
      transferOf(context.transfers, params.transferId) === undefined,
    isLiveDrop: ({ context }, params: { transferId: string }) =>
      isLiveChild(transferOf(context.transfers, params.transferId)),
  },
  delays: {
    start: ({ context }) => context.timeouts.start,
    stop: ({ context }) => context.timeouts.stop,
  },
}).createMachine({
  id: 'node',
  context: ({ input }) => ({ ...input, sessions: {}, devices: {}, transfers: {} }),
  initial: 'Starting',
  states: {
    Starting: {
      invoke: {
        id: 'startTransport',
        src: 'startTransport',
        onDone: {
          target: 'Running',
          actions: [
            { type: 'recordTransport', params: ({ event }) => event.output },
            { type: 'reportStarted', params: ({ event }) => event.output },
          ],
        },
        onError: {
          target: 'Failed',
          actions: {
            type: 'recordFailure',
            params: ({ event }) => ({ reason: 'StartFailed', message: messageOf(event.error) }),
          },
        },
      },
      after: {
        start: {
          target: 'Failed',
          actions: {
            type: 'recordFailure',
            params: ({ context }) => ({
              reason: 'StartTimeout',
              message: `the transport did not start within ${context.timeouts.start} ms`,
            }),
          },
        },
      },
    },
    Running: {
      on: {
        'cmd.pairGenerate': [
          {
            guard: { type: 'isSessionIdFree', params: ({ event }) => event },
            actions: {
              type: 'spawnInitiator',
              params: ({ event }) => ({
                sessionId: event.sessionId,
                autoAccept: event.autoAccept,
                timeouts: event.timeouts,
              }),
            },
          },
          { actions: { type: 'reportSessionTaken', params: ({ event }) => event } },
        ],
        'cmd.pairJoin': [
          {
            guard: { type: 'isSessionIdFree', params: ({ event }) => event },
            actions: {
              type: 'spawnJoiner',
              params: ({ event }) => ({ sessionId: event.sessionId, timeouts: event.timeouts }),
            },
          },
          { actions: { type: 'reportSessionTaken', params: ({ event }) => event } },
        ],
        'session.forward': [
          {
            guard: { type: 'isLiveSession', params: ({ event }) => event },
            actions: { type: 'forwardToSession', params: ({ event }) => event },
          },
          { actions: { type: 'reportUnknownSession', params: ({ event }) => event } },
        ],
        'transport.peerDiscovered': { actions: { type: 'announcePeer', params: ({ event }) => event } },
        'session.finished': {
          actions: [
            { type: 'stopSession', params: ({ event }) => event },
            { type: 'forgetSession', params: ({ event }) => event },
          ],
        },
        'cmd.connectDevice': [
          {
            guard: { type: 'isDeviceIdFree', params: ({ event }) => event },
            actions: { type: 'spawnConnection', params: ({ event }) => event },
          },
          { actions: { type: 'reportDeviceTaken', params: ({ event }) => event } },
        ],
        'device.forward': [
          {
            guard: { type: 'isLiveDevice', params: ({ event }) => event },
            actions: { type: 'forwardToDevice', params: ({ event }) => event },
          },
          { actions: { type: 'reportUnknownDevice', params: ({ event }) => event } },
        ],
        'cmd.forgetDevice': { actions: { type: 'dropDevice', params: ({ event }) => event } },
        'cmd.startDrop': [
          {
            guard: { type: 'isTransferIdFree', params: ({ event }) => event },
            actions: { type: 'spawnDrop', params: ({ event }) => event },
          },
          { actions: { type: 'reportTransferTaken', params: ({ event }) => event } },
        ],
        'drop.forward': [
          {
            guard: { type: 'isLiveDrop', params: ({ event }) => event },
            actions: { type: 'forwardToDrop', params: ({ event }) => event },
          },
          { actions: { type: 'reportUnknownTransfer', params: ({ event }) => event } },
        ],
        'drop.finished': { actions: { type: 'forgetDrop', params: ({ event }) => event } },
        'cmd.stop': { target: 'Stopping' },
        'transport.failed': {
          target: 'Failed',
          actions: {
            type: 'recordFailure',
            params: ({ event }) => ({ reason: 'TransportFailed', message: event.message }),
          },
        },
      },
    },
    Stopping: {
      entry: 'cancelSessions',
      invoke: { id: 'stopTransport', src: 'stopTransport', onDone: 'Stopped', onError: 'Stopped' },
      // A transport that does not stop in time is abandoned: stopping must end.
      after: { stop: 'Stopped' },
    },
    Stopped: { type: 'final', output: { outcome: 'stopped' } },
    Failed: { type: 'final', output: ({ context }) => ({ outcome: 'failed', ...context.failure! }) },
  },
  // Each final state declares its output; the machine hands that output on.
  output: ({ event }) => event.output as NodeOutput,
})
