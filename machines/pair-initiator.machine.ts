// The side that generated the code: waits for one joiner to ask for the session, challenges it, and pairs once
// the joiner has proven the code and the user (or auto-accept) agreed.
//
// Owns: which peer the session is bound to, that peer's device, and why the session ended.
// Receives: `peer.*` decoded (and already verified) frames and `link.lost` from the pairing protocol handler in
// actors/, through the node machine's `session.forward`; `cmd.accept` / `cmd.reject` / `cmd.cancel` from the user.
// Drives (emitted, performed by actors/): `sendChallenge`, `sendComplete`, `sendFailure` on the wire and
// `requestConfirmation` towards the user. Events from a peer other than the bound one are explicit no-ops.
import { assign, emit, not, setup } from 'xstate'
import type { DeviceInfo, ErrorCode, FailureReason, PeerFailureCode } from './types.ts'

export type InitiatorInput = {
  sessionId: string
  autoAccept: boolean
  /** Milliseconds. */
  timeouts: { codeTtl: number; step: number; confirm: number }
}

export type InitiatorEvent =
  // from the joiner, decoded and verified by actors/
  | { type: 'peer.requestReceived'; peerId: string; device: DeviceInfo }
  | { type: 'peer.responseVerified'; peerId: string; device: DeviceInfo }
  | { type: 'peer.proofRejected'; peerId: string }
  | { type: 'peer.failed'; peerId: string; code: PeerFailureCode }
  // from the transport
  | { type: 'link.lost'; peerId: string }
  // from the user
  | { type: 'cmd.accept' }
  | { type: 'cmd.reject' }
  | { type: 'cmd.cancel' }

export type InitiatorEffect =
  | { type: 'sendChallenge'; sessionId: string; peerId: string }
  | { type: 'sendComplete'; sessionId: string; peerId: string }
  | { type: 'sendFailure'; sessionId: string; peerId: string; code: ErrorCode }
  | { type: 'requestConfirmation'; sessionId: string; peerId: string; device: DeviceInfo }

export type InitiatorOutput =
  | { outcome: 'paired'; peerId: string; device: DeviceInfo }
  | { outcome: 'rejected' | 'expired' | 'cancelled' }
  | { outcome: 'failed'; reason: FailureReason }

type InitiatorContext = InitiatorInput & {
  /** The joiner this session is bound to, from its request on. */
  peerId?: string
  device?: DeviceInfo
  reason?: FailureReason
}

const fail = (reason: FailureReason) => ({ type: 'recordFailure', params: { reason } }) as const

