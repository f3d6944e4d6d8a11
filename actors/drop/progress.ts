// How far a transfer is, for people: bytes and files done, the rate over the last seconds, the time left, and at
// most four reports a second (the CLI's progress bar, `--json` progress lines, DropProgress events).
import type { ManifestEntry } from '../../transport/drop-manifest.ts'
import type { DropFileResult, DropProgress } from './api.ts'
import type { ReceiveFolder } from './receive-folder.ts'
import type { StartPoint } from './sending.ts'
import { isFile, type TransferRecord } from './transfer-record.ts'

const REPORT_EVERY_MS = 250
const RATE_WINDOW_MS = 3_000

export class Progress {
  readonly transferId: string
  readonly bytesTotal: number
  readonly filesTotal: number
  bytesDone = 0
  filesDone = 0
  readonly #now: () => number
  #reportedAt = -Infinity
  readonly #samples: Array<{ at: number; bytes: number }> = []

  constructor(
    transferId: string,
    bytesTotal: number,
    filesTotal: number,
    now: () => number = performance.now.bind(performance),
  ) {
    this.transferId = transferId
    this.bytesTotal = bytesTotal
    this.filesTotal = filesTotal
    this.#now = now
  }

  /** A receiver's progress from its record: the files in place and the verified part of the others. */
  restore(record: TransferRecord): void {
    const complete = new Set(record.complete ?? [])
    this.bytesDone = 0
    this.filesDone = 0
    for (const [i, entry] of record.manifest.entries.entries()) {
      if (!isFile(entry)) continue
      if (complete.has(i)) {
        this.bytesDone += entry.size
        this.filesDone++
      } else this.bytesDone += record.offsets?.[i] ?? 0
    }
  }

  /** A sender's progress from where the receiver asked it to go on. */
  startAt(entries: readonly ManifestEntry[], start: StartPoint): void {
    this.bytesDone = 0
    this.filesDone = 0
    for (const [i, entry] of entries.entries()) {
      if (!isFile(entry)) continue
      if (start.complete.has(i)) {
        this.bytesDone += entry.size
        this.filesDone++
      } else this.bytesDone += start.partial.get(i) ?? 0
    }
  }

  fileDone(): void {
    this.filesDone++
  }

  /** Counts `bytes`; returns a report when the last one is at least 250 ms old. */
  add(bytes: number): DropProgress | undefined {
    this.bytesDone += bytes
    const at = this.#now()
    this.#samples.push({ at, bytes: this.bytesDone })
    while (this.#samples.length > 2 && at - this.#samples[0]!.at > RATE_WINDOW_MS) this.#samples.shift()
    if (at - this.#reportedAt < REPORT_EVERY_MS && this.bytesDone < this.bytesTotal) return undefined
    this.#reportedAt = at
    return this.report()
  }

  report(): DropProgress {
    const first = this.#samples[0]
    const last = this.#samples[this.#samples.length - 1]
    const span = first !== undefined && last !== undefined ? last.at - first.at : 0
    const rate = span > 0 ? ((last!.bytes - first!.bytes) * 1000) / span : 0
    const left = this.bytesTotal - this.bytesDone
    return {
      transferId: this.transferId,
      bytesDone: this.bytesDone,
      bytesTotal: this.bytesTotal,
      filesDone: this.filesDone,
      filesTotal: this.filesTotal,
      rate: Math.round(rate),
      etaMs: rate > 0 ? Math.round((left * 1000) / rate) : left === 0 ? 0 : null,
    }
  }
}

/** The files of a completed transfer with their hashes (hex) and, on the receiving side, where they landed. */
export function fileResults(
  record: TransferRecord,
  hashes: ReadonlyMap<number, Uint8Array>,
  folder: ReceiveFolder | undefined,
): DropFileResult[] {
  const names = record.names ?? {}
  return record.manifest.entries.flatMap((entry, i) => {
    if (!isFile(entry)) return []
    const hash = Buffer.from(hashes.get(i) ?? new Uint8Array()).toString('hex')
    const result: DropFileResult = { path: entry.path, size: entry.size, hash }
    if (folder !== undefined) {
      const [top, ...rest] = entry.path.split('/')
      result.savedAs = [folder.root, names[top!] ?? top, ...rest].join('/')
    }
    return [result]
  })
}
