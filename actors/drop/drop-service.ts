// The I/O shell around the drop machines (ARCHITECTURE.md "File drop"): one `drop:<transferId>` actor per
// transfer and side. Control messages travel sealed over the device's link (DROP_MESSAGE_PROTOCOL through the
// connection service); file data on `/sdnet/drop/1.0.0` streams of the same libp2p connection, each bound to its
// transfer by the token of the offer. This file spawns and re-spawns transfers, routes messages and link changes
// to their machines, performs the machines' effects in order and is what `node.drop` calls; outgoing.ts and
// incoming.ts hold the two directions' work, transfer.ts what they share.
import type { PeerId } from '@libp2p/interface'
import type { DropOutput } from '../../machines/drop.ts'
import {
  completeBitmap,
  DROP_MESSAGE_PROTOCOL,
  type DropMessage,
  decodeDropMessage,
  encodeDropMessage,
  equalBytes,
  isComplete,
  transferHash,
} from '../../transport/drop-codec.ts'
import { offerMessages } from '../../transport/drop-manifest.ts'
import { handleDropStreams } from '../../transport/drop-stream.ts'
import { UnknownTransferError } from '../errors.ts'
import type { PairedDevice } from '../store/index.ts'
import type { DropOffer, DropResult, DropSummary, DropTransfer, TransferEvent } from './api.ts'
import { Incoming } from './incoming.ts'
import { Outgoing } from './outgoing.ts'
import { Progress } from './progress.ts'
import { ReceiveFolder } from './receive-folder.ts'
import { resumePoint } from './receiving.ts'
import {
  base64,
  type DropContext,
  type DropServiceInit,
  type Effect,
  type Live,
  resultOf,
  summaryOf,
} from './transfer.ts'
import { isFile, type TransferRecord, TransferRecords } from './transfer-record.ts'

export { DEFAULT_DROP_TIMEOUTS, type DropServiceInit } from './transfer.ts'

export class DropService {
  readonly #init: DropServiceInit
  readonly #records: TransferRecords
  readonly #live = new Map<string, Live>()
  readonly #ctx: DropContext
  readonly #outgoing: Outgoing
  readonly #incoming: Incoming
  #unsubscribe: Array<() => void> = []

  constructor(init: DropServiceInit) {
    this.#init = init
    this.#records = new TransferRecords(init.dataDir)
    this.#ctx = {
      init,
      records: this.#records,
      live: this.#live,
      forward: (live, event) => this.#forward(live, event),
      tell: (live, event) => this.#tell(live, event),
      progressed: (live, bytes) => this.#progressed(live, bytes),
      deviceByPeer: (peer) => this.#deviceByPeer(peer),
      spawn: (record, token, device, resumed) => this.#spawn(record, token, device, resumed),
      sendMessage: (live, message) => this.#sendMessage(live, message),
      accept: (transferId) => this.accept(transferId),
      reject: (transferId) => this.reject(transferId),
    }
    this.#outgoing = new Outgoing(this.#ctx)
    this.#incoming = new Incoming(this.#ctx)
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
      (stream) => void this.#incoming.onStream(stream),
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
    const { record, token } = await this.#outgoing.prepare(device, paths)
    const live = this.#spawn(record, token, device, false)
    opts.signal?.addEventListener('abort', () => this.cancel(record.transferId), { once: true })
    return this.#handle(live)
  }

  on(listener: (offer: DropOffer) => void): () => void {
    return this.#incoming.on(listener)
  }

  list(): DropSummary[] {
    return [...this.#live.values()].map((live) => summaryOf(live))
  }

  get(transferId: string): DropTransfer {
    return this.#handle(this.#find(transferId))
  }

  accept(transferId: string): DropTransfer {
    const live = this.#find(transferId)
    void this.#incoming.accept(live)
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
    if (message.t === 'offer' || message.t === 'manifestPart')
      return this.#incoming.onOfferPart(deviceId, message)
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
        const ours = transferHash(base64(live.record.manifestHash), await this.#outgoing.senderHashes(live))
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
        return this.#outgoing.openDataStream(live)
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
        return this.#incoming.verify(live)
      case 'sendComplete': {
        const hash = transferHash(base64(record.manifestHash), this.#incoming.receiverHashes(live))
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

  #progressed(live: Live, bytes: number): void {
    live.moved += bytes
    const report = live.progress.add(bytes)
    if (report === undefined) return
    this.#forward(live, { type: 'data.progressed' })
    this.#tell(live, { type: 'progress', ...report })
    this.#init.events.emit({ type: 'DropProgress', ...report })
  }

  async #finish(live: Live, output: DropOutput): Promise<void> {
    const { record, device } = live
    const transferId = record.transferId
    live.pump?.stop(new Error('the transfer ended'))
    await live.sink?.stop()
    this.#live.delete(transferId)
    this.#init.node.send({ type: 'drop.finished', transferId })
    await this.#records.remove(transferId).catch(() => {})
    const result = resultOf(live, output)
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
}