export const initiatorMachine = setup({
  types: {
    input: {} as InitiatorInput,
    context: {} as InitiatorContext,
    events: {} as InitiatorEvent,
    emitted: {} as InitiatorEffect,
    output: {} as InitiatorOutput,
  },
  actions: {
    bindPeer: assign((_, params: { peerId: string; device: DeviceInfo }) => ({
      peerId: params.peerId,
      device: params.device,
    })),
    recordDevice: assign((_, params: { device: DeviceInfo }) => ({ device: params.device })),
    recordFailure: assign((_, params: { reason: FailureReason }) => params),
    // effects
    sendChallenge: emit(({ context }, params: { peerId: string }) => ({
      type: 'sendChallenge' as const,
      sessionId: context.sessionId,
      peerId: params.peerId,
    })),
    sendComplete: emit(({ context }) => ({
      type: 'sendComplete' as const,
      sessionId: context.sessionId,
      peerId: context.peerId!,
    })),
    sendFailure: emit(({ context }, params: { code: ErrorCode }) => ({
      type: 'sendFailure' as const,
      sessionId: context.sessionId,
      peerId: context.peerId!,
      code: params.code,
    })),
    requestConfirmation: emit(({ context }) => ({
      type: 'requestConfirmation' as const,
      sessionId: context.sessionId,
      peerId: context.peerId!,
      device: context.device!,
    })),
  },
  guards: {
    isAutoAccept: ({ context }) => context.autoAccept,
    isBoundPeer: ({ context, event }) => 'peerId' in event && event.peerId === context.peerId,
  },
  delays: {
    codeTtl: ({ context }) => context.timeouts.codeTtl,
    step: ({ context }) => context.timeouts.step,
    confirm: ({ context }) => context.timeouts.confirm,
  },
}).createMachine({
  id: 'initiator',
  context: ({ input }) => ({ ...input }),
  initial: 'WaitingForConnection',
  states: {
    WaitingForConnection: {
      on: {
        'peer.requestReceived': {
          target: 'ChallengeSent',
          actions: [
            { type: 'bindPeer', params: ({ event }) => event },
            { type: 'sendChallenge', params: ({ event }) => ({ peerId: event.peerId }) },
          ],
        },
        'cmd.cancel': { target: 'Cancelled' },
      },
      after: { codeTtl: { target: 'Expired' } },
    },
    ChallengeSent: {
      on: {
        'peer.responseVerified': [
          { guard: not('isBoundPeer') },
          {
            guard: 'isAutoAccept',
            target: 'Paired',
            actions: [{ type: 'recordDevice', params: ({ event }) => event }, 'sendComplete'],
          },
          {
            target: 'AwaitingConfirmation',
            actions: [{ type: 'recordDevice', params: ({ event }) => event }, 'requestConfirmation'],
          },
        ],
        'peer.proofRejected': [
          { guard: not('isBoundPeer') },
          {
            target: 'Failed',
            actions: [fail('WrongCode'), { type: 'sendFailure', params: { code: 'WrongCode' } }],
          },
        ],
        'peer.failed': [
          { guard: not('isBoundPeer') },
          {
            target: 'Failed',
            actions: { type: 'recordFailure', params: ({ event }) => ({ reason: event.code }) },
          },
        ],
        'link.lost': [{ guard: not('isBoundPeer') }, { target: 'Failed', actions: fail('PeerLost') }],
        'cmd.cancel': {
          target: 'Cancelled',
          actions: { type: 'sendFailure', params: { code: 'Cancelled' } },
        },
      },
      after: {
        step: {
          target: 'Failed',
          actions: [fail('Timeout'), { type: 'sendFailure', params: { code: 'Timeout' } }],
        },
      },
    },
    AwaitingConfirmation: {
      on: {
        'cmd.accept': { target: 'Paired', actions: 'sendComplete' },
        'cmd.reject': { target: 'Rejected', actions: { type: 'sendFailure', params: { code: 'Rejected' } } },
        'peer.failed': [
          { guard: not('isBoundPeer') },
          {
            target: 'Failed',
            actions: { type: 'recordFailure', params: ({ event }) => ({ reason: event.code }) },
          },
        ],
        'link.lost': [{ guard: not('isBoundPeer') }, { target: 'Failed', actions: fail('PeerLost') }],
        'cmd.cancel': {
          target: 'Cancelled',
          actions: { type: 'sendFailure', params: { code: 'Cancelled' } },
        },
      },
      after: {
        confirm: {
          target: 'Failed',
          actions: [fail('Timeout'), { type: 'sendFailure', params: { code: 'Timeout' } }],
        },
      },
    },
    Paired: {
      type: 'final',
      output: ({ context }) => ({ outcome: 'paired', peerId: context.peerId!, device: context.device! }),
    },
    Rejected: { type: 'final', output: { outcome: 'rejected' } },
    Expired: { type: 'final', output: { outcome: 'expired' } },
    Cancelled: { type: 'final', output: { outcome: 'cancelled' } },
    Failed: { type: 'final', output: ({ context }) => ({ outcome: 'failed', reason: context.reason! }) },
  },
  // Each final state names its outcome and declares its output; the machine hands that output on.
  output: ({ event }) => event.output as InitiatorOutput,
})
