// Room `drop/`: sending files and folders to a paired device, with its consent, verified and resumable
// (ARCHITECTURE.md "File drop"). It owns the drop service (drop-service.ts: the shell of the `drop:<transferId>`
// sender and receiver machines, the control messages and `/sdnet/drop/1.0.0` data streams), the two ends of a data
// stream (sending.ts reads and hashes files, receiving.ts checks and writes them), the receive folder (the only code
// that writes there), the transfer records that let a drop survive a restart, and progress. It talks to the node
// machine (spawning and feeding transfers), to paired devices through the connection service (`connections/`:
// sealed control messages, whether a link is up), to libp2p through `transport/`, and reads paired devices from
// `store/`.
export type {
  DropApi,
  DropFileResult,
  DropOffer,
  DropProgress,
  DropResult,
  DropSummary,
  DropTransfer,
  TransferEvent,
} from './api.ts'
export { DEFAULT_DROP_TIMEOUTS, DropService, type DropServiceInit } from './drop-service.ts'
