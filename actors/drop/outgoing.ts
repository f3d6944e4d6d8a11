// The sending half of the drop service: what is offered (the folder walk and its manifest) and the data stream
// that carries it, with the sender's view of the file hashes that `completed` is checked against.
import { randomBytes } from 'node:crypto'
import { open } from 'node:fs/promises'
import { peerIdFromString } from '@libp2p/peer-id'
import { buildManifest, offerMessages } from '../../transport/drop-manifest.ts'
import { openDropStream, type SendingStream } from '../../transport/drop-stream.ts'
import type { PairedDevice } from '../store/index.ts'
import { hashFile } from './file-hash.ts'
import { SendPump } from './sending.ts'
import { type DropContext, type Live, OPEN_TIMEOUT_MS } from './transfer.ts'
import { isFile, type TransferRecord } from './transfer-record.ts'
import { walk } from './walk.ts'

/** Data streams that failed to open are tried again this many times, after 0.5, 1, 2 ... s. */
const OPEN_RETRIES = 4

export class Outgoing {
  readonly #ctx: DropContext

  constructor(ctx: DropContext) {
    this.#ctx = ctx
  }

  /** The record of a new drop of `paths` to `device`, saved, with its token. */
  async prepare(
    device: PairedDevice,
    paths: readonly string[],
  ): Promise<{ record: TransferRecord; token: Uint8Array }> {
    const walked = await walk(paths)
    const sourceOf = new Map(walked.map((w) => [w.path, w.source]))
    const built = buildManifest(walked)
    const transferId = randomBytes(16).toString('hex')
    const token = new Uint8Array(randomBytes(32))
    const [offer] = offerMessages({ transferId, token, manifest: built.manifest })
    const record: TransferRecord = {
      v: 1,
      transferId,
      role: 'sender',
      deviceId: device.id,
      phase: 'Offering',
      createdAt: Date.now(),
      token: Buffer.from(token).toString('base64'),
      manifestHash: Buffer.from(offer.manifestHash).toString('base64'),
      manifest: built.manifest,
      sources: built.manifest.entries.map((entry, i) => ({
        path: sourceOf.get(built.sources[i]!) ?? built.sources[i]!,
        size: entry.kind === 'file' ? entry.size : 0,
        mtimeMs: entry.mtimeMs,
      })),
    }
    for (const skipped of built.skipped) this.#ctx.init.log.warn(skipped, 'not sent: not a file or folder')
    await this.#ctx.records.save(record)
    return { record, token }
  }

  async openDataStream(live: Live, attempt = 0, generation = ++live.opened): Promise<void> {
    if (generation !== live.opened) return // a newer `openDataStream` took over
    live.pump?.stop(new Error('replaced by a newer data stream'))
    const peer = peerIdFromString(live.device.peerId)
    let stream: SendingStream
    try {
      stream = await openDropStream(this.#ctx.init.libp2p, peer, { timeoutMs: OPEN_TIMEOUT_MS })
    } catch (err) {
      const transferId = live.record.transferId
      this.#ctx.init.log.warn({ err, transferId, attempt }, 'could not open a data stream')
      // A few more tries while the transfer still wants to send; after that its stall timeout ends it.
      if (
        attempt < OPEN_RETRIES &&
        this.#ctx.live.get(transferId) === live &&
        live.state.includes('Sending')
      ) {
        setTimeout(() => void this.openDataStream(live, attempt + 1, generation), 500 * 2 ** attempt).unref()
      }
      return
    }
    const start = live.start ?? { complete: new Set<number>(), partial: new Map<number, number>() }
    live.progress.startAt(live.record.manifest.entries, start)
    const pump = new SendPump(live.record, stream, live.token, {
      sent: (bytes) => this.#ctx.progressed(live, bytes),
      allSent: () => this.#ctx.forward(live, { type: 'data.allSent' }),
      changed: (file) => this.#ctx.forward(live, { type: 'source.changed', file }),
      failed: (file, message) => this.#ctx.forward(live, { type: 'source.failed', file, message }),
      hashed: (file, hash) => live.hashes.set(file, hash),
      ...(this.#ctx.init.rewriteChunk !== undefined && { rewriteChunk: this.#ctx.init.rewriteChunk }),
    })
    live.pump = pump
    void pump
      .run(start)
      .catch((err) =>
        this.#ctx.init.log.warn({ err, transferId: live.record.transferId }, 'data stream ended'),
      )
  }

  async senderHashes(live: Live): Promise<Uint8Array[]> {
    const out: Uint8Array[] = []
    for (const [i, entry] of live.record.manifest.entries.entries()) {
      if (!isFile(entry)) continue
      let hash = live.hashes.get(i)
      if (hash === undefined) {
        const handle = await open(live.record.sources![i]!.path, 'r')
        hash = await hashFile(handle, entry.size).finally(() => handle.close())
        live.hashes.set(i, hash)
      }
      out.push(hash)
    }
    return out
  }
}
