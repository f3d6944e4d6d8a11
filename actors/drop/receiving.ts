// The receiving end of a data stream (ARCHITECTURE.md "File drop"): takes the files in manifest order, checks
// every chunk's hash before writing it, and every file's hash before it reaches its final name. Verified offsets
// are made durable (fdatasync, then the transfer record) every few MiB, so a restart goes on from there. A chunk
// that fails its check is asked for again (`nack`), and everything after it is dropped until it comes.
import type { FileHandle } from 'node:fs/promises'
import {
  type ChunkFrame,
  checkChunk,
  chunkLength,
  equalBytes,
  FileHasher,
} from '../../transport/drop-codec.ts'
import type { ReceivingStream } from '../../transport/drop-stream.ts'
import { hashChunks } from './file-hash.ts'
import { openPartial, type ReceiveFolder } from './receive-folder.ts'
import { type FileEntry, isFile, type TransferRecord } from './transfer-record.ts'

/** Verified bytes between two durable checkpoints: at most this much is sent again after a kill -9. */
const CHECKPOINT_BYTES = 8 * 1024 * 1024
/** Files at least this large are fdatasync'ed before they reach their final name. */
const DURABLE_FILE_BYTES = 1024 * 1024

export interface ReceiveHooks {
  received(bytes: number): void
  chunkFailed(file: number): void
  fileFailed(file: number): void
  allReceived(): void
  diskFull(message: string): void
  diskFailed(message: string): void
  misbehaved(message: string): void
  /** The record changed (offsets, completed files): persist it. */
  checkpoint(): Promise<void>
  fileDone(): void
}

interface Current {
  index: number
  entry: FileEntry
  handle: FileHandle
  hasher: FileHasher
  offset: number
}

/** What `resume` tells the sender: the files in place, and how far the ones in progress are verified. */
export function resumePoint(record: TransferRecord): {
  complete: number[]
  partial: Array<{ file: number; offset: number }>
} {
  const partial = Object.entries(record.offsets ?? {})
    .map(([file, offset]) => ({ file: Number(file), offset }))
    .filter((p) => p.offset > 0)
  return { complete: [...(record.complete ?? [])], partial }
}

export class ReceiveSink {
  readonly #record: TransferRecord
  readonly #folder: ReceiveFolder
  readonly #hooks: ReceiveHooks
  readonly #stallMs: number
  #stream: ReceivingStream | undefined
  #current: Current | undefined
  /** Set after a `nack`: frames are dropped until the chunk at this offset of this file comes. */
  #discarding = false
  #sinceCheckpoint = 0
  /** Files in place (as the record says), and the index below which every file is. */
  #complete: Set<number>
  #cursor = 0
  #stopped = false

  constructor(record: TransferRecord, folder: ReceiveFolder, stallMs: number, hooks: ReceiveHooks) {
    this.#record = record
    this.#folder = folder
    this.#stallMs = stallMs
    this.#hooks = hooks
    record.offsets ??= {}
    record.complete ??= []
    record.hashes ??= {}
    this.#complete = new Set(record.complete)
  }

