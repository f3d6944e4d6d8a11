// What a transfer keeps on disk so that it survives a restart or a kill -9 (ARCHITECTURE.md "File drop"): one
// file per transfer, `<dataDir>/drops/<transferId>.json` (mode 0600), replaced atomically on every change of
// phase and as verified bytes accumulate. A transfer that ends removes its record.
import { mkdir, readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Manifest, ManifestEntry } from '../../transport/drop-manifest.ts'
import { writeFileAtomic } from '../store/index.ts'

export interface TransferRecord {
  v: 1
  transferId: string
  role: 'sender' | 'receiver'
  deviceId: string
  phase: string
  createdAt: number
  /** Binds the data streams to this transfer (base64); as secret as the link, so the file is 0600. */
  token: string
  /** The encoded manifest's SHA-256 (base64): what `completed` is computed over. */
  manifestHash: string
  manifest: Manifest
  /** Sender: the absolute path each entry is read from, and the size and mtime it had when offered. */
  sources?: Array<{ path: string; size: number; mtimeMs: number }>
  /** Receiver: the receive folder, the names top-level entries land under, and the progress verified so far. */
  dir?: string
  names?: Record<string, string>
  /** Entry index -> bytes verified and written (a multiple of the chunk size, or the file's size). */
  offsets?: Record<string, number>
  /** Entry indexes in place under their final names. */
  complete?: number[]
  /** Entry index -> the file's hash as verified (base64). */
  hashes?: Record<string, string>
}

const FOLDER = 'drops'
const ID = /^[0-9a-f]{32}$/

export class TransferRecords {
  readonly #dir: string

  constructor(dataDir: string) {
    this.#dir = join(dataDir, FOLDER)
  }

  async save(record: TransferRecord): Promise<void> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 })
    await writeFileAtomic(this.#path(record.transferId), JSON.stringify(record, manifestBytes), {
      mode: 0o600,
    })
  }

  async remove(transferId: string): Promise<void> {
    await rm(this.#path(transferId), { force: true })
  }

  /** Every record that can be read; a damaged one is reported through `bad` and left in place for a person. */
  async load(bad: (file: string, err: unknown) => void): Promise<TransferRecord[]> {
    let names: string[]
    try {
      names = await readdir(this.#dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
    const records: TransferRecord[] = []
    for (const name of names) {
      if (!name.endsWith('.json') || !ID.test(name.slice(0, -5))) continue
      const file = join(this.#dir, name)
      try {
        records.push(JSON.parse(await readFile(file, 'utf8'), restoreBytes) as TransferRecord)
      } catch (err) {
        bad(file, err)
      }
    }
    return records
  }

  #path(transferId: string): string {
    if (!ID.test(transferId)) throw new RangeError(`not a transfer id: ${transferId}`)
    return join(this.#dir, `${transferId}.json`)
  }
}

// Manifest entries may carry a hash (bytes): JSON keeps it as { $b64 }.
function manifestBytes(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? { $b64: Buffer.from(value).toString('base64') } : value
}

function restoreBytes(_key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null && typeof (value as { $b64?: unknown }).$b64 === 'string') {
    return new Uint8Array(Buffer.from((value as { $b64: string }).$b64, 'base64'))
  }
  return value
}

export type FileEntry = Extract<ManifestEntry, { kind: 'file' }>

export const isFile = (entry: ManifestEntry): entry is FileEntry => entry.kind === 'file'
