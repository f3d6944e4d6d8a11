// What the two ends of a file drop share (drop-sender.machine.ts, drop-receiver.machine.ts): their input, how a
// transfer ends, the bodies of the actions, guards and delays both declare under the same names, and the
// transitions both take the same way. Pure functions and data.
import { type AnyEventObject, assertEvent } from 'xstate'

/** Milliseconds. */
export type DropTimeouts = {
  /** The sender's only: how long writing the offer to the sealed link may take. */
  offer: number
  /** How long the receiver may take to accept or reject. */
  consent: number
  /** How long Sending / Receiving may go without a single byte moving. */
  stall: number
  /** How long the receiver's final check may take; the sender waits as long for its verdict once all is sent. */
  verify: number
  /** How long WaitingForPeer waits for the device to come back (longer than `verify`). */
  reconnect: number
}

export type DropInput = {
  transferId: string
  /** The paired device at the other end. */
  deviceId: string
  /** Re-spawned after a restart from a persisted transfer that had been accepted: it starts in WaitingForPeer. */
  resumed?: boolean
  timeouts: DropTimeouts
}

export type DropFailureReason =
  | 'Timeout'
  | 'PeerLost'
  | 'SourceChanged'
  | 'Corrupted'
  | 'DiskFull'
  | 'IoError'
  | 'ProtocolError'

/** Which end decided: this one, or the device at the other end. */
export type DropParty = 'local' | 'peer'

/** `file`: the manifest index of the file concerned, when one is. */
export type DropFailure = { reason: DropFailureReason; by: DropParty; message?: string; file?: number }

export type DropOutput =
  | { outcome: 'completed' }
  | { outcome: 'rejected' }
  | { outcome: 'cancelled'; by: DropParty }
  | ({ outcome: 'failed' } & DropFailure)

/** What every effect of a drop machine carries. */
export type TransferEffect = { transferId: string; deviceId: string }

export type DropContext = DropInput & { failure?: DropFailure; cancelledBy?: DropParty }

export const transferEffect = (context: DropInput): TransferEffect => ({
  transferId: context.transferId,
  deviceId: context.deviceId,
})

/** What `sendFailure` tells the peer, and `peer.failed` reports: a failure without who decided it. */
export type ToldFailure = Omit<DropFailure, 'by'>

/** A failure; its message and file come from the event that reported it, when it has them. */
function failureOf(reason: DropFailureReason, by: DropParty, event: AnyEventObject): DropFailure {
  const { message, file } = event as { message?: unknown; file?: unknown }
  return {
    reason,
    by,
    ...(typeof message === 'string' && { message }),
    ...(typeof file === 'number' && { file }),
  }
}

/** The recorded failure as the peer is told it. */
export const toldFailure = ({ by: _, ...told }: DropFailure): ToldFailure => told

// What both machines declare the same way, as `assign(...)`, guards and delays in their `setup()`. (Their
// `emit(...)` expressions stay in each machine: `emit` infers the machine's context from them.)

/** How a transfer's end is recorded in its context. */
export const recordEnd = {
  failure: ({ event }: { event: AnyEventObject }, params: { reason: DropFailureReason }) => ({
    failure: failureOf(params.reason, 'local', event),
  }),
  peerFailure: ({ event }: { event: AnyEventObject }) => {
    assertEvent(event, 'peer.failed')
    return { failure: failureOf(event.reason, 'peer', event) }
  },
  canceller: (_: unknown, params: { by: DropParty }) => ({ cancelledBy: params.by }),
}

/** Every timeout of the input, by name. */
export const dropDelays = {
  offer: ({ context }: { context: DropInput }) => context.timeouts.offer,
  consent: ({ context }: { context: DropInput }) => context.timeouts.consent,
  stall: ({ context }: { context: DropInput }) => context.timeouts.stall,
  verify: ({ context }: { context: DropInput }) => context.timeouts.verify,
  reconnect: ({ context }: { context: DropInput }) => context.timeouts.reconnect,
}

export const isResumed = ({ context }: { context: DropInput }) => context.resumed === true

// References to the actions both machines declare, with their params.
const recordFailure = (reason: DropFailureReason) => ({ type: 'recordFailure', params: { reason } }) as const
export const cancelledBy = (by: DropParty) => ({ type: 'recordCanceller', params: { by } }) as const

/** Into a new phase: the actor persists it before it performs the phase's first effects. */
export const into = <const P extends string, const E extends readonly string[]>(phase: P, ...effects: E) =>
  ({ target: phase, actions: [{ type: 'persist', params: { phase } }, ...effects] }) as const

/** Fails for a reason found on this side, and tells the peer why. */
export const failAndTell = <const T extends string = 'Failed'>(reason: DropFailureReason, target?: T) =>
  ({ target: target ?? 'Failed', actions: [recordFailure(reason), 'sendFailure'] }) as const

/** The device is gone: there is nobody to tell. */
export const peerLost = { target: 'Failed', actions: recordFailure('PeerLost') } as const

/** How every phase that can hear from the peer ends: either side cancels, the peer fails or breaks the protocol. */
export const endings = {
  'cmd.cancel': { target: 'Cancelled', actions: [cancelledBy('local'), 'sendCancel'] },
  'peer.cancelled': { target: 'Cancelled', actions: cancelledBy('peer') },
  'peer.failed': { target: 'Failed', actions: 'recordPeerFailure' },
  'peer.misbehaved': failAndTell('ProtocolError'),
} as const

/** The final states; each declares its output, which the machine hands on. */
export const outcomes = {
  Completed: { type: 'final', output: { outcome: 'completed' } },
  Rejected: { type: 'final', output: { outcome: 'rejected' } },
  Cancelled: {
    type: 'final',
    output: ({ context }: { context: DropContext }): DropOutput => ({
      outcome: 'cancelled',
      by: context.cancelledBy!,
    }),
  },
  Failed: {
    type: 'final',
    output: ({ context }: { context: DropContext }): DropOutput => ({
      outcome: 'failed',
      ...context.failure!,
    }),
  },
} as const
