// The node's event stream (ARCHITECTURE.md "Events"): what `node.on()` and `sdnet events` deliver.

/** A device as pairing events show it: who it says it is, and the peer id Noise authenticated. */
export interface DeviceSummary {
  id: string
  name: string
  fingerprint: string
  peerId: string
}

export type NodeEvent =
  | { type: 'PeerDiscovered'; at: number; peerId: string }
  | { type: 'PeerDisconnected'; at: number; peerId: string }
  | { type: 'PairingRequest'; at: number; sessionId: string; device: DeviceSummary; sas: string }
  | { type: 'PairingCompleted'; at: number; sessionId: string; device: DeviceSummary }
  | { type: 'PairingFailed'; at: number; sessionId: string; reason: string }
  | { type: 'ConnectionEstablished'; at: number; deviceId: string; name: string }
  | { type: 'ConnectionLost'; at: number; deviceId: string; name: string }
  | { type: 'MessageReceived'; at: number; deviceId: string; protocol: string; size: number }
  | { type: 'DeviceRevoked'; at: number; deviceId: string; name: string; by: 'local' | 'peer' }
  | {
      type: 'DropOffered'
      at: number
      transferId: string
      deviceId: string
      name: string
      fingerprint: string
      files: number
      bytes: number
      paths: string[]
    }
  | { type: 'DropAccepted'; at: number; transferId: string; deviceId: string; name: string }
  | ({ type: 'DropProgress'; at: number } & DropProgressFields)
  | {
      type: 'DropCompleted'
      at: number
      transferId: string
      deviceId: string
      name: string
      files: number
      bytes: number
    }
  | {
      type: 'DropFailed'
      at: number
      transferId: string
      deviceId: string
      name: string
      outcome: 'rejected' | 'cancelled' | 'failed'
      reason: string
      message: string
    }
  | { type: 'StateChanged'; at: number; actor: string; from: string | null; event: string; to: string }

/** A drop's progress (the same fields as `DropProgress` of the drop API). */
export interface DropProgressFields {
  transferId: string
  bytesDone: number
  bytesTotal: number
  filesDone: number
  filesTotal: number
  rate: number
  etaMs: number | null
}

export type NodeEventType = NodeEvent['type']
type Listener = (event: NodeEvent) => void

/** Without the `at` field, which the bus stamps. */
export type NodeEventInput = NodeEvent extends infer E ? (E extends NodeEvent ? Omit<E, 'at'> : never) : never

export class EventBus {
  readonly #listeners = new Map<NodeEventType | '*', Set<Listener>>()
  readonly #now: () => number

  constructor(now: () => number = Date.now) {
    this.#now = now
  }

  on(type: NodeEventType | '*', listener: Listener): () => void {
    let set = this.#listeners.get(type)
    if (set === undefined) {
      set = new Set()
      this.#listeners.set(type, set)
    }
    set.add(listener)
    return () => set.delete(listener)
  }

  emit(input: NodeEventInput): void {
    // Called for every message received: with nobody listening it costs two lookups.
    if (!this.#listeners.get(input.type)?.size && !this.#listeners.get('*')?.size) return
    const event = { ...input, at: this.#now() } as NodeEvent
    for (const key of [event.type, '*'] as const) {
      for (const listener of this.#listeners.get(key) ?? []) {
        // A listener that throws must not stop the others, nor the actor that emitted.
        try {
          listener(event)
        } catch {
          // listeners own their errors
        }
      }
    }
  }
}
