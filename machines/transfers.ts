// The node machine's table of file drops (`drop:<transferId>` children, one per transfer and side): pure lookups,
// kept here so that node.machine.ts stays a readable transition table.
import type { ActorRefFrom } from 'xstate'
import type { DropInput } from './drop.ts'
import type { DropReceiverEvent, dropReceiverMachine } from './drop-receiver.machine.ts'
import type { DropSenderEvent, dropSenderMachine } from './drop-sender.machine.ts'

export type DropRole = 'sender' | 'receiver'

/** What `cmd.startDrop` carries: which side this node is, and the transfer's input. */
export type DropSpec = { role: DropRole } & DropInput

/** What `drop.forward` carries to a transfer; a sender ignores the receiver's events and the other way round. */
export type DropEvent = DropSenderEvent | DropReceiverEvent

/** Picks the fields one by one: the spec often arrives as an event, whose `type` and `role` must not become context. */
export const dropInput = (spec: DropSpec): DropInput => ({
  transferId: spec.transferId,
  deviceId: spec.deviceId,
  ...(spec.resumed !== undefined && { resumed: spec.resumed }),
  timeouts: spec.timeouts,
})

export type Transfer =
  | { role: 'sender'; ref: ActorRefFrom<typeof dropSenderMachine> }
  | { role: 'receiver'; ref: ActorRefFrom<typeof dropReceiverMachine> }

/** Keyed by transfer id; the child's actor id is `drop:<transferId>`. */
export type TransferTable = Record<string, Transfer>

export const dropChildId = (transferId: string) => `drop:${transferId}`

// Transfer ids come from outside (a peer's offer names one): look them up as own keys only.
export const transferOf = (transfers: TransferTable, transferId: string): Transfer | undefined =>
  Object.hasOwn(transfers, transferId) ? transfers[transferId] : undefined

export function withoutTransfer(transfers: TransferTable, transferId: string): TransferTable {
  const { [transferId]: _finished, ...rest } = transfers
  return rest
}
