// The side that generated the code: waits for one joiner to ask for the session, challenges it, and pairs once
// the joiner has proven the code and the user (or auto-accept) agreed.
//
// Owns: which peer the session is bound to, that peer's device, and why the session ended.
// Receives: `peer.*` decoded (and already verified) frames and `link.lost` from the pairing protocol handler in
// actors/, through the node machine's `session.forward`; `cmd.accept` / `cmd.reject` / `cmd.cancel` from the user.
// Drives (emitted, performed by actors/): `sendChallenge`, `sendComplete`, `sendFailure` on the wire and
// `requestConfirmation` towards the user. Events from a peer other than the bound one are explicit no-ops.
import { assertEvent, assign, emit, not, setup } from 'xstate'
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

// References to the parameterized actions below, with their params.
const recordFailure = (reason: FailureReason) => ({ type: 'recordFailure', params: { reason } }) as const
const sendFailure = (code: ErrorCode) => ({ type: 'sendFailure', params: { code } }) as const

export const initiatorMachine = setup({
  types: {
    input: {} as InitiatorInput,
    context: {} as InitiatorContext,
    events: {} as InitiatorEvent,
    emitted: {} as InitiatorEffect,
    output: {} as InitiatorOutput,
  },
  actions: {
    // Context updates read the event they are named for.
    bindPeer: assign(({ event }) => {
      assertEvent(event, 'peer.requestReceived')
      return { peerId: event.peerId, device: event.device }
    }),
    recordDevice: assign(({ event }) => {
      assertEvent(event, 'peer.responseVerified')
      return { device: event.device }
    }),
    recordPeerFailure: assign(({ event }) => {
      assertEvent(event, 'peer.failed')
      return { reason: event.code }
    }),
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
  // Once a joiner is bound, `not('isBoundPeer')` comes first: events from any other peer are explicit no-ops.
  states: {
    WaitingForConnection: {
      on: {
        'peer.requestReceived': {
          target: 'ChallengeSent',
          actions: ['bindPeer', { type: 'sendChallenge', params: ({ event }) => ({ peerId: event.peerId }) }],
        },
        'cmd.cancel': 'Cancelled',
      },
      after: { codeTtl: 'Expired' },
    },
    ChallengeSent: {
      on: {
        'peer.responseVerified': [
          { guard: not('isBoundPeer') },
          { guard: 'isAutoAccept', target: 'Paired', actions: ['recordDevice', 'sendComplete'] },
          { target: 'AwaitingConfirmation', actions: ['recordDevice', 'requestConfirmation'] },
        ],
        'peer.proofRejected': [
          { guard: not('isBoundPeer') },
          { target: 'Failed', actions: [recordFailure('WrongCode'), sendFailure('WrongCode')] },
        ],
        'peer.failed': [{ guard: not('isBoundPeer') }, { target: 'Failed', actions: 'recordPeerFailure' }],
        'link.lost': [
          { guard: not('isBoundPeer') },
          { target: 'Failed', actions: recordFailure('PeerLost') },
        ],
        'cmd.cancel': { target: 'Cancelled', actions: sendFailure('Cancelled') },
      },
      after: {
        step: { target: 'Failed', actions: [recordFailure('Timeout'), sendFailure('Timeout')] },
      },
    },
    AwaitingConfirmation: {
      on: {
        'cmd.accept': { target: 'Paired', actions: 'sendComplete' },
        'cmd.reject': { target: 'Rejected', actions: sendFailure('Rejected') },
        'peer.failed': [{ guard: not('isBoundPeer') }, { target: 'Failed', actions: 'recordPeerFailure' }],
        'link.lost': [
          { guard: not('isBoundPeer') },
          { target: 'Failed', actions: recordFailure('PeerLost') },
        ],
        'cmd.cancel': { target: 'Cancelled', actions: sendFailure('Cancelled') },
      },
      after: {
        confirm: { target: 'Failed', actions: [recordFailure('Timeout'), sendFailure('Timeout')] },
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
