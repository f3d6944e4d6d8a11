// The I/O shell around the drop machines (ARCHITECTURE.md "File drop"): one `drop:<transferId>` actor per
// transfer and side. Control messages travel sealed over the device's link (DROP_MESSAGE_PROTOCOL through the
// connection service); file data on `/sdnet/drop/1.0.0` streams of the same libp2p connection, each bound to its
// transfer by the token of the offer. The service keeps every transfer's record on disk, turns messages, stream
// facts and link changes into machine events, performs the machines' effects in order, and is what `node.drop`
// calls.
import { randomBytes } from 'node:crypto'
import { open } from 'node:fs/promises'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { AnyActorRef } from 'xstate'
import type { DropOutput, DropTimeouts } from '../../machines/drop.ts'
import {
  type ChunkFrame,
  completeBitmap,
  DROP_MESSAGE_PROTOCOL,
  type DropMessage,
  decodeDropMessage,
  encodeDropMessage,
  equalBytes,
  isComplete,
  type SenderFrame,
  transferHash,
} from '../../transport/drop-codec.ts'
import {
  buildManifest,
  DEFAULT_MANIFEST_LIMITS,
  ManifestAssembly,
  type ManifestLimits,
  offerMessages,
} from '../../transport/drop-manifest.ts'
import {
  handleDropStreams,
  openDropStream,
  type ReceivingStream,
  type SendingStream,
} from '../../transport/drop-stream.ts'
import type { SdnetLibp2p } from '../../transport/libp2p-node.ts'
import type { ConnectionService } from '../connections/index.ts'
import { UnknownTransferError } from '../errors.ts'
import type { EventBus } from '../events.ts'
import type { Logger } from '../logger.ts'
import type { PairedDevice } from '../store/index.ts'
import type { DropOffer, DropResult, DropSummary, DropTransfer, TransferEvent } from './api.ts'
import { hashFile } from './file-hash.ts'
import { fileResults, Progress } from './progress.ts'
import { ReceiveFolder } from './receive-folder.ts'
import { ReceiveSink, resumePoint } from './receiving.ts'
import { SendPump, type StartPoint } from './sending.ts'
import { isFile, type TransferRecord, TransferRecords } from './transfer-record.ts'
import { walk } from './walk.ts'

export const DEFAULT_DROP_TIMEOUTS: DropTimeouts = {
  offer: 30_000,
  consent: 10 * 60_000,
  stall: 30_000,
  verify: 10 * 60_000,
  reconnect: 24 * 3600_000,
}

/** Offers one device may have waiting for consent, and make in a minute, before the next is refused. */
const MAX_PENDING_OFFERS = 4
const MAX_OFFERS_PER_MINUTE = 20
const OPEN_TIMEOUT_MS = 5_000
/** Data streams that failed to open are tried again this many times, after 0.5, 1, 2 ... s. */
const OPEN_RETRIES = 4

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

interface Live {
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

type Effect = {
  type: string
  phase?: string
  file?: number
  scope?: 'chunk' | 'file'
  reason?: string
  message?: string
}

export class DropService {
  readonly #init: DropServiceInit
  readonly #records: TransferRecords
  readonly #live = new Map<string, Live>()
  /** Offers whose manifest is arriving, or is complete and being recorded (`ready`). */
  readonly #assembling = new Map<string, { deviceId: string; assembly: ManifestAssembly; ready?: boolean }>()
  readonly #offerTimes = new Map<string, number[]>()
  readonly #offerListeners = new Set<(offer: DropOffer) => void>()
  #unsubscribe: Array<() => void> = []

  constructor(init: DropServiceInit) {
    this.#init = init
    this.#records = new TransferRecords(init.dataDir)
  }

