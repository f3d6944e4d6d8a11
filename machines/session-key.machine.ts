// The key schedule of one link between paired devices: the hello/welcome handshake, then re-keys by frame count
// and by time. It decides *when* keys change; actors/ does the cryptography and reports verified facts.
//
// Owns: this side's role on the link, the current key epoch, and why the schedule ended.
// Receives: `peer.*` frames that actors/ decoded and verified (or found badly signed), `keys.framesSent` from the
// link's sealer, `link.closed`. The connection machine invokes it as `keys` while a link is up and forwards these.
// Drives (emitted, performed by actors/): `sendHello`, `sendWelcome`, `sendRekey`, `sendRekeyAck`, `installKeys`.
// Tells its parent `handshake.done` once the first keys are installed. The opener's `sendHello` is emitted as
// the actor starts: subscribe to the child before it starts (the connection's `openHandshake` comes first).
// Every waiting state ends on a timer (`handshake`, `rekey`); Established waits for the next re-key by design.
// Late events in Failed and Closed are no-ops: they are final and declare no transitions.
import { assign, emit, sendParent, setup } from 'xstate'

export type SessionKeyRole = 'opener' | 'acceptor'

export type SessionKeyInput = {
  role: SessionKeyRole
  /** Re-key once this many frames were sent under the current keys. */
  rekeyAfterFrames: number
  /** Milliseconds. `rekeyInterval`: re-key after this long under the same keys. */
  timeouts: { handshake: number; rekey: number; rekeyInterval: number }
}

export type SessionKeyEvent =
  // from the remote device, decoded and verified by actors/
  | { type: 'peer.helloVerified' }
  | { type: 'peer.welcomeVerified' }
  | { type: 'peer.rekeyVerified' }
  | { type: 'peer.rekeyAckVerified' }
  | { type: 'peer.badSignature' }
  // from the link's sealer: frames sent under the current keys
  | { type: 'keys.framesSent'; count: number }
  // from the transport
  | { type: 'link.closed' }

/** What the schedule tells the machine that invoked it. */
export type SessionKeyParentEvent = { type: 'handshake.done' }

export type SessionKeyEffect =
  | { type: 'sendHello' }
  | { type: 'sendWelcome' }
  | { type: 'sendRekey'; epoch: number }
  | { type: 'sendRekeyAck'; epoch: number }
  | { type: 'installKeys'; epoch: number }

export type SessionKeyFailure = 'Timeout' | 'BadSignature'

export type SessionKeyOutput = { outcome: 'closed' } | { outcome: 'failed'; reason: SessionKeyFailure }

type SessionKeyContext = SessionKeyInput & {
  /** The epoch of the installed keys: 0 from the handshake on, one more per re-key. */
  epoch: number
  reason?: SessionKeyFailure
}

// References to the parameterized actions below, with their params.
const fail = (reason: SessionKeyFailure) => ({ type: 'recordFailure', params: { reason } }) as const
// Answering a re-key: ack it, then switch to the keys it proposed.
const acceptRekey = ['sendRekeyAck', 'advanceEpoch', 'installKeys'] as const

export const sessionKeyMachine = setup({
  types: {
    input: {} as SessionKeyInput,
    context: {} as SessionKeyContext,
    events: {} as SessionKeyEvent,
    emitted: {} as SessionKeyEffect,
    output: {} as SessionKeyOutput,
  },
  actions: {
    advanceEpoch: assign(({ context }) => ({ epoch: context.epoch + 1 })),
    recordFailure: assign((_, params: { reason: SessionKeyFailure }) => params),
    reportHandshakeDone: sendParent({ type: 'handshake.done' } satisfies SessionKeyParentEvent),
    // effects
    sendHello: emit({ type: 'sendHello' as const }),
    sendWelcome: emit({ type: 'sendWelcome' as const }),
    sendRekey: emit(({ context }) => ({ type: 'sendRekey' as const, epoch: context.epoch + 1 })),
    sendRekeyAck: emit(({ context }) => ({ type: 'sendRekeyAck' as const, epoch: context.epoch + 1 })),
    installKeys: emit(({ context }) => ({ type: 'installKeys' as const, epoch: context.epoch })),
  },
  guards: {
    isOpener: ({ context }) => context.role === 'opener',
    isRekeyDue: ({ context, event }) =>
      event.type === 'keys.framesSent' && event.count >= context.rekeyAfterFrames,
  },
  delays: {
    handshake: ({ context }) => context.timeouts.handshake,
    rekey: ({ context }) => context.timeouts.rekey,
    rekeyInterval: ({ context }) => context.timeouts.rekeyInterval,
  },
}).createMachine({
  id: 'sessionKeys',
  context: ({ input }) => ({ ...input, epoch: 0 }),
  initial: 'Starting',
  // `peer.badSignature` and `link.closed` end every non-final state; they are repeated per state, never put on
  // the root, so that a finished schedule stays finished.
  states: {
    // The role decides who speaks first; nothing waits here.
    Starting: {
      always: [
        { guard: 'isOpener', target: 'AwaitingWelcome', actions: 'sendHello' },
        { target: 'AwaitingHello' },
      ],
    },
    AwaitingHello: {
      on: {
        'peer.helloVerified': {
          target: 'Established',
          actions: ['sendWelcome', 'installKeys', 'reportHandshakeDone'],
        },
        'peer.badSignature': { target: 'Failed', actions: fail('BadSignature') },
        'link.closed': 'Closed',
      },
      after: { handshake: { target: 'Failed', actions: fail('Timeout') } },
    },
    AwaitingWelcome: {
      on: {
        'peer.welcomeVerified': { target: 'Established', actions: ['installKeys', 'reportHandshakeDone'] },
        'peer.badSignature': { target: 'Failed', actions: fail('BadSignature') },
        'link.closed': 'Closed',
      },
      after: { handshake: { target: 'Failed', actions: fail('Timeout') } },
    },
    // Entered again after every change of keys, so `rekeyInterval` counts from the newest keys.
    Established: {
      on: {
        'keys.framesSent': { guard: 'isRekeyDue', target: 'Rekeying', actions: 'sendRekey' },
        'peer.rekeyVerified': { target: 'Established', reenter: true, actions: acceptRekey },
        'peer.badSignature': { target: 'Failed', actions: fail('BadSignature') },
        'link.closed': 'Closed',
      },
      after: { rekeyInterval: { target: 'Rekeying', actions: 'sendRekey' } },
    },
    Rekeying: {
      on: {
        'peer.rekeyAckVerified': { target: 'Established', actions: ['advanceEpoch', 'installKeys'] },
        // Both sides asked at once. The opener's re-key wins: the opener ignores the acceptor's (the acceptor
        // will ack the opener's), the acceptor answers the opener's and drops its own.
        'peer.rekeyVerified': [{ guard: 'isOpener' }, { target: 'Established', actions: acceptRekey }],
        'peer.badSignature': { target: 'Failed', actions: fail('BadSignature') },
        'link.closed': 'Closed',
      },
      after: { rekey: { target: 'Failed', actions: fail('Timeout') } },
    },
    Failed: { type: 'final', output: ({ context }) => ({ outcome: 'failed', reason: context.reason! }) },
    Closed: { type: 'final', output: { outcome: 'closed' } },
  },
  // Each final state declares its output; the machine hands that output on.
  output: ({ event }) => event.output as SessionKeyOutput,
})
