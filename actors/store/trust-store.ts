// The devices this device has paired with, in `<dataDir>/devices.json`:
//   { "version": 1, "devices": [ { id, name, peerId, publicKey (base64), fingerprint, pairedAt, addresses } ] }
// Memory mirrors the file. Changes run one at a time through a promise chain, each computed from the state left by
// the one before, so concurrent calls never lose an update; each is one atomic file replacement (mode 0600).

import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CorruptTrustStoreError } from '../errors.ts'
import { type WriteStep, writeFileAtomic } from './atomic-file.ts'

export interface PairedDevice {
  id: string
  name: string
  peerId: string
  publicKey: Uint8Array
  fingerprint: string
  pairedAt: number
  addresses: string[]
}

export interface TrustStoreOptions {
  /** Fault injection for tests: called after each step of every file write (see `writeFileAtomic`). */
  afterWriteStep?: (step: WriteStep) => void
}

const FILE_NAME = 'devices.json'

export class TrustStore {
  readonly path: string
  #devices: Map<string, PairedDevice>
  #serialized: string
  #queue: Promise<unknown> = Promise.resolve()
  readonly #dataDir: string
  readonly #afterWriteStep: ((step: WriteStep) => void) | undefined

  private constructor(dataDir: string, devices: Map<string, PairedDevice>, opts: TrustStoreOptions) {
    this.#dataDir = dataDir
    this.path = join(dataDir, FILE_NAME)
    this.#devices = devices
    this.#serialized = serialize(devices)
    this.#afterWriteStep = opts.afterWriteStep
  }

  /**
   * Loads the store (a missing file is an empty store). A damaged file throws `CorruptTrustStoreError` and is left
   * as it is for the user to inspect.
   *
   * @example const store = await TrustStore.open(dataDir); store.list()
   */
  static async open(dataDir: string, opts: TrustStoreOptions = {}): Promise<TrustStore> {
    return new TrustStore(dataDir, await readDevices(join(dataDir, FILE_NAME)), opts)
  }

  list(): PairedDevice[] {
    return [...this.#devices.values()].map(copy)
  }

  get(id: string): PairedDevice | undefined {
    const device = this.#devices.get(id)
    return device && copy(device)
  }

  getByPeerId(peerId: string): PairedDevice | undefined {
    const device = [...this.#devices.values()].find((d) => d.peerId === peerId)
    return device && copy(device)
  }

  /** Stores a device, replacing any entry with the same id (pairing again updates name, key and addresses). */
  add(device: PairedDevice): Promise<void> {
    return this.#change((devices) => devices.set(device.id, copy(device)))
  }

  /** Forgets a device; resolves to whether it was there. */
  async remove(id: string): Promise<boolean> {
    let removed = false
    await this.#change((devices) => {
      removed = devices.delete(id)
    })
    return removed
  }

  /**
   * Records where a device was last reached. An unknown id is ignored: the device may have been removed while a
   * connection to it was still reporting addresses.
   */
  updateAddresses(id: string, addresses: string[]): Promise<void> {
    return this.#change((devices) => {
      const device = devices.get(id)
      if (device) devices.set(id, { ...device, addresses: [...addresses] })
    })
  }

  #change(mutate: (devices: Map<string, PairedDevice>) => void): Promise<void> {
    const run = this.#queue.then(async () => {
      const next = new Map(this.#devices)
      mutate(next)
      const text = serialize(next)
      if (text === this.#serialized) return
      try {
        await mkdir(this.#dataDir, { recursive: true, mode: 0o700 })
        await writeFileAtomic(this.path, text, { mode: 0o600, afterStep: this.#afterWriteStep })
        this.#devices = next
        this.#serialized = text
      } catch (error) {
        // A failure after the rename leaves the new file in place: re-read so memory keeps mirroring the file.
        this.#devices = await readDevices(this.path).catch(() => this.#devices)
        this.#serialized = serialize(this.#devices)
        throw error
      }
    })
    this.#queue = run.catch(() => {})
    return run
  }
}

function serialize(devices: Map<string, PairedDevice>): string {
  const file = {
    version: 1,
    devices: [...devices.values()].map((d) => ({ ...d, publicKey: toBase64(d.publicKey) })),
  }
  return `${JSON.stringify(file, null, 2)}\n`
}

// Only the store's own file is read: temp files a crash left next to it (`.devices.json.*.tmp`) never are.
async function readDevices(path: string): Promise<Map<string, PairedDevice>> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map()
    throw error
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new CorruptTrustStoreError(path, 'not valid JSON', { cause: error })
  }
  const file = value as { version?: unknown; devices?: unknown } | null
  if (typeof file !== 'object' || file === null || file.version !== 1 || !Array.isArray(file.devices)) {
    throw new CorruptTrustStoreError(path, 'not a version 1 device list')
  }
  const devices = new Map<string, PairedDevice>()
  file.devices.forEach((entry: unknown, i: number) => {
    const device = parseDevice(entry)
    if (!device) throw new CorruptTrustStoreError(path, `entry ${i + 1} has missing or invalid fields`)
    devices.set(device.id, device)
  })
  return devices
}

function parseDevice(entry: unknown): PairedDevice | undefined {
  const d = entry as Record<string, unknown> | null
  if (typeof d !== 'object' || d === null) return undefined
  const { id, name, peerId, publicKey, fingerprint, pairedAt, addresses } = d
  if (
    typeof id !== 'string' ||
    typeof name !== 'string' ||
    typeof peerId !== 'string' ||
    typeof publicKey !== 'string' ||
    typeof fingerprint !== 'string' ||
    typeof pairedAt !== 'number' ||
    !Array.isArray(addresses) ||
    !addresses.every((a) => typeof a === 'string')
  ) {
    return undefined
  }
  const key = Uint8Array.from(Buffer.from(publicKey, 'base64'))
  // Buffer.from skips characters that are not base64; re-encoding catches them.
  if (key.length !== 32 || toBase64(key) !== publicKey) return undefined
  return { id, name, peerId, publicKey: key, fingerprint, pairedAt, addresses }
}

// Callers get and give copies, so no one can change the store's state without writing it. Fields are picked one by
// one so stray properties on an argument never reach the file.
function copy(d: PairedDevice): PairedDevice {
  return {
    id: d.id,
    name: d.name,
    peerId: d.peerId,
    publicKey: Uint8Array.from(d.publicKey),
    fingerprint: d.fingerprint,
    pairedAt: d.pairedAt,
    addresses: [...d.addresses],
  }
}

function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}
