// The public face of file drops: what `node.drop` offers and what a transfer reports. Types only; the drop
// service (drop-service.ts) implements them.
import type { DropProgressFields } from '../events.ts'

/** How a transfer ended, as `result` resolves it (it never rejects). */
export type DropResult =
  | {
      outcome: 'completed'
      transferId: string
      files: DropFileResult[]
      bytes: number
      /** File bytes this side moved for the transfer since its daemon started, resends included. */
      bytesMoved: number
    }
  | { outcome: 'rejected'; transferId: string; reason: string; message: string }
  | { outcome: 'cancelled'; transferId: string; by: 'local' | 'peer'; message: string }
  | { outcome: 'failed'; transferId: string; reason: string; message: string; file?: string }

/** One file of a completed transfer: its path in the drop, size, and hash (hex, FileHasher: ARCHITECTURE.md). */
export interface DropFileResult {
  path: string
  size: number
  hash: string
  /** On the receiving side: where it landed. */
  savedAs?: string
}

/** How far a transfer is: the fields of the DropProgress event. */
export type DropProgress = DropProgressFields

/** What a transfer reports as it goes; `progress` comes at most 4 times a second. */
export type TransferEvent =
  | { type: 'state'; transferId: string; state: string }
  | { type: 'accepted'; transferId: string }
  | ({ type: 'progress' } & DropProgress)
  | { type: 'done'; result: DropResult }

/** A transfer in either direction, as `node.drop.list()` shows it. */
export interface DropSummary {
  transferId: string
  direction: 'send' | 'receive'
  deviceId: string
  name: string
  fingerprint: string
  files: number
  bytes: number
  bytesDone: number
  state: string
  /** The first paths of the drop (at most 10), for a person to recognise it. */
  paths: string[]
  createdAt: number
}

/** A transfer this node runs: its events and how it ends. */
export interface DropTransfer {
  transferId: string
  result: Promise<DropResult>
  on(listener: (event: TransferEvent) => void): () => void
  cancel(): void
}

/** An offer a paired device made, for this node's user to accept or reject. */
export interface DropOffer extends DropSummary {
  accept(): DropTransfer
  reject(): void
}

export interface DropApi {
  /**
   * Offers files and folders (their whole tree) to a paired device; resolves with the transfer once its record is
   * written. Rejects at once for an unknown device or a path that cannot be read. A device that is not connected
   * gets the offer when it comes back, within the offer timeout.
   */
  send(device: string, paths: readonly string[], opts?: { signal?: AbortSignal }): Promise<DropTransfer>
  /** Offers from paired devices, as they arrive. Returns an unsubscribe. */
  on(type: 'offer', listener: (offer: DropOffer) => void): () => void
  /** Transfers in progress or waiting for consent, in both directions. */
  list(): DropSummary[]
  accept(transferId: string): DropTransfer
  reject(transferId: string): void
  cancel(transferId: string): void
  /** The transfer with this id, to follow it (also one that another caller started or accepted). */
  get(transferId: string): DropTransfer
}
