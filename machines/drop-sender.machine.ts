// The sending end of one file drop: offers a manifest to a paired device, streams the files once the receiver
// accepts, rides out lost links and restarts, and ends when the receiver has verified everything.
//
// Owns: the transfer's phase and how it ended. Bytes, offsets and the manifest are not machine state: actors/
// keeps the manifest, counts the bytes, and reads where to go on from the receiver's resume frame.
// Receives: `cmd.cancel` from the user; `link.*` facts and decoded `peer.*` frames from the drop service in
// actors/, through the node machine's `drop.forward`; `data.*` facts from the data stream; `source.*` facts about
// the files being sent (they no longer match the manifest, or cannot be read).
// Drives (emitted, performed by actors/), each with `transferId` and `deviceId`: `persist {phase}` first on every
// change of phase, `sendOffer`, `openDataStream` (from the offsets the receiver asked for; it replaces any data
// stream still open), `sendCancel`, `sendFailure {reason, message?, file?}`. Nothing is emitted before the first
// event: actors/ writes the transfer's first record before `cmd.startDrop`, and persists the output once the
// machine is done.
// Every wait ends: Offering on `offer`, AwaitingConsent on `consent`, Sending on `stall` while streaming and on
// `verify` once all is sent, WaitingForPeer on `reconnect`; each also on a failure. The finals ignore everything.
import { assign, emit, setup } from 'xstate'
import {
  cancelledBy,
  type DropContext,
  type DropInput,
  type DropOutput,
  dropDelays,
  endings,
  failAndTell,
  into,
  isResumed,
  outcomes,
  peerLost,
  recordEnd,
  type ToldFailure,
  type TransferEffect,
  toldFailure,
  transferEffect,
} from './drop.ts'

export type DropSenderEvent =
  // from the user
  | { type: 'cmd.cancel' }
  // from the drop service: the sealed link to the device is up (at the spawn, or when it comes up), or lost
  | { type: 'link.up' }
  | { type: 'link.lost' }
  // from the receiver, decoded by actors/
  | { type: 'peer.accepted' }
  | { type: 'peer.rejected' }
  | { type: 'peer.resumed' }
  | { type: 'peer.completed' }
  | { type: 'peer.cancelled' }
  | ({ type: 'peer.failed' } & ToldFailure)
  | { type: 'peer.misbehaved'; message?: string }
  // from the data stream: some bytes moved (at most a few times a second), the last byte went out
  | { type: 'data.progressed' }
  | { type: 'data.allSent' }
  // from the files being sent (`file`: manifest index)
  | { type: 'source.changed'; file?: number }
  | { type: 'source.failed'; file?: number; message?: string }

export type DropSenderPhase = 'Offering' | 'AwaitingConsent' | 'Sending' | 'WaitingForPeer'

export type DropSenderEffect =
  | ({ type: 'persist'; phase: DropSenderPhase } & TransferEffect)
  | ({ type: 'sendOffer' } & TransferEffect)
  | ({ type: 'openDataStream' } & TransferEffect)
  | ({ type: 'sendCancel' } & TransferEffect)
  | ({ type: 'sendFailure' } & ToldFailure & TransferEffect)

export type DropSenderInput = DropInput
export type DropSenderOutput = DropOutput

export const dropSenderMachine = setup({
  types: {
    input: {} as DropSenderInput,
    context: {} as DropContext,
    events: {} as DropSenderEvent,
    emitted: {} as DropSenderEffect,
    output: {} as DropSenderOutput,
  },
  actions: {
    recordFailure: assign(recordEnd.failure),
    recordPeerFailure: assign(recordEnd.peerFailure),
    recordCanceller: assign(recordEnd.canceller),
    // effects
    persist: emit(({ context }, params: { phase: DropSenderPhase }) => ({
      type: 'persist' as const,
      ...transferEffect(context),
      phase: params.phase,
    })),
    sendOffer: emit(({ context }) => ({ type: 'sendOffer' as const, ...transferEffect(context) })),
    openDataStream: emit(({ context }) => ({ type: 'openDataStream' as const, ...transferEffect(context) })),
    sendCancel: emit(({ context }) => ({ type: 'sendCancel' as const, ...transferEffect(context) })),
    sendFailure: emit(({ context }) => ({
      type: 'sendFailure' as const,
      ...transferEffect(context),
      ...toldFailure(context.failure!),
    })),
  },
  guards: {
    isResumed,
  },
  delays: dropDelays,
}).createMachine({
  id: 'dropSender',
  context: ({ input }) => ({ ...input }),
  initial: 'Starting',
  // Once the offer is out, `endings` (cmd.cancel, peer.cancelled, peer.failed, peer.misbehaved) and
  // `source.changed` end every phase; they are repeated per state, never put on the root, so that a finished
  // transfer stays finished.
  states: {
    // A transfer re-spawned after a restart was accepted before it: it waits for the receiver to resume it.
    Starting: {
      always: [{ guard: 'isResumed', target: 'WaitingForPeer' }, { target: 'Offering' }],
    },
    // The offer goes out as soon as the device can be reached; until then the peer knows nothing to be told.
    Offering: {
      on: {
        'link.up': into('AwaitingConsent', 'sendOffer'),
        'cmd.cancel': { target: 'Cancelled', actions: cancelledBy('local') },
      },
      after: { offer: peerLost },
    },
    AwaitingConsent: {
      on: {
        'peer.accepted': into('Sending', 'openDataStream'),
        'peer.rejected': 'Rejected',
        'link.lost': peerLost,
        'source.changed': failAndTell('SourceChanged'),
        ...endings,
      },
      after: { consent: failAndTell('Timeout') },
    },
    Sending: {
      initial: 'Streaming',
      states: {
        // Re-entered on every progress report, which restarts `stall`.
        Streaming: {
          on: {
            'data.progressed': { target: 'Streaming', reenter: true },
            'data.allSent': 'AwaitingVerification',
          },
          after: { stall: failAndTell('Timeout', '#dropSender.Failed') },
        },
        // Everything is sent; the receiver checks it and says so.
        AwaitingVerification: {
          // the stream's last report, after its last byte
          on: { 'data.progressed': {} },
          after: { verify: failAndTell('Timeout', '#dropSender.Failed') },
        },
      },
      on: {
        'peer.completed': 'Completed',
        // The receiver lost its data stream, or restarted, and asks again from the offsets it has verified.
        'peer.resumed': { target: 'Sending', reenter: true, actions: 'openDataStream' },
        'link.lost': into('WaitingForPeer'),
        'source.changed': failAndTell('SourceChanged'),
        'source.failed': failAndTell('IoError'),
        ...endings,
      },
    },
    // The link is gone: the receiver resumes once it is back. A receiver that finished checking meanwhile says
    // so on the next link instead.
    WaitingForPeer: {
      on: {
        'peer.resumed': into('Sending', 'openDataStream'),
        'peer.completed': 'Completed',
        // the receiver resumes once it sees the link back: this side waits for it to ask
        'link.up': {},
        // a report from the stream that the lost link overtook
        'data.progressed': {},
        'source.changed': failAndTell('SourceChanged'),
        ...endings,
      },
      after: { reconnect: peerLost },
    },
    ...outcomes,
  },
  output: ({ event }) => event.output as DropSenderOutput,
})
