// What the parts of the drop service share (drop-service.ts, outgoing.ts, incoming.ts): the live state of one
// transfer beside its machine, the context the parts work in, and how a transfer is summed up and ends.
import type { PeerId } from '@libp2p/interface'
import type { AnyActorRef } from 'xstate'
import type { DropOutput, DropTimeouts } from '../../machines/drop.ts'
import type { ChunkFrame, DropMessage } from '../../transport/drop-codec.ts'
import type { ManifestLimits } from '../../transport/drop-manifest.ts'
import type { SdnetLibp2p } from '../../transport/libp2p-node.ts'
import type { ConnectionService } from '../connections/index.ts'
import type { EventBus } from '../events.ts'
import type { Logger } from '../logger.ts'
import type { PairedDevice } from '../store/index.ts'
import type { DropResult, DropSummary, DropTransfer, TransferEvent } from './api.ts'
import { fileResults, type Progress } from './progress.ts'
import type { ReceiveFolder } from './receive-folder.ts'
import type { ReceiveSink } from './receiving.ts'
import type { SendPump, StartPoint } from './sending.ts'
import type { TransferRecord, TransferRecords } from './transfer-record.ts'

export const DEFAULT_DROP_TIMEOUTS: DropTimeouts = {
  offer: 30_000,
  consent: 10 * 60_000,
  stall: 30_000,
  verify: 10 * 60_000,
  reconnect: 24 * 3600_000,
}

/** How long a data stream may take to open (sender) or to bring its `open` frame (receiver). */
export const OPEN_TIMEOUT_MS = 5_000

export interface DropServiceInit {
  libp2p: SdnetLibp2p
  dataDir: string
  /** The receive folder. */
  dir: string
  /** Whether this paired device's drops are accepted without asking. */
  acceptFrom: (device: PairedDevice) => boolean
  connections: ConnectionService
  devices: () => PairedDevice[]
  node: {
    send(event: { type: string; [key: string]: unknown }): void
    child(id: string): AnyActorRef | undefined
  }
  events: EventBus
  log: Logger
  timeouts: DropTimeouts
  limits?: Partial<ManifestLimits>
  /** Tests that play a hostile sender only: rewrites each chunk frame this node sends. Never set in production. */
  rewriteChunk?: (frame: ChunkFrame) => ChunkFrame
}

export interface Live {
  record: TransferRecord
  token: Uint8Array
  device: PairedDevice
  ref: AnyActorRef
  state: string
  progress: Progress
  listeners: Set<(event: TransferEvent) => void>
  result: PromiseWithResolvers<DropResult>
  effects: Promise<void>
  /** Why the peer refused or stopped, as its message said. */
  peerMessage?: { reason?: string; message: string }
  // sender
  pump?: SendPump
  start?: StartPoint
  hashes: Map<number, Uint8Array>
  // receiver
  folder?: ReceiveFolder
  sink?: ReceiveSink
  checkpointAt: number
  /** File bytes sent or received since this daemon started. */
  moved: number
  /** Counts `openDataStream` effects, so that a retry of an older one gives way. */
  opened: number
}

export type Effect = {
  type: string
  phase?: string
  file?: number
  scope?: 'chunk' | 'file'
  reason?: string
  message?: string
}

/** What the service hands to its outgoing and incoming halves. */
export interface DropContext {
  init: DropServiceInit
  records: TransferRecords
  live: Map<string, Live>
  forward(live: Live, event: { type: string; [key: string]: unknown }): void
  tell(live: Live, event: TransferEvent): void
  progressed(live: Live, bytes: number): void
  deviceByPeer(peer: PeerId): PairedDevice | undefined
  spawn(record: TransferRecord, token: Uint8Array, device: PairedDevice, resumed: boolean): Live
  sendMessage(live: Live, message: DropMessage): Promise<void>
  /** The API's answers, for the offers handed to `on('offer')` listeners. */
  accept(transferId: string): DropTransfer
  reject(transferId: string): void
}

export function summaryOf(live: Live): DropSummary {
  const { record, device, progress } = live
  return {
    transferId: record.transferId,
    direction: record.role === 'sender' ? 'send' : 'receive',
    deviceId: device.id,
    name: device.name,
    fingerprint: device.fingerprint,
    files: progress.filesTotal,
    bytes: progress.bytesTotal,
    bytesDone: progress.bytesDone,
    state: live.state,
    paths: record.manifest.entries.slice(0, 10).map((e) => e.path),
    createdAt: record.createdAt,
  }
}

export function resultOf(live: Live, output: DropOutput): DropResult {
  const { transferId } = live.record
  const peer = live.peerMessage
  switch (output.outcome) {
    case 'completed': {
      const hashes = live.record.role === 'sender' ? live.hashes : hashMap(live.record.hashes ?? {})
      const files = fileResults(live.record, hashes, live.folder)
      return {
        outcome: 'completed',
        transferId,
        files,
        bytes: live.progress.bytesTotal,
        bytesMoved: live.moved,
      }
    }
    case 'rejected':
      return {
        outcome: 'rejected',
        transferId,
        reason: peer?.reason ?? 'Declined',
        message: peer?.message ?? `${live.device.name} declined the drop.`,
      }
    case 'cancelled':
      return {
        outcome: 'cancelled',
        transferId,
        by: output.by,
        message:
          output.by === 'local' ? 'The drop was cancelled here.' : `${live.device.name} cancelled the drop.`,
      }
    case 'failed': {
      const file = output.file !== undefined ? live.record.manifest.entries[output.file]?.path : undefined
      return {
        outcome: 'failed',
        transferId,
        reason: output.reason,
        message: failureText(live, output),
        ...(file !== undefined && { file }),
      }
    }
  }
}

function failureText(live: Live, output: Extract<DropOutput, { outcome: 'failed' }>): string {
  const who = output.by === 'peer' ? live.device.name : 'this device'
  const detail = output.message ?? live.peerMessage?.message
  const base: Record<string, string> = {
    Timeout: 'the transfer stalled or went unanswered for too long',
    PeerLost: `${live.device.name} could not be reached`,
    SourceChanged: 'a file changed on the sending device while it was sent; send it again',
    Corrupted: 'a file failed its hash check twice',
    DiskFull: 'the receiving disk is full',
    IoError: 'a file could not be read or written',
    ProtocolError: 'the other device broke the drop protocol',
  }
  return `${base[output.reason] ?? output.reason} (reported by ${who})${detail !== undefined ? `: ${detail}` : ''}.`
}

export function base64(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'base64'))
}

function hashMap(hashes: Record<string, string>): Map<number, Uint8Array> {
  return new Map(Object.entries(hashes).map(([i, h]) => [Number(i), base64(h)]))
}
