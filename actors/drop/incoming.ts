// The receiving half of the drop service: offers as they arrive (their manifests assembled, checked and
// limited), consent and free space, the data streams bound to their transfers by token, and the final check.
import {
  DROP_MESSAGE_PROTOCOL,
  type DropMessage,
  encodeDropMessage,
  equalBytes,
  type SenderFrame,
} from '../../transport/drop-codec.ts'
import {
  DEFAULT_MANIFEST_LIMITS,
  ManifestAssembly,
  type ManifestLimits,
} from '../../transport/drop-manifest.ts'
import type { ReceivingStream } from '../../transport/drop-stream.ts'
import type { DropOffer } from './api.ts'
import { ReceiveSink } from './receiving.ts'
import { base64, type DropContext, type Live, OPEN_TIMEOUT_MS, summaryOf } from './transfer.ts'
import { isFile, type TransferRecord } from './transfer-record.ts'

/** Offers one device may have waiting for consent, and make in a minute, before the next is refused. */
const MAX_PENDING_OFFERS = 4
const MAX_OFFERS_PER_MINUTE = 20

export class Incoming {
  readonly #ctx: DropContext
  /** Offers whose manifest is arriving, or is complete and being recorded (`ready`). */
  readonly #assembling = new Map<string, { deviceId: string; assembly: ManifestAssembly; ready?: boolean }>()
  readonly #offerTimes = new Map<string, number[]>()
  readonly #offerListeners = new Set<(offer: DropOffer) => void>()

  constructor(ctx: DropContext) {
    this.#ctx = ctx
  }

  on(listener: (offer: DropOffer) => void): () => void {
    this.#offerListeners.add(listener)
    return () => this.#offerListeners.delete(listener)
  }

