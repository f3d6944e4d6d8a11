// The receiving end of one file drop: holds an offer until the user accepts or rejects it, takes the files in,
// asks again for what fails its check, resumes after lost links and restarts, and ends once the final check
// has put every file in place.
//
// Owns: the transfer's phase, which files already failed a check once, and how it ended. Bytes, offsets and the
// manifest are not machine state: actors/ checks every chunk and file hash, counts the bytes and persists the
// verified offsets that a resume frame carries.
// Receives: `cmd.*` from the user (or from actors/ for a device whose drops are accepted without asking, once
// it has checked the free space); `link.*` facts and decoded `peer.*` frames from the drop service in actors/,
// through the node machine's `drop.forward`; `data.*` facts from the data stream; `disk.*` facts from the
// receive folder; `verify.*` from the final check.
// Drives (emitted, performed by actors/), each with `transferId` and `deviceId`: `persist {phase}` first on every
// change of phase, `sendAccept`, `sendReject`, `sendResume` (with the verified offsets actors/ persisted),
// `sendRefetch {file, scope}`, `verifyFiles`, `sendComplete`, `sendCancel`, `sendFailure {reason, message?,
// file?}`, and `removeTemp` on the way into Cancelled or Failed. Nothing is emitted before the first event:
// actors/ writes the transfer's first record before `cmd.startDrop`, and persists the output once the machine is
// done.
// Every wait ends: Offered on `consent`, Receiving on `stall`, Verifying on `verify`, WaitingForPeer on
// `reconnect`; each also on a failure. The finals ignore everything.
import { assertEvent, assign, emit, setup } from 'xstate'
import {
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

export type DropReceiverEvent =
  // from the user
  | { type: 'cmd.accept' }
  | { type: 'cmd.reject' }
  | { type: 'cmd.cancel' }
  // from the drop service: the sealed link to the device
  | { type: 'link.up' }
  | { type: 'link.lost' }
  // from the sender, decoded by actors/
  | { type: 'peer.cancelled' }
  | ({ type: 'peer.failed' } & ToldFailure)
  | { type: 'peer.misbehaved'; message?: string }
  // from the data stream (`file`: manifest index): some bytes were written (at most a few times a second), a
  // chunk or a whole file failed its hash, every byte of the manifest is in
  | { type: 'data.progressed' }
  | { type: 'data.chunkFailed'; file: number }
  | { type: 'data.fileFailed'; file: number }
  | { type: 'data.allReceived' }
  // from the receive folder
  | { type: 'disk.full'; message?: string }
  | { type: 'disk.failed'; message?: string }
  // from the final check that `verifyFiles` runs
  | { type: 'verify.passed' }
  | { type: 'verify.failed'; file?: number; message?: string }

export type DropReceiverPhase = 'Offered' | 'Receiving' | 'WaitingForPeer' | 'Verifying'

export type DropReceiverEffect =
  | ({ type: 'persist'; phase: DropReceiverPhase } & TransferEffect)
  | ({ type: 'sendAccept' } & TransferEffect)
  | ({ type: 'sendReject' } & TransferEffect)
  | ({ type: 'sendResume' } & TransferEffect)
  | ({ type: 'sendRefetch'; file: number; scope: 'chunk' | 'file' } & TransferEffect)
  | ({ type: 'verifyFiles' } & TransferEffect)
  | ({ type: 'sendComplete' } & TransferEffect)
  | ({ type: 'sendCancel' } & TransferEffect)
  | ({ type: 'sendFailure' } & ToldFailure & TransferEffect)
  | ({ type: 'removeTemp' } & TransferEffect)

export type DropReceiverInput = DropInput
export type DropReceiverOutput = DropOutput

type DropReceiverContext = DropContext & {
  /** Manifest indexes of the files that failed a check once: a second failure fails the transfer. */
  failedFiles: number[]
}

// A chunk or a file that fails its check is fetched again, once.
const checkFailed = [
  { guard: 'hasFailedBefore', ...failAndTell('Corrupted') },
  { actions: ['recordFileFailure', 'sendRefetch'] },
] as const

export const dropReceiverMachine = setup({
  types: {
    input: {} as DropReceiverInput,
    context: {} as DropReceiverContext,
    events: {} as DropReceiverEvent,
    emitted: {} as DropReceiverEffect,
    output: {} as DropReceiverOutput,
  },
  actions: {
    recordFailure: assign(recordEnd.failure),
    recordPeerFailure: assign(recordEnd.peerFailure),
    recordCanceller: assign(recordEnd.canceller),
    recordFileFailure: assign(({ context, event }) => {
      assertEvent(event, ['data.chunkFailed', 'data.fileFailed'])
      return { failedFiles: [...context.failedFiles, event.file] }
    }),
    // effects
    persist: emit(({ context }, params: { phase: DropReceiverPhase }) => ({
      type: 'persist' as const,
      ...transferEffect(context),
      phase: params.phase,
    })),
    sendAccept: emit(({ context }) => ({ type: 'sendAccept' as const, ...transferEffect(context) })),
    sendReject: emit(({ context }) => ({ type: 'sendReject' as const, ...transferEffect(context) })),
    sendResume: emit(({ context }) => ({ type: 'sendResume' as const, ...transferEffect(context) })),
    sendRefetch: emit(({ context, event }) => {
      assertEvent(event, ['data.chunkFailed', 'data.fileFailed'])
      const scope = event.type === 'data.chunkFailed' ? ('chunk' as const) : ('file' as const)
      return { type: 'sendRefetch' as const, ...transferEffect(context), file: event.file, scope }
    }),
    verifyFiles: emit(({ context }) => ({ type: 'verifyFiles' as const, ...transferEffect(context) })),
    sendComplete: emit(({ context }) => ({ type: 'sendComplete' as const, ...transferEffect(context) })),
    sendCancel: emit(({ context }) => ({ type: 'sendCancel' as const, ...transferEffect(context) })),
    sendFailure: emit(({ context }) => ({
      type: 'sendFailure' as const,
      ...transferEffect(context),
      ...toldFailure(context.failure!),
    })),
    removeTemp: emit(({ context }) => ({ type: 'removeTemp' as const, ...transferEffect(context) })),
  },
  guards: {
    isResumed,
    hasFailedBefore: ({ context, event }) =>
      (event.type === 'data.chunkFailed' || event.type === 'data.fileFailed') &&
      context.failedFiles.includes(event.file),
  },
  delays: dropDelays,
}).createMachine({
  id: 'dropReceiver',
  context: ({ input }) => ({ ...input, failedFiles: [] }),
  initial: 'Starting',
  // `endings` (cmd.cancel, peer.cancelled, peer.failed, peer.misbehaved) end every phase; they are repeated per
  // state, never put on the root, so that a finished transfer stays finished.
  states: {
    // A transfer re-spawned after a restart was accepted before it: it resumes once the link is up.
    Starting: {
      always: [{ guard: 'isResumed', target: 'WaitingForPeer' }, { target: 'Offered' }],
    },
    Offered: {
      on: {
        'cmd.accept': into('Receiving', 'sendAccept'),
        'cmd.reject': { target: 'Rejected', actions: 'sendReject' },
        'link.lost': peerLost,
        // too little free space for the offer, or a receive folder that cannot be made, found when accepting
        'disk.full': failAndTell('DiskFull'),
        'disk.failed': failAndTell('IoError'),
        ...endings,
      },
      after: { consent: failAndTell('Timeout') },
    },
    // Re-entered on every progress report, which restarts `stall`.
    Receiving: {
      on: {
        'data.progressed': { target: 'Receiving', reenter: true },
        'data.chunkFailed': checkFailed,
        'data.fileFailed': checkFailed,
        'data.allReceived': into('Verifying', 'verifyFiles'),
        'link.lost': into('WaitingForPeer'),
        'disk.full': failAndTell('DiskFull'),
        'disk.failed': failAndTell('IoError'),
        ...endings,
      },
      after: { stall: failAndTell('Timeout') },
    },
    // The final check is local: a lost link does not stop it, and the sender hears the verdict on the next one.
    Verifying: {
      on: {
        'verify.passed': { target: 'Completed', actions: 'sendComplete' },
        'verify.failed': failAndTell('Corrupted'),
        // the stream's last report, after its last byte; and the link, which the check does not need
        'data.progressed': {},
        'link.lost': {},
        'link.up': {},
        'disk.full': failAndTell('DiskFull'),
        'disk.failed': failAndTell('IoError'),
        ...endings,
      },
      after: { verify: failAndTell('Timeout') },
    },
    // The link is gone: once it is back, this side asks the sender to go on from the verified offsets.
    WaitingForPeer: {
      on: {
        'link.up': into('Receiving', 'sendResume'),
        // a report from the stream that the lost link overtook
        'data.progressed': {},
        ...endings,
      },
      after: { reconnect: peerLost },
    },
    ...outcomes,
    Cancelled: { ...outcomes.Cancelled, entry: 'removeTemp' },
    Failed: { ...outcomes.Failed, entry: 'removeTemp' },
  },
  output: ({ event }) => event.output as DropReceiverOutput,
})
