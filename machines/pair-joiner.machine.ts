// The side that typed the code: tries the peers that discovery turns up, one at a time, until one of them
// holds the session, then proves the code to it and checks the initiator's proof in return.
//
// Owns: the queue of candidate peers (each tried at most once per session, at most `maxCandidates` of them),
// the dial attempts on the current one, and how many refused the session (UnknownSession / SessionBusy).
// Receives: `peer.discovered` from the node machine (every discovered peer goes to every live joiner);
// `link.*` facts and decoded, verified `peer.*` frames from the pairing protocol handler in actors/, through the
// node machine's `session.forward`; `cmd.cancel` from the user.
// Drives (emitted, performed by actors/): `dialCandidate` (dial + send the request), `sendResponse`,
// `closeCandidate`. Events naming a peer other than the current candidate are explicit no-ops.
import { assertEvent, assign, emit, not, setup } from 'xstate'
import type { DeviceInfo, FailureReason, PeerFailureCode } from './types.ts'

export const DEFAULT_MAX_DIAL_ATTEMPTS = 3
export const DEFAULT_MAX_CANDIDATES = 32

export type JoinerInput = {
  sessionId: string
  /** Milliseconds. `settle`: how long to wait for more peers once some refused the session. */
  timeouts: { discovery: number; settle: number; dial: number; step: number; confirm: number }
  maxDialAttempts?: number
  maxCandidates?: number
}

export type JoinerEvent =
  // from discovery, through the node machine
  | { type: 'peer.discovered'; peerId: string }
  // from the transport
  | { type: 'link.requestSent'; peerId: string }
  | { type: 'link.dialFailed'; peerId: string; message?: string }
  | { type: 'link.responseSent'; peerId: string }
  | { type: 'link.lost'; peerId: string }
  // from the candidate, decoded and verified by actors/
  | { type: 'peer.sessionUnknown'; peerId: string }
  | { type: 'peer.challengeReceived'; peerId: string; device: DeviceInfo }
  | { type: 'peer.completeVerified'; peerId: string; device: DeviceInfo; sas: string }
  | { type: 'peer.proofRejected'; peerId: string }
  | { type: 'peer.failed'; peerId: string; code: PeerFailureCode }
  // from the user
  | { type: 'cmd.cancel' }

export type JoinerEffect =
  | { type: 'dialCandidate'; sessionId: string; peerId: string; attempt: number }
  | { type: 'sendResponse'; sessionId: string; peerId: string }
  | { type: 'closeCandidate'; sessionId: string; peerId: string }

export type JoinerOutput =
  | { outcome: 'paired'; peerId: string; device: DeviceInfo; sas: string }
  | { outcome: 'rejected' | 'expired' | 'cancelled' }
  | { outcome: 'failed'; reason: FailureReason }

type JoinerContext = Required<JoinerInput> & {
  /** Discovered, not tried yet. */
  queue: string[]
  /** Every peer ever taken as a candidate: a peer is tried once per session. */
  seen: string[]
  current?: string
  attempt: number
  refusals: number
  device?: DeviceInfo
  sas?: string
  reason?: FailureReason
}

// References to the parameterized actions below, with their params.
const recordFailure = (reason: FailureReason) => ({ type: 'recordFailure', params: { reason } }) as const