  async start(): Promise<void> {
    const { connections, events, libp2p } = this.#init
    this.#unsubscribe.push(
      connections.handle(DROP_MESSAGE_PROTOCOL, ({ deviceId, body }) => {
        this.#onMessage(deviceId, body)
        return undefined
      }),
      events.on('ConnectionEstablished', (e) =>
        this.#onLink(e.type === 'ConnectionEstablished' ? e.deviceId : '', true),
      ),
      events.on('ConnectionLost', (e) => this.#onLink(e.type === 'ConnectionLost' ? e.deviceId : '', false)),
    )
    await handleDropStreams(
      libp2p,
      (peer) => this.#deviceByPeer(peer) !== undefined,
      (stream) => void this.#onStream(stream),
    )
    for (const record of await this.#records.load((file, err) =>
      this.#init.log.error({ err, file }, 'a drop record could not be read; it is left in place'),
    )) {
      await this.#resume(record)
    }
  }

  stop(): void {
    for (const off of this.#unsubscribe) off()
    this.#unsubscribe = []
    for (const live of this.#live.values()) {
      live.pump?.stop(new Error('the node is stopping'))
      void live.sink?.stop()
    }
    this.#live.clear()
  }

  // --- the API (DropApi)

  async send(
    query: string,
    paths: readonly string[],
    opts: { signal?: AbortSignal } = {},
  ): Promise<DropTransfer> {
    const device = this.#init.connections.resolve(query)
    opts.signal?.throwIfAborted()
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
    for (const skipped of built.skipped) this.#init.log.warn(skipped, 'not sent: not a file or folder')
    await this.#records.save(record)
    const live = this.#spawn(record, token, device, false)
    opts.signal?.addEventListener('abort', () => this.cancel(transferId), { once: true })
    return this.#handle(live)
  }

  on(listener: (offer: DropOffer) => void): () => void {
    this.#offerListeners.add(listener)
    return () => this.#offerListeners.delete(listener)
  }

  list(): DropSummary[] {
    return [...this.#live.values()].map((live) => this.#summary(live))
  }

  get(transferId: string): DropTransfer {
    return this.#handle(this.#find(transferId))
  }

  accept(transferId: string): DropTransfer {
    const live = this.#find(transferId)
    void this.#accept(live)
    return this.#handle(live)
  }

  reject(transferId: string): void {
    this.#forward(this.#find(transferId), { type: 'cmd.reject' })
  }

  cancel(transferId: string): void {
    this.#forward(this.#find(transferId), { type: 'cmd.cancel' })
  }

  // --- transfers

  #find(query: string): Live {
    const exact = this.#live.get(query)
    if (exact !== undefined) return exact
    const matches = [...this.#live.keys()].filter(
      (id) => query.length >= 4 && id.startsWith(query.toLowerCase()),
    )
    if (matches.length === 1) return this.#live.get(matches[0]!)!
    throw new UnknownTransferError(query, [...this.#live.keys()])
  }

  #spawn(record: TransferRecord, token: Uint8Array, device: PairedDevice, resumed: boolean): Live {
    const { transferId } = record
    this.#init.node.send({
      type: 'cmd.startDrop',
      role: record.role,
      transferId,
      deviceId: record.deviceId,
      resumed,
      timeouts: this.#init.timeouts,
    })
    const ref = this.#init.node.child(`drop:${transferId}`)
    if (ref === undefined) throw new Error(`the node did not start a drop actor for ${transferId}`)
    const files = record.manifest.entries.filter(isFile)
    const live: Live = {
      record,
      token,
      device,
      ref,
      state: record.phase,
      progress: new Progress(
        transferId,
        files.reduce((sum, f) => sum + f.size, 0),
        files.length,
      ),
      listeners: new Set(),
      result: Promise.withResolvers<DropResult>(),
      effects: Promise.resolve(),
      hashes: new Map(),
      checkpointAt: 0,
      moved: 0,
      opened: 0,
    }
    if (record.role === 'receiver') {
      live.folder = new ReceiveFolder(record.dir!, transferId, record.names)
      live.progress.restore(record)
    }
    this.#live.set(transferId, live)
    ref.on('*', (effect: Effect) => {
      live.effects = live.effects
        .then(() => this.#perform(live, effect))
        .catch((err) => {
          this.#init.log.error({ err, transferId, effect: effect.type }, 'a drop effect failed')
        })
    })
    ref.subscribe({
      next: (snapshot: { value: unknown; status: string; output?: unknown }) => {
        const state = typeof snapshot.value === 'string' ? snapshot.value : JSON.stringify(snapshot.value)
        if (state !== live.state) {
          live.state = state
          this.#tell(live, { type: 'state', transferId, state })
        }
        if (snapshot.status === 'done') {
          live.effects = live.effects.then(() => this.#finish(live, snapshot.output as DropOutput))
        }
      },
      error: (err: unknown) => this.#init.log.error({ err, transferId }, 'drop actor crashed'),
    })
    if (this.#connected(device.id)) this.#forward(live, { type: 'link.up' })
    return live
  }

  async #resume(record: TransferRecord): Promise<void> {
    const device = this.#init.devices().find((d) => d.id === record.deviceId)
    const accepted =
      record.role === 'sender'
        ? !['Offering', 'AwaitingConsent'].includes(record.phase)
        : record.phase !== 'Offered'
    if (device === undefined || !accepted) {
      // An offer nobody accepted yet does not outlive the daemon; a device no longer paired takes its drops along.
      await this.#records.remove(record.transferId)
      if (record.role === 'receiver') await new ReceiveFolder(record.dir!, record.transferId).removePartial()
      return
    }
    const token = new Uint8Array(Buffer.from(record.token, 'base64'))
    if (record.role === 'receiver')
      await new ReceiveFolder(record.dir!, record.transferId, record.names).prepare()
    this.#spawn(record, token, device, true)
  }

  #handle(live: Live): DropTransfer {
    return {
      transferId: live.record.transferId,
      result: live.result.promise,
      on: (listener) => {
        live.listeners.add(listener)
        return () => live.listeners.delete(listener)
      },
      cancel: () => this.#forward(live, { type: 'cmd.cancel' }),
    }
  }

  #summary(live: Live): DropSummary {
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

  #forward(live: Live, event: { type: string; [key: string]: unknown }): void {
    this.#init.node.send({ type: 'drop.forward', transferId: live.record.transferId, event })
  }

