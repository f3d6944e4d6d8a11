// The root of a daemon: starts the libp2p transport, owns one spawned child per pairing session
// (`pair:<sessionId>`) and one per paired device (`conn:<deviceId>`), routes events to them, and stops
// everything on the way out.
//
// Owns: the tables of live sessions and device connections, and the transport's identity once started.
// Receives: `cmd.*` from the API (actors/node.ts); `session.forward` (a frame or link fact for one session) and
// `session.finished` (its end has been handled) from the pairing service in actors/; `device.forward` from the
// messaging service in actors/; `transport.*` facts from the libp2p node. Invokes `startTransport` /
// `stopTransport`, which actors/ provides with `machine.provide()`.
// Drives (emitted): `node.started`, `session.rejected` / `device.rejected` (the id is taken),
// `session.unknown` / `device.unknown` (no live child under that id). Each child's own effects are emitted by
// the child: subscribe with `child.on('*')` right after the spawn; a child emits nothing before its first
// event, so nothing is missed.
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
import { type InitiatorEvent, type InitiatorInput, initiatorMachine } from './pair-initiator.machine.ts'
import { type JoinerEvent, type JoinerInput, joinerMachine } from './pair-joiner.machine.ts'

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
  | { type: 'cmd.stop' }
  // from the pairing service
  | { type: 'session.forward'; sessionId: string; event: InitiatorEvent | JoinerEvent }
  | { type: 'session.finished'; sessionId: string }
  // from the messaging service
  | { type: 'device.forward'; deviceId: string; event: ConnectionEvent }
  // from the libp2p node
  | { type: 'transport.peerDiscovered'; peerId: string }
  | { type: 'transport.failed'; message: string }

export type NodeEffect =
  | ({ type: 'node.started' } & TransportInfo)
  | { type: 'session.rejected'; sessionId: string; reason: 'SessionIdTaken' }
  | { type: 'session.unknown'; sessionId: string }
  | { type: 'device.rejected'; deviceId: string; reason: 'DeviceIdTaken' }
  | { type: 'device.unknown'; deviceId: string }

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
  },
  delays: {
    start: ({ context }) => context.timeouts.start,
    stop: ({ context }) => context.timeouts.stop,
  },
}).createMachine({
  id: 'node',
  context: ({ input }) => ({ ...input, sessions: {}, devices: {} }),
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