export const joinerMachine = setup({
  types: {
    input: {} as JoinerInput,
    context: {} as JoinerContext,
    events: {} as JoinerEvent,
    emitted: {} as JoinerEffect,
    output: {} as JoinerOutput,
  },
  actions: {
    // Context updates read the event they are named for.
    takeCandidate: assign(({ context, event }) => {
      assertEvent(event, 'peer.discovered')
      return { current: event.peerId, attempt: 1, seen: [...context.seen, event.peerId] }
    }),
    queueCandidate: assign(({ context, event }) => {
      assertEvent(event, 'peer.discovered')
      return { queue: [...context.queue, event.peerId], seen: [...context.seen, event.peerId] }
    }),
    // The next queued peer becomes the candidate; with none queued, there is no candidate.
    nextCandidate: assign(({ context }) => ({
      current: context.queue[0],
      queue: context.queue.slice(1),
      attempt: context.queue.length > 0 ? 1 : 0,
    })),
    countAttempt: assign(({ context }) => ({ attempt: context.attempt + 1 })),
    countRefusal: assign(({ context }) => ({ refusals: context.refusals + 1 })),
    recordInitiator: assign(({ event }) => {
      assertEvent(event, ['peer.challengeReceived', 'peer.completeVerified'])
      return { device: event.device, sas: 'sas' in event ? event.sas : undefined }
    }),
    recordPeerFailure: assign(({ event }) => {
      assertEvent(event, 'peer.failed')
      return { reason: event.code }
    }),
    recordFailure: assign((_, params: { reason: FailureReason }) => params),
    // effects
    dialCandidate: emit(({ context }) => ({
      type: 'dialCandidate' as const,
      sessionId: context.sessionId,
      peerId: context.current!,
      attempt: context.attempt,
    })),
    sendResponse: emit(({ context }) => ({
      type: 'sendResponse' as const,
      sessionId: context.sessionId,
      peerId: context.current!,
    })),
    closeCandidate: emit(({ context }) => ({
      type: 'closeCandidate' as const,
      sessionId: context.sessionId,
      peerId: context.current!,
    })),
  },
  guards: {
    isNewCandidate: ({ context, event }) =>
      event.type === 'peer.discovered' &&
      !context.seen.includes(event.peerId) &&
      context.seen.length < context.maxCandidates,
    isCurrentCandidate: ({ context, event }) => 'peerId' in event && event.peerId === context.current,
    hasAttemptsLeft: ({ context }) => context.attempt < context.maxDialAttempts,
    hasNextCandidate: ({ context }) => context.queue.length > 0,
    hasRefusals: ({ context }) => context.refusals > 0,
    isRejection: ({ event }) => event.type === 'peer.failed' && event.code === 'Rejected',
    isExpiry: ({ event }) => event.type === 'peer.failed' && event.code === 'Expired',
  },
  delays: {
    discovery: ({ context }) => context.timeouts.discovery,
    settle: ({ context }) => context.timeouts.settle,
    dial: ({ context }) => context.timeouts.dial,
    step: ({ context }) => context.timeouts.step,
    confirm: ({ context }) => context.timeouts.confirm,
  },
}).createMachine({
  id: 'joiner',
  context: ({ input }) => ({
    maxDialAttempts: DEFAULT_MAX_DIAL_ATTEMPTS,
    maxCandidates: DEFAULT_MAX_CANDIDATES,
    ...input,
    queue: [],
    seen: [],
    attempt: 0,
    refusals: 0,
  }),
  initial: 'Discovering',
  // In every state with a candidate, `not('isCurrentCandidate')` comes first: events about any other peer are
  // explicit no-ops. Every state but Discovering queues newly discovered peers and closes the candidate on cancel.
  states: {
    Discovering: {
      on: {
        'peer.discovered': { guard: 'isNewCandidate', target: 'Connecting', actions: 'takeCandidate' },
        'cmd.cancel': 'Cancelled',
      },
      after: {
        settle: { guard: 'hasRefusals', target: 'Failed', actions: recordFailure('WrongCode') },
        discovery: { target: 'Failed', actions: recordFailure('NotFound') },
      },
    },
    Connecting: {
      entry: 'dialCandidate',
      on: {
        'link.requestSent': [{ guard: not('isCurrentCandidate') }, { target: 'RequestSent' }],
        'link.dialFailed': [
          { guard: not('isCurrentCandidate') },
          { guard: 'hasAttemptsLeft', target: 'Connecting', reenter: true, actions: 'countAttempt' },
          { guard: 'hasNextCandidate', target: 'Connecting', reenter: true, actions: 'nextCandidate' },
          { target: 'Discovering', actions: 'nextCandidate' },
        ],
        'peer.discovered': { guard: 'isNewCandidate', actions: 'queueCandidate' },
        'cmd.cancel': { target: 'Cancelled', actions: 'closeCandidate' },
      },
      after: {
        dial: [
          { guard: 'hasAttemptsLeft', target: 'Connecting', reenter: true, actions: 'countAttempt' },
          { guard: 'hasNextCandidate', target: 'Connecting', reenter: true, actions: 'nextCandidate' },
          { target: 'Discovering', actions: 'nextCandidate' },
        ],
      },
    },
    RequestSent: {
      on: {
        'peer.challengeReceived': [
          { guard: not('isCurrentCandidate') },
          { target: 'ChallengeReceived', actions: ['recordInitiator', 'sendResponse'] },
        ],
        'peer.sessionUnknown': [
          { guard: not('isCurrentCandidate') },
          {
            guard: 'hasNextCandidate',
            target: 'Connecting',
            actions: ['closeCandidate', 'countRefusal', 'nextCandidate'],
          },
          { target: 'Discovering', actions: ['closeCandidate', 'countRefusal', 'nextCandidate'] },
        ],
        'link.lost': [
          { guard: not('isCurrentCandidate') },
          { guard: 'hasNextCandidate', target: 'Connecting', actions: ['closeCandidate', 'nextCandidate'] },
          { target: 'Discovering', actions: ['closeCandidate', 'nextCandidate'] },
        ],
        'peer.discovered': { guard: 'isNewCandidate', actions: 'queueCandidate' },
        'cmd.cancel': { target: 'Cancelled', actions: 'closeCandidate' },
      },
      after: {
        step: [
          { guard: 'hasNextCandidate', target: 'Connecting', actions: ['closeCandidate', 'nextCandidate'] },
          { target: 'Discovering', actions: ['closeCandidate', 'nextCandidate'] },
        ],
      },
    },
    ChallengeReceived: {
      on: {
        'link.responseSent': [{ guard: not('isCurrentCandidate') }, { target: 'ResponseSent' }],
        'peer.failed': [
          { guard: not('isCurrentCandidate') },
          { guard: 'isRejection', target: 'Rejected' },
          { guard: 'isExpiry', target: 'Expired' },
          { target: 'Failed', actions: 'recordPeerFailure' },
        ],
        'link.lost': [
          { guard: not('isCurrentCandidate') },
          { target: 'Failed', actions: recordFailure('PeerLost') },
        ],
        'peer.discovered': { guard: 'isNewCandidate', actions: 'queueCandidate' },
        'cmd.cancel': { target: 'Cancelled', actions: 'closeCandidate' },
      },
      after: { step: { target: 'Failed', actions: recordFailure('Timeout') } },
    },
    ResponseSent: {
      on: {
        'peer.completeVerified': [
          { guard: not('isCurrentCandidate') },
          { target: 'Paired', actions: 'recordInitiator' },
        ],
        'peer.proofRejected': [
          { guard: not('isCurrentCandidate') },
          { target: 'Failed', actions: recordFailure('WrongCode') },
        ],
        'peer.failed': [
          { guard: not('isCurrentCandidate') },
          { guard: 'isRejection', target: 'Rejected' },
          { guard: 'isExpiry', target: 'Expired' },
          { target: 'Failed', actions: 'recordPeerFailure' },
        ],
        'link.lost': [
          { guard: not('isCurrentCandidate') },
          { target: 'Failed', actions: recordFailure('PeerLost') },
        ],
        'peer.discovered': { guard: 'isNewCandidate', actions: 'queueCandidate' },
        'cmd.cancel': { target: 'Cancelled', actions: 'closeCandidate' },
      },
      after: { confirm: { target: 'Failed', actions: recordFailure('Timeout') } },
    },
    Paired: {
      type: 'final',
      output: ({ context: c }) => ({ outcome: 'paired', peerId: c.current!, device: c.device!, sas: c.sas! }),
    },
    Rejected: { type: 'final', output: { outcome: 'rejected' } },
    Expired: { type: 'final', output: { outcome: 'expired' } },
    Cancelled: { type: 'final', output: { outcome: 'cancelled' } },
    Failed: { type: 'final', output: ({ context }) => ({ outcome: 'failed', reason: context.reason! }) },
  },
  // Each final state names its outcome and declares its output; the machine hands that output on.
  output: ({ event }) => event.output as JoinerOutput,
})