  #tell(live: Live, event: TransferEvent): void {
    for (const listener of live.listeners) {
      try {
        listener(event)
      } catch {
        // listeners own their errors
      }
    }
  }

  #connected(deviceId: string): boolean {
    return this.#init.connections.devices().some((d) => d.id === deviceId && d.state === 'connected')
  }

  #deviceByPeer(peer: PeerId): PairedDevice | undefined {
    const id = peer.toString()
    return this.#init.devices().find((d) => d.peerId === id)
  }

  #onLink(deviceId: string, up: boolean): void {
    for (const live of this.#live.values()) {
      if (live.device.id !== deviceId) continue
      if (!up) live.pump?.stop(new Error('the link was lost'))
      this.#forward(live, { type: up ? 'link.up' : 'link.lost' })
    }
  }

  async #sendMessage(live: Live, message: DropMessage): Promise<void> {
    await this.#init.connections.send(live.device.id, DROP_MESSAGE_PROTOCOL, encodeDropMessage(message))
  }

  // --- control messages from paired devices

  #onMessage(deviceId: string, body: Uint8Array): void {
    let message: DropMessage
    try {
      message = decodeDropMessage(body)
    } catch (err) {
      this.#init.log.warn({ err, deviceId }, 'dropped a malformed drop message')
      return
    }
    void this.#handleMessage(deviceId, message).catch((err) =>
      this.#init.log.warn({ err, deviceId, message: message.t }, 'a drop message could not be handled'),
    )
  }

  async #handleMessage(deviceId: string, message: DropMessage): Promise<void> {
    if (message.t === 'offer' || message.t === 'manifestPart') return this.#onOfferPart(deviceId, message)
    const live = this.#live.get(message.transferId)
    if (live === undefined || live.device.id !== deviceId) {
      this.#init.log.warn(
        { deviceId, transferId: message.transferId, t: message.t },
        'drop message for no transfer of that device',
      )
      return
    }
    switch (message.t) {
      case 'accept':
        this.#tell(live, { type: 'accepted', transferId: live.record.transferId })
        return this.#forward(live, { type: 'peer.accepted' })
      case 'reject':
        live.peerMessage = { reason: message.reason, message: message.message }
        return this.#forward(live, { type: 'peer.rejected' })
      case 'cancel':
        live.peerMessage = { message: message.message }
        return this.#forward(live, { type: 'peer.cancelled' })
      case 'failed':
        live.peerMessage = { reason: message.reason, message: message.message }
        return this.#forward(live, {
          type: 'peer.failed',
          reason: message.reason,
          message: message.message,
          ...(message.file !== undefined && { file: message.file }),
        })
      case 'resume': {
        const entries = live.record.manifest.entries.length
        const complete = new Set<number>()
        for (let i = 0; i < entries; i++) if (isComplete(message.complete, i)) complete.add(i)
        live.start = { complete, partial: new Map(message.partial.map((p) => [p.file, p.offset])) }
        return this.#forward(live, { type: 'peer.resumed' })
      }
      case 'completed': {
        const ours = transferHash(base64(live.record.manifestHash), await this.#senderHashes(live))
        if (!equalBytes(ours, message.hash)) {
          return this.#forward(live, {
            type: 'peer.misbehaved',
            message: 'the receiver verified other files than were sent',
          })
        }
        return this.#forward(live, { type: 'peer.completed' })
      }
    }
  }

  async #onOfferPart(
    deviceId: string,
    message: Extract<DropMessage, { t: 'offer' | 'manifestPart' }>,
  ): Promise<void> {
    const device = this.#init.devices().find((d) => d.id === deviceId)
    if (device === undefined) return
    const refuse = (reason: 'InvalidManifest' | 'TooLarge' | 'RateLimited', text: string) =>
      this.#init.connections
        .send(
          deviceId,
          DROP_MESSAGE_PROTOCOL,
          encodeDropMessage({ t: 'reject', transferId: message.transferId, reason, message: text }),
        )
        .catch(() => {})
    let assembling = this.#assembling.get(message.transferId)
    try {
      if (message.t === 'offer') {
        if (assembling !== undefined || this.#live.has(message.transferId)) return
        // Counted before any await, so offers that arrive together are counted together.
        const waiting = [...this.#live.values()].filter(
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
        dir: this.#init.dir,
        names: {},
        offsets: {},
        complete: [],
      }
      await this.#records.save(record)
      const live = this.#spawn(record, offer.token, device, false)
      this.#assembling.delete(message.transferId)
      this.#announceOffer(live)
    } catch (err) {
      this.#assembling.delete(message.transferId)
      const limit = (err as Error).name === 'ManifestLimitError'
      this.#init.log.warn({ err, deviceId }, 'refused a drop offer')
      void refuse(limit ? 'TooLarge' : 'InvalidManifest', (err as Error).message)
    }
  }

  #limits(): Partial<ManifestLimits> {
    return { ...DEFAULT_MANIFEST_LIMITS, ...this.#init.limits }
  }

  #allowOffer(deviceId: string): boolean {
    const now = Date.now()
    const recent = (this.#offerTimes.get(deviceId) ?? []).filter((t) => now - t < 60_000)
    recent.push(now)
    this.#offerTimes.set(deviceId, recent)
    return recent.length <= MAX_OFFERS_PER_MINUTE
  }

  #announceOffer(live: Live): void {
    const summary = this.#summary(live)
    this.#init.events.emit({
      type: 'DropOffered',
      transferId: summary.transferId,
      deviceId: summary.deviceId,
      name: summary.name,
      fingerprint: summary.fingerprint,
      files: summary.files,
      bytes: summary.bytes,
      paths: summary.paths,
    })
    if (this.#init.acceptFrom(live.device)) {
      void this.#accept(live)
      return
    }
    const offer: DropOffer = {
      ...summary,
      accept: () => this.accept(summary.transferId),
      reject: () => this.reject(summary.transferId),
    }
    for (const listener of this.#offerListeners) {
      try {
        listener(offer)
      } catch {
        // listeners own their errors
      }
    }
  }

  async #accept(live: Live): Promise<void> {
    const folder = live.folder!
    const { fits, free } = await folder.fits(live.progress.bytesTotal)
    if (!fits) {
      return this.#forward(live, {
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
    await this.#records.save(live.record)
    this.#forward(live, { type: 'cmd.accept' })
  }

  // --- effects

  async #perform(live: Live, effect: Effect): Promise<void> {
    const { record } = live
    const transferId = record.transferId
    switch (effect.type) {
      case 'persist':
        record.phase = effect.phase!
        return this.#records.save(record)
      case 'sendOffer':
        for (const message of offerMessages({ transferId, token: live.token, manifest: record.manifest })) {
          await this.#sendMessage(live, message)
        }
        return
      case 'openDataStream':
        return this.#openDataStream(live)
      case 'sendAccept':
        this.#init.events.emit({
          type: 'DropAccepted',
          transferId,
          deviceId: live.device.id,
          name: live.device.name,
        })
        this.#tell(live, { type: 'accepted', transferId })
        return this.#sendMessage(live, { t: 'accept', transferId })
      case 'sendReject':
        return this.#sendMessage(live, {
          t: 'reject',
          transferId,
          reason: 'Declined',
          message: 'The user declined the drop.',
        })
      case 'sendResume': {
        const point = live.sink?.resumePoint() ?? resumePoint(record)
        const complete = completeBitmap(record.manifest.entries.length, point.complete)
        return this.#sendMessage(live, { t: 'resume', transferId, complete, partial: point.partial })
      }
      case 'sendRefetch':
        return live.sink?.refetch(effect.file!, effect.scope!)
      case 'verifyFiles':
        return this.#verify(live)
      case 'sendComplete': {
        const hash = transferHash(base64(record.manifestHash), this.#receiverHashes(live))
        return this.#sendMessage(live, { t: 'completed', transferId, hash })
      }
      case 'sendCancel':
        return this.#sendMessage(live, { t: 'cancel', transferId, message: 'The drop was cancelled.' }).catch(
          () => {},
        )
      case 'sendFailure':
        return this.#sendMessage(live, {
          t: 'failed',
          transferId,
          reason: effect.reason as Extract<DropMessage, { t: 'failed' }>['reason'],
          message: effect.message ?? effect.reason!,
          ...(effect.file !== undefined && { file: effect.file }),
        }).catch(() => {})
      case 'removeTemp':
        await live.sink?.stop()
        return live.folder?.removePartial()
      default:
        this.#init.log.warn({ effect: effect.type }, 'unknown effect from a drop machine')
    }
  }

  async #openDataStream(live: Live, attempt = 0, generation = ++live.opened): Promise<void> {
    if (generation !== live.opened) return // a newer `openDataStream` took over
    live.pump?.stop(new Error('replaced by a newer data stream'))
    const peer = peerIdFromString(live.device.peerId)
    let stream: SendingStream
    try {
      stream = await openDropStream(this.#init.libp2p, peer, { timeoutMs: OPEN_TIMEOUT_MS })
    } catch (err) {
      const transferId = live.record.transferId
      this.#init.log.warn({ err, transferId, attempt }, 'could not open a data stream')
      // A few more tries while the transfer still wants to send; after that its stall timeout ends it.
      if (attempt < OPEN_RETRIES && this.#live.get(transferId) === live && live.state.includes('Sending')) {
        setTimeout(() => void this.#openDataStream(live, attempt + 1, generation), 500 * 2 ** attempt).unref()
      }
      return
    }
    const start = live.start ?? { complete: new Set<number>(), partial: new Map<number, number>() }
    live.progress.startAt(live.record.manifest.entries, start)
    const pump = new SendPump(live.record, stream, live.token, {
      sent: (bytes) => this.#progressed(live, bytes),
      allSent: () => this.#forward(live, { type: 'data.allSent' }),
      changed: (file) => this.#forward(live, { type: 'source.changed', file }),
      failed: (file, message) => this.#forward(live, { type: 'source.failed', file, message }),
      hashed: (file, hash) => live.hashes.set(file, hash),
      ...(this.#init.rewriteChunk !== undefined && { rewriteChunk: this.#init.rewriteChunk }),
    })
    live.pump = pump
    void pump
      .run(start)
      .catch((err) => this.#init.log.warn({ err, transferId: live.record.transferId }, 'data stream ended'))
  }

  async #onStream(stream: ReceivingStream): Promise<void> {
    let frame: SenderFrame
    try {
      frame = await stream.read(OPEN_TIMEOUT_MS)
    } catch (err) {
      stream.abort(err as Error)
      return
    }
    const live = frame.t === 'open' ? this.#live.get(frame.transferId) : undefined
    const device = this.#deviceByPeer(stream.remotePeer)
    const bound =
      frame.t === 'open' &&
      live !== undefined &&
      live.record.role === 'receiver' &&
      device !== undefined &&
      live.device.id === device.id &&
      equalBytes(frame.token, live.token) &&
      live.state === 'Receiving'
    if (!bound || live === undefined) {
      this.#init.log.warn(
        { peer: stream.remotePeer.toString() },
        'refused a data stream that belongs to no transfer of that device',
      )
      stream.abort(new Error('no such transfer'))
      return
    }
    live.sink ??= new ReceiveSink(live.record, live.folder!, this.#init.timeouts.stall, {
      received: (bytes) => this.#progressed(live, bytes),
      chunkFailed: (file) => this.#forward(live, { type: 'data.chunkFailed', file }),
      fileFailed: (file) => this.#forward(live, { type: 'data.fileFailed', file }),
      allReceived: () => this.#forward(live, { type: 'data.allReceived' }),
      diskFull: (message) => this.#forward(live, { type: 'disk.full', message }),
      diskFailed: (message) => this.#forward(live, { type: 'disk.failed', message }),
      misbehaved: (message) => this.#forward(live, { type: 'peer.misbehaved', message }),
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
    await this.#records.save(live.record)
  }

  #progressed(live: Live, bytes: number): void {
    live.moved += bytes
    const report = live.progress.add(bytes)
    if (report === undefined) return
    this.#forward(live, { type: 'data.progressed' })
    this.#tell(live, { type: 'progress', ...report })
    this.#init.events.emit({ type: 'DropProgress', ...report })
  }

  async #verify(live: Live): Promise<void> {
    const folder = live.folder!
    const { entries } = live.record.manifest
    try {
      const complete = new Set(live.record.complete ?? [])
      for (const [i, entry] of entries.entries()) {
        if (entry.kind === 'dir') await folder.makeFolders(entry)
        else if (!complete.has(i)) {
          return this.#forward(live, { type: 'verify.failed', file: i, message: `${entry.path} is missing` })
        }
      }
      await live.sink?.stop()
      await folder.removePartial()
      this.#forward(live, { type: 'verify.passed' })
    } catch (err) {
      this.#forward(live, { type: 'verify.failed', message: (err as Error).message })
    }
  }

  #receiverHashes(live: Live): Uint8Array[] {
    const hashes = live.record.hashes ?? {}
    return live.record.manifest.entries.flatMap((e, i) => (isFile(e) ? [base64(hashes[i] ?? '')] : []))
  }

  async #senderHashes(live: Live): Promise<Uint8Array[]> {
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

  async #finish(live: Live, output: DropOutput): Promise<void> {
    const { record, device } = live
    const transferId = record.transferId
    live.pump?.stop(new Error('the transfer ended'))
    await live.sink?.stop()
    this.#live.delete(transferId)
    this.#init.node.send({ type: 'drop.finished', transferId })
    await this.#records.remove(transferId).catch(() => {})
    const result = this.#result(live, output)
    if (result.outcome === 'completed') {
      this.#init.events.emit({
        type: 'DropCompleted',
        transferId,
        deviceId: device.id,
        name: device.name,
        files: result.files.length,
        bytes: result.bytes,
      })
    } else {
      this.#init.events.emit({
        type: 'DropFailed',
        transferId,
        deviceId: device.id,
        name: device.name,
        outcome: result.outcome,
        reason: 'reason' in result ? result.reason : 'Cancelled',
        message: result.message,
      })
    }
    this.#tell(live, { type: 'done', result })
    live.result.resolve(result)
  }

  #result(live: Live, output: DropOutput): DropResult {
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
            output.by === 'local'
              ? 'The drop was cancelled here.'
              : `${live.device.name} cancelled the drop.`,
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

function base64(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'base64'))
}

function hashMap(hashes: Record<string, string>): Map<number, Uint8Array> {
  return new Map(Object.entries(hashes).map(([i, h]) => [Number(i), base64(h)]))
}
