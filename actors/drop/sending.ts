// The sending end of a data stream (ARCHITECTURE.md "File drop"): reads each file in chunks, hashes them, and
// writes them in manifest order from where the receiver asked to go on, then the file's end with its hash. The
// receiver's `nack` rewinds it to the offset it names; its `ack`s count as verified bytes. A file whose size or
// mtime no longer match the manifest stops the transfer (`source.changed`) instead of mixing versions.
import { open, stat } from 'node:fs/promises'
import {
  CHUNK_BYTES,
  type ChunkFrame,
  chunkFrame,
  chunkLength,
  FileHasher,
} from '../../transport/drop-codec.ts'
import type { SendingStream } from '../../transport/drop-stream.ts'
import { hashChunks } from './file-hash.ts'
import { type FileEntry, isFile, type TransferRecord } from './transfer-record.ts'

/** How long to wait for an `ack`/`nack` before looking again whether the pump is still wanted. */
const ACK_WAIT_MS = 60_000

export interface SendHooks {
  /** Bytes written to the stream (a few times a second at most is enough for the caller to report). */
  sent(bytes: number): void
  /** Every file's end went out. */
  allSent(): void
  changed(file: number): void
  failed(file: number, message: string): void
  /** A file's hash, once all of it went out. */
  hashed(file: number, hash: Uint8Array): void
  /** Fault injection for tests that play the attacker: rewrites each chunk frame as it is written. */
  rewriteChunk?: (frame: ChunkFrame) => ChunkFrame
}

export interface StartPoint {
  complete: ReadonlySet<number>
  /** Entry index -> verified offset, for files the receiver holds in part. */
  partial: ReadonlyMap<number, number>
}

export class SendPump {
  readonly #record: TransferRecord
  readonly #stream: SendingStream
  readonly #hooks: SendHooks
  readonly #token: Uint8Array
  #rewind: { file: number; offset: number } | undefined
  /** Set while everything is sent and the pump waits for a `nack` (or the end of the stream). */
  #rewound: PromiseWithResolvers<void> | undefined
  #stopped = false

  constructor(record: TransferRecord, stream: SendingStream, token: Uint8Array, hooks: SendHooks) {
    this.#record = record
    this.#stream = stream
    this.#token = token
    this.#hooks = hooks
  }

  stop(reason: Error): void {
    if (this.#stopped) return
    this.#stopped = true
    this.#stream.abort(reason)
    this.#rewound?.resolve()
  }

  /**
   * Sends from `start` until every file's end is out, then goes on answering `nack`s (a chunk or a file the
   * receiver asks for again) until the stream ends or the pump is stopped.
   */
  async run(start: StartPoint): Promise<void> {
    await this.#stream.write({ t: 'open', v: 1, transferId: this.#record.transferId, token: this.#token })
    void this.#readAnswers()
    const entries = this.#record.manifest.entries
    // A `nack` moves the cursor back; the files after it start where the receiver holds them (its resume).
    let cursor: { file: number; offset: number } | undefined = { file: 0, offset: start.partial.get(0) ?? 0 }
    let announced = false
    while (cursor !== undefined && !this.#stopped) {
      const from: { file: number; offset: number } = cursor
      cursor = undefined
      let failed = false
      for (let index = from.file; index < entries.length && cursor === undefined; index++) {
        const entry = entries[index]!
        if (!isFile(entry) || (index !== from.file && start.complete.has(index))) continue
        if (index === from.file && start.complete.has(index) && from.offset === 0) continue
        const offset = index === from.file ? from.offset : (start.partial.get(index) ?? 0)
        const ok = await this.#sendFile(index, entry, offset)
        if (this.#stopped) return
        cursor = this.#takeRewind()
        if (!ok && cursor === undefined) failed = true
        if (failed) break
      }
      if (failed) return
      if (cursor !== undefined) continue
      if (!announced) {
        announced = true
        this.#hooks.allSent()
      }
      cursor = await this.#nextRewind()
    }
  }

  #takeRewind(): { file: number; offset: number } | undefined {
    const rewind = this.#rewind
    this.#rewind = undefined
    return rewind
  }

  /** The next `nack` after everything was sent; undefined once the stream has ended. */
  async #nextRewind(): Promise<{ file: number; offset: number } | undefined> {
    if (this.#rewind !== undefined) return this.#takeRewind()
    this.#rewound = Promise.withResolvers<void>()
    await this.#rewound.promise
    this.#rewound = undefined
    return this.#takeRewind()
  }

  /** False when the file could not be sent (changed or unreadable: the hooks were told). */
  async #sendFile(index: number, entry: FileEntry, from: number): Promise<boolean> {
    const source = this.#record.sources![index]!
    if (!(await this.#unchanged(index, source))) return false
    let handle: Awaited<ReturnType<typeof open>>
    try {
      handle = await open(source.path, 'r')
    } catch (err) {
      this.#hooks.failed(index, `cannot read ${source.path}: ${(err as Error).message}`)
      return false
    }
    try {
      const hasher = new FileHasher(entry.size)
      // The verified part is not sent again, but the file's hash is built from every chunk's hash.
      await hashChunks(handle, entry.size, from, hasher)
      for (let at = from; at < entry.size; at += CHUNK_BYTES) {
        if (this.#stopped || this.#rewind !== undefined) return true
        const data = await readChunk(handle, at, chunkLength(entry.size, at))
        if (this.#stopped) return true
        const frame = chunkFrame(index, at, data)
        hasher.add(frame.hash)
        await this.#stream.write(this.#hooks.rewriteChunk?.(frame) ?? frame)
        this.#hooks.sent(data.byteLength)
      }
      if (!(await this.#unchanged(index, source))) return false
      const hash = hasher.digest()
      this.#hooks.hashed(index, hash)
      await this.#stream.write({ t: 'fileEnd', file: index, hash })
      return true
    } catch (err) {
      if (this.#stopped) return true
      throw err
    } finally {
      await handle.close()
    }
  }

  async #unchanged(index: number, source: { path: string; size: number; mtimeMs: number }): Promise<boolean> {
    try {
      const now = await stat(source.path)
      if (now.size === source.size && Math.trunc(now.mtimeMs) === source.mtimeMs) return true
    } catch {
      // gone: changed as well
    }
    this.#hooks.changed(index)
    return false
  }

  async #readAnswers(): Promise<void> {
    try {
      while (!this.#stopped) {
        const frame = await this.#stream.read(ACK_WAIT_MS).catch((err: Error) => {
          if (err.name === 'ReadTimeoutError') return undefined
          throw err
        })
        if (frame?.t === 'nack') {
          this.#rewind = { file: frame.file, offset: frame.offset }
          this.#rewound?.resolve()
        }
      }
    } catch {
      // the stream ended: the link or the receiver's next resume decides what comes next
    }
    this.#rewound?.resolve()
  }
}

async function readChunk(handle: Awaited<ReturnType<typeof open>>, at: number, length: number) {
  const data = new Uint8Array(length)
  let filled = 0
  while (filled < length) {
    const { bytesRead } = await handle.read(data, filled, length - filled, at + filled)
    if (bytesRead === 0) throw new Error('the file ended before its size: it changed while being sent')
    filled += bytesRead
  }
  return data
}