  /** Reads `stream` (whose `open` frame was checked) until it ends, is replaced, or the transfer is done. */
  async run(stream: ReceivingStream): Promise<void> {
    this.#stream?.abort(new Error('replaced by a newer data stream'))
    this.#stream = stream
    this.#discarding = false
    try {
      if (this.#current === undefined && !(await this.#advance())) return
      while (this.#stream === stream && !this.#stopped) {
        const frame = await stream.read(this.#stallMs)
        if (this.#stream !== stream || this.#stopped) return
        if (frame.t === 'chunk') await this.#chunk(frame)
        else if (frame.t === 'fileEnd') {
          if (!(await this.#fileEnd(frame.file, frame.hash))) return
        } else return this.#hooks.misbehaved(`unexpected ${frame.t} frame on the data stream`)
      }
    } catch (err) {
      if (this.#stream === stream && !this.#stopped) this.#ioFailure(err)
    }
  }

  /**
   * Where the sender should go on from: the record, and the file in progress as far as this sink wrote and
   * checked it (bytes in the page cache count while the daemon runs; after a restart the record's checkpoint does).
   */
  resumePoint(): ReturnType<typeof resumePoint> {
    const point = resumePoint(this.#record)
    const current = this.#current
    if (current === undefined || current.offset === 0) return point
    const partial = point.partial.filter((p) => p.file !== current.index)
    partial.push({ file: current.index, offset: current.offset })
    return { complete: point.complete, partial }
  }

  /** The machine asked for a chunk (or the whole file) again. */
  async refetch(file: number, scope: 'chunk' | 'file'): Promise<void> {
    const current = this.#current
    if (current === undefined || current.index !== file) return
    if (scope === 'file') {
      await current.handle.truncate(0)
      current.offset = 0
      current.hasher = new FileHasher(current.entry.size)
      this.#record.offsets![file] = 0
    }
    this.#discarding = true
    await this.#stream?.write({ t: 'nack', file, offset: current.offset }).catch(() => {})
  }

  async stop(): Promise<void> {
    this.#stopped = true
    this.#stream?.abort(new Error('the transfer ended'))
    this.#stream = undefined
    const current = this.#current
    this.#current = undefined
    await current?.handle.close().catch(() => {})
  }

  async #chunk(frame: ChunkFrame): Promise<void> {
    const current = this.#current
    const expected = current !== undefined && frame.file === current.index && frame.offset === current.offset
    if (!expected) {
      if (this.#discarding) return
      return this.#hooks.misbehaved(`chunk ${frame.file}@${frame.offset} came out of order`)
    }
    this.#discarding = false
    if (frame.data.byteLength !== chunkLength(current.entry.size, frame.offset)) {
      return this.#hooks.misbehaved(`chunk ${frame.file}@${frame.offset} has the wrong length`)
    }
    if (!checkChunk(frame)) {
      this.#discarding = true
      return this.#hooks.chunkFailed(frame.file)
    }
    await current.handle.write(frame.data, 0, frame.data.byteLength, frame.offset)
    current.hasher.add(frame.hash)
    current.offset += frame.data.byteLength
    this.#hooks.received(frame.data.byteLength)
    this.#sinceCheckpoint += frame.data.byteLength
    if (this.#sinceCheckpoint >= CHECKPOINT_BYTES) {
      this.#sinceCheckpoint = 0
      await current.handle.datasync()
      this.#record.offsets![current.index] = current.offset
      await this.#hooks.checkpoint()
      await this.#stream?.write({ t: 'ack', file: current.index, offset: current.offset }).catch(() => {})
    }
  }

  /** False when the stream should stop being read (all received, or a failure was reported). */
  async #fileEnd(file: number, hash: Uint8Array): Promise<boolean> {
    const current = this.#current
    if (current === undefined || current.index !== file || current.offset !== current.entry.size) {
      if (this.#discarding) return true
      this.#hooks.misbehaved(`the end of file ${file} came before its last chunk`)
      return false
    }
    const digest = current.hasher.digest()
    if (!equalBytes(digest, hash)) {
      this.#hooks.fileFailed(file)
      return true
    }
    // Large files are made durable before they are named; small ones are left to the OS, whose fsync per file
    // would cost more than the file (a drop of 10,000 small files). A kill -9 loses neither.
    if (current.entry.size >= DURABLE_FILE_BYTES) await current.handle.datasync()
    await current.handle.close()
    this.#current = undefined
    await this.#folder.place(file, current.entry)
    this.#completed(file, digest)
    this.#sinceCheckpoint = 0
    await this.#hooks.checkpoint()
    await this.#stream?.write({ t: 'ack', file, offset: current.entry.size }).catch(() => {})
    return this.#advance()
  }

  /** Opens the next file that is not in place; false (and `allReceived`) when there is none. */
  async #advance(): Promise<boolean> {
    const index = this.#next()
    if (index === undefined) {
      this.#hooks.allReceived()
      return false
    }
    const entry = this.#record.manifest.entries[index] as FileEntry
    const offset = this.#record.offsets![index] ?? 0
    // Placed just before a restart, and the record did not say so yet: it is in place, hash and all.
    const placed = await this.#folder.placed(index, entry)
    if (placed !== undefined) {
      this.#completed(index, placed)
      await this.#hooks.checkpoint()
      return this.#advance()
    }
    const handle = await openPartial(this.#folder.partialPath(index), offset)
    const hasher = new FileHasher(entry.size)
    // The file's hash goes over every chunk's hash: those verified before the restart are read back.
    await hashChunks(handle, entry.size, offset, hasher).catch(async (err) => {
      await handle.close()
      throw err
    })
    this.#current = { index, entry, handle, hasher, offset }
    return true
  }

  #completed(file: number, hash: Uint8Array): void {
    delete this.#record.offsets![file]
    this.#record.complete!.push(file)
    this.#complete.add(file)
    this.#record.hashes![file] = Buffer.from(hash).toString('base64')
    this.#hooks.fileDone()
  }

  /** The first file not in place. Files are taken in order, so the search goes on from where the last ended. */
  #next(): number | undefined {
    const entries = this.#record.manifest.entries
    while (this.#cursor < entries.length) {
      if (isFile(entries[this.#cursor]!) && !this.#complete.has(this.#cursor)) return this.#cursor
      this.#cursor++
    }
    return undefined
  }

  #ioFailure(err: unknown): void {
    const code = (err as NodeJS.ErrnoException).code
    const message = (err as Error).message
    if (code === 'ENOSPC' || code === 'EDQUOT')
      this.#hooks.diskFull(`the receive folder's disk is full: ${message}`)
    else if (typeof code === 'string' || (err as Error).name === 'UnsafeReceivePathError')
      this.#hooks.diskFailed(message)
    else if (err instanceof Error && (err.name === 'ReadTimeoutError' || err.name === 'StreamClosedError'))
      return
    else this.#hooks.misbehaved(message)
  }
}