  async onOfferPart(
    deviceId: string,
    message: Extract<DropMessage, { t: 'offer' | 'manifestPart' }>,
  ): Promise<void> {
    const device = this.#ctx.init.devices().find((d) => d.id === deviceId)
    if (device === undefined) return
    const refuse = (reason: 'InvalidManifest' | 'TooLarge' | 'RateLimited', text: string) =>
      this.#ctx.init.connections
        .send(
          deviceId,
          DROP_MESSAGE_PROTOCOL,
          encodeDropMessage({ t: 'reject', transferId: message.transferId, reason, message: text }),
        )
        .catch(() => {})
    let assembling = this.#assembling.get(message.transferId)
    try {
      if (message.t === 'offer') {
        if (assembling !== undefined || this.#ctx.live.has(message.transferId)) return
        // Counted before any await, so offers that arrive together are counted together.
        const waiting = [...this.#ctx.live.values()].filter(
          (l) => l.device.id === deviceId && l.state === 'Offered',
        )
        const arriving = [...this.#assembling.values()].filter((a) => a.deviceId === deviceId)
        const pending = waiting.length + arriving.length
        if (pending >= MAX_PENDING_OFFERS || !this.#allowOffer(deviceId)) {
          return void refuse(
            'RateLimited',
            `${device.name} has too many drops waiting here; try again later.`,
          )
        }
        assembling = { deviceId, assembly: new ManifestAssembly(message, this.#limits()) }
        this.#assembling.set(message.transferId, assembling)
      } else {
        if (assembling === undefined || assembling.deviceId !== deviceId || assembling.ready) return
        assembling.assembly.add(message)
      }
      if (!assembling.assembly.complete) return
      assembling.ready = true
      const { manifest } = assembling.assembly.finish()
      const offer = assembling.assembly.offer
      const record: TransferRecord = {
        v: 1,
        transferId: offer.transferId,
        role: 'receiver',
        deviceId,
        phase: 'Offered',
        createdAt: Date.now(),
        token: Buffer.from(offer.token).toString('base64'),
        manifestHash: Buffer.from(offer.manifestHash).toString('base64'),
        manifest,
        dir: this.#ctx.init.dir,
        names: {},
        offsets: {},
        complete: [],
      }
      await this.#ctx.records.save(record)
      const live = this.#ctx.spawn(record, offer.token, device, false)
      this.#assembling.delete(message.transferId)
      this.#announceOffer(live)
    } catch (err) {
      this.#assembling.delete(message.transferId)
      const limit = (err as Error).name === 'ManifestLimitError'
      this.#ctx.init.log.warn({ err, deviceId }, 'refused a drop offer')
      void refuse(limit ? 'TooLarge' : 'InvalidManifest', (err as Error).message)
    }
  }

  #limits(): Partial<ManifestLimits> {
    return { ...DEFAULT_MANIFEST_LIMITS, ...this.#ctx.init.limits }
  }

  #allowOffer(deviceId: string): boolean {
    const now = Date.now()
    const recent = (this.#offerTimes.get(deviceId) ?? []).filter((t) => now - t < 60_000)
    recent.push(now)
    this.#offerTimes.set(deviceId, recent)
    return recent.length <= MAX_OFFERS_PER_MINUTE
  }

  #announceOffer(live: Live): void {
    const summary = summaryOf(live)
    this.#ctx.init.events.emit({
      type: 'DropOffered',
      transferId: summary.transferId,
      deviceId: summary.deviceId,
      name: summary.name,
      fingerprint: summary.fingerprint,
      files: summary.files,
      bytes: summary.bytes,
      paths: summary.paths,
    })
    if (this.#ctx.init.acceptFrom(live.device)) {
      void this.accept(live)
      return
    }
    const offer: DropOffer = {
      ...summary,
      accept: () => this.#ctx.accept(summary.transferId),
      reject: () => this.#ctx.reject(summary.transferId),
    }
    for (const listener of this.#offerListeners) {
      try {
        listener(offer)
      } catch {
        // listeners own their errors
      }
    }
  }

  /** Never rejects (its callers do not wait for it): a receive folder that cannot be used ends the offer. */
  async accept(live: Live): Promise<void> {
    const folder = live.folder!
    try {
      const { fits, free } = await folder.fits(live.progress.bytesTotal)
      if (!fits) {
        return this.#ctx.forward(live, {
          type: 'disk.full',
          message: `${live.progress.bytesTotal} bytes do not fit in ${folder.root} (${free} free)`,
        })
      }
      await folder.prepare()
      // Every top-level name is chosen (and kept) before a byte lands, so a resumed transfer uses the same ones.
      for (const entry of live.record.manifest.entries) {
        if (!entry.path.includes('/')) await folder.finalPath(entry.path, entry.kind === 'file')
      }
      live.record.names = folder.names()
      await this.#ctx.records.save(live.record)
      this.#ctx.forward(live, { type: 'cmd.accept' })
    } catch (err) {
      const { transferId } = live.record
      this.#ctx.init.log.error({ err, transferId, dir: folder.root }, 'could not prepare the receive folder')
      const code = (err as NodeJS.ErrnoException).code
      const message = `the receive folder ${folder.root} cannot be used: ${(err as Error).message}`
      this.#ctx.forward(live, {
        type: code === 'ENOSPC' || code === 'EDQUOT' ? 'disk.full' : 'disk.failed',
        message,
      })
    }
  }

  // --- effects

  async onStream(stream: ReceivingStream): Promise<void> {
    let frame: SenderFrame
    try {
      frame = await stream.read(OPEN_TIMEOUT_MS)
    } catch (err) {
      stream.abort(err as Error)
      return
    }
    const live = frame.t === 'open' ? this.#ctx.live.get(frame.transferId) : undefined
    const device = this.#ctx.deviceByPeer(stream.remotePeer)
    const bound =
      frame.t === 'open' &&
      live !== undefined &&
      live.record.role === 'receiver' &&
      device !== undefined &&
      live.device.id === device.id &&
      equalBytes(frame.token, live.token) &&
      live.state === 'Receiving'
    if (!bound || live === undefined) {
      this.#ctx.init.log.warn(
        { peer: stream.remotePeer.toString() },
        'refused a data stream that belongs to no transfer of that device',
      )
      stream.abort(new Error('no such transfer'))
      return
    }
    live.sink ??= new ReceiveSink(live.record, live.folder!, this.#ctx.init.timeouts.stall, {
      received: (bytes) => this.#ctx.progressed(live, bytes),
      chunkFailed: (file) => this.#ctx.forward(live, { type: 'data.chunkFailed', file }),
      fileFailed: (file) => this.#ctx.forward(live, { type: 'data.fileFailed', file }),
      allReceived: () => this.#ctx.forward(live, { type: 'data.allReceived' }),
      diskFull: (message) => this.#ctx.forward(live, { type: 'disk.full', message }),
      diskFailed: (message) => this.#ctx.forward(live, { type: 'disk.failed', message }),
      misbehaved: (message) => this.#ctx.forward(live, { type: 'peer.misbehaved', message }),
      checkpoint: () => this.#checkpoint(live),
      fileDone: () => live.progress.fileDone(),
    })
    await live.sink.run(stream)
  }

  /** Saves the record at most five times a second (and at every change of phase, through `persist`). */
  async #checkpoint(live: Live): Promise<void> {
    const now = Date.now()
    if (now - live.checkpointAt < 200) return
    live.checkpointAt = now
    await this.#ctx.records.save(live.record)
  }

  async verify(live: Live): Promise<void> {
    const folder = live.folder!
    const { entries } = live.record.manifest
    try {
      const complete = new Set(live.record.complete ?? [])
      for (const [i, entry] of entries.entries()) {
        if (entry.kind === 'dir') await folder.makeFolders(entry)
        else if (!complete.has(i)) {
          return this.#ctx.forward(live, {
            type: 'verify.failed',
            file: i,
            message: `${entry.path} is missing`,
          })
        }
      }
      await live.sink?.stop()
      await folder.removePartial()
      this.#ctx.forward(live, { type: 'verify.passed' })
    } catch (err) {
      // Making the empty folders failed: a problem of the receive folder, not of the files (not `Corrupted`).
      this.#ctx.forward(live, { type: 'disk.failed', message: (err as Error).message })
    }
  }

  receiverHashes(live: Live): Uint8Array[] {
    const hashes = live.record.hashes ?? {}
    return live.record.manifest.entries.flatMap((e, i) => (isFile(e) ? [base64(hashes[i] ?? '')] : []))
  }
}
