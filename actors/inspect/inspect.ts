// Live inspection of every actor of a node: an xstate `inspect` callback that writes one JSON line per actor,
// event and snapshot (`<dataDir>/inspect.ndjson`, read by `sdnet trace`), and optionally publishes the same
// to a local WebSocket relay that @statelyai/inspect's viewers understand. Secrets never leave: keys that can
// hold one are replaced, byte arrays become their length, long hex strings their size.
import { createHash } from 'node:crypto'
import { closeSync, fchmodSync, openSync, writeSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { Duplex } from 'node:stream'
import {
  type AnyActorRef,
  type AnyStateMachine,
  type InspectionEvent,
  StateMachine,
  type StateValue,
} from 'xstate'
import { PAIR_ERROR_CODES } from '../../transport/codec.ts'
import { SEALED_ERROR_CODES } from '../../transport/msg-codec.ts'

/** Keys whose values are (or may be) secret anywhere in an event, a context or an output. */
export const SECRET_KEYS: readonly string[] = [
  'code',
  'words',
  'proofKey',
  'seed',
  'password',
  'nonce',
  'sig',
  'mac',
  'eph',
  'ct',
  'body',
  'publicKey',
]

/**
 * `code` is also the field of protocol error codes (`peer.failed {code: 'Rejected'}`), which machines branch on
 * and traces need; those values are kept. Any other `code` (a pairing code, say) is redacted.
 */
const ERROR_CODES: ReadonlySet<string> = new Set([...PAIR_ERROR_CODES, ...SEALED_ERROR_CODES])

const REDACTED = '<redacted>'
const MAX_DEPTH = 8
// 32 bytes or more written as hex: a key, a nonce, a hash. Device ids (16 bytes) stay readable.
const LONG_HEX = /^[0-9a-f]{64,}$/i

/**
 * A JSON-safe copy of `value` with secrets removed: values under `keys` (SECRET_KEYS by default) become
 * `"<redacted>"`, byte arrays `"<N bytes>"`, hex strings of 32 bytes or more `"<N bytes hex>"`, errors
 * `{ name, message }`, actor references `"<actor id>"`; functions are dropped (or, with `functions: 'name'`,
 * become `{ type: name }`, as Stately's viewer expects in a machine definition).
 */
export function redact(
  value: unknown,
  options: { keys?: ReadonlySet<string>; functions?: 'drop' | 'name' } = {},
): unknown {
  const keys = options.keys ?? new Set(SECRET_KEYS)
  const seen = new WeakSet<object>()
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === 'string') return LONG_HEX.test(v) ? `<${v.length / 2} bytes hex>` : v
    if (typeof v === 'bigint') return v.toString()
    if (typeof v === 'function')
      return options.functions === 'name' ? { type: v.name || 'inline' } : undefined
    if (v === null || typeof v !== 'object') return typeof v === 'symbol' ? undefined : v
    if (v instanceof Uint8Array) return `<${v.length} bytes>`
    if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return `<${v.byteLength} bytes>`
    if (v instanceof Error) return { name: v.name, message: v.message }
    if (isActorRef(v)) return `<actor ${v.id}>`
    if (seen.has(v)) return '<cycle>'
    if (depth >= MAX_DEPTH) return '<deep>'
    seen.add(v)
    try {
      if (Array.isArray(v) || v instanceof Set) return [...v].map((item) => walk(item, depth + 1))
      if (v instanceof Map) return walk(Object.fromEntries(v), depth)
      if (v instanceof Date) return v.toISOString()
      const json = (v as { toJSON?: unknown }).toJSON
      if (typeof json === 'function') return walk(json.call(v), depth + 1)
      const out: Record<string, unknown> = {}
      for (const [key, item] of Object.entries(v)) {
        const secret = keys.has(key) && !(key === 'code' && typeof item === 'string' && ERROR_CODES.has(item))
        const clean = secret ? REDACTED : walk(item, depth + 1)
        if (clean !== undefined) out[key] = clean
      }
      return out
    } finally {
      seen.delete(v)
    }
  }
  return walk(value, 0)
}

function isActorRef(value: object): value is AnyActorRef {
  const ref = value as Partial<AnyActorRef>
  return typeof ref.sessionId === 'string' && typeof ref.send === 'function' && typeof ref.id === 'string'
}

/** One line of `inspect.ndjson`. */
export type TraceLine =
  | {
      at: number
      type: 'actor'
      actor: string
      parent?: string
      /** The machine's id (`initiator`) when the actor runs a state machine; replay looks it up by this. */
      machine?: string
    }
  | { at: number; type: 'event'; actor: string; source?: string; event: TraceEvent }
  | {
      at: number
      type: 'snapshot'
      actor: string
      /** The event this snapshot is the result of. */
      event: TraceEvent
      /** The state before it; absent on the first snapshot and for actors without states. */
      from?: StateValue
      state?: StateValue
      status: string
      output?: unknown
    }

export type TraceEvent = { type: string; [key: string]: unknown }

/** What the inspection events tell of an actor (its `actorRef` is typed loosely, as an `ActorRefLike`). */
type InspectedRef = { id: string; sessionId: string; _parent?: InspectedRef; logic?: unknown }

const machineOf = (ref: InspectedRef): AnyStateMachine | undefined => {
  const logic = ref.logic
  return logic instanceof StateMachine ? (logic as AnyStateMachine) : undefined
}

/**
 * How traces name an actor: the machine's id for a root actor (`node`), its id for a child of the root
 * (`pair:3f2a`, `conn:ab12`, `startTransport`), and `<parent>/<id>` deeper down (`conn:ab12/keys`), since
 * ids like `keys` repeat under every connection.
 */
export function actorLabel(ref: InspectedRef): string {
  const parent = ref._parent
  if (parent === undefined) return ref.id === ref.sessionId ? (machineOf(ref)?.id ?? ref.id) : ref.id
  return parent._parent === undefined ? ref.id : `${actorLabel(parent)}/${ref.id}`
}

export type InspectorOptions = {
  /** Append JSON lines here (created with mode 0600). */
  file?: string
  /** Also publish to a WebSocket relay on 127.0.0.1 (`port: 0` picks a free port). */
  stately?: { port: number }
  /** Keys to redact in addition to SECRET_KEYS. */
  redact?: { keys?: readonly string[] }
  /** Milliseconds since the epoch; `Date.now` by default. */
  now?: () => number
}

export type Inspector = ((inspection: InspectionEvent) => void) & {
  /** Where viewers connect, when `stately` is on: `ws://127.0.0.1:<port>` and the page that shows it. */
  readonly stately?: { url: string; viewerUrl: string }
  /** Stops the relay and closes the file. */
  close(): Promise<void>
}

/**
 * An `inspect` callback for `createActor` that records every actor, event and snapshot of an actor system with
 * secrets removed. Resolves once the relay (if any) listens; fails with the listen error otherwise.
 *
 * @example
 * const inspector = await createInspector({ file: join(dataDir, 'inspect.ndjson'), stately: { port: 8080 } })
 * const actor = createActor(machine, { input, inspect: inspector })
 * console.log(`inspect at ${inspector.stately?.viewerUrl}`)
 */
export async function createInspector(options: InspectorOptions = {}): Promise<Inspector> {
  const keys = new Set([...SECRET_KEYS, ...(options.redact?.keys ?? [])])
  const now = options.now ?? Date.now
  const clean = (value: unknown) => redact(value, { keys })
  const fd = options.file === undefined ? undefined : openSync(options.file, 'a', 0o600)
  if (fd !== undefined) fchmodSync(fd, 0o600)
  const relay = options.stately === undefined ? undefined : await startRelay(options.stately.port)
  const lastState = new WeakMap<InspectedRef, StateValue>()

  const lineOf = (inspection: InspectionEvent, at: number): TraceLine | undefined => {
    const ref = inspection.actorRef as unknown as InspectedRef
    const actor = actorLabel(ref)
    switch (inspection.type) {
      case '@xstate.actor': {
        const machine = machineOf(ref)?.id
        return {
          at,
          type: 'actor',
          actor,
          ...(ref._parent !== undefined && { parent: actorLabel(ref._parent) }),
          ...(machine !== undefined && { machine }),
        }
      }
      case '@xstate.event': {
        const source = inspection.sourceRef as InspectedRef | undefined
        return {
          at,
          type: 'event',
          actor,
          ...(source !== undefined && source !== ref && { source: actorLabel(source) }),
          event: clean(inspection.event) as TraceEvent,
        }
      }
      case '@xstate.snapshot': {
        const snapshot = inspection.snapshot as { value?: StateValue; status: string; output?: unknown }
        const from = lastState.get(ref)
        if (snapshot.value !== undefined) lastState.set(ref, snapshot.value)
        return {
          at,
          type: 'snapshot',
          actor,
          event: clean(inspection.event) as TraceEvent,
          ...(from !== undefined && { from }),
          ...(snapshot.value !== undefined && { state: snapshot.value }),
          status: snapshot.status,
          ...(snapshot.output !== undefined && { output: clean(snapshot.output) }),
        }
      }
      default:
        return undefined
    }
  }

  const inspect = (inspection: InspectionEvent): void => {
    const at = now()
    const line = lineOf(inspection, at)
    if (line === undefined) return
    if (fd !== undefined) writeSync(fd, `${JSON.stringify(line)}\n`)
    if (relay !== undefined) {
      const message = toStately(inspection, at, keys)
      if (message !== undefined) relay.publish(message)
    }
  }

  return Object.assign(inspect, {
    ...(relay !== undefined && { stately: { url: relay.url, viewerUrl: relay.viewerUrl } }),
    close: async () => {
      if (fd !== undefined) closeSync(fd)
      await relay?.close()
    },
  })
}

// --- @statelyai/inspect's wire format ----------------------------------------------------------------------
// What its `createWebSocketInspector` sends and its receivers and viewer page read (package version 0.7.2):
// JSON text messages `@xstate.actor` / `@xstate.event` / `@xstate.snapshot` keyed by xstate session ids.

const STATELY_VERSION = '0.7.2'

function toStately(inspection: InspectionEvent, at: number, keys: ReadonlySet<string>): object | undefined {
  const ref = inspection.actorRef as unknown as InspectedRef
  const common = {
    sessionId: ref.sessionId,
    rootId: inspection.rootId,
    id: null,
    createdAt: String(at),
    _version: STATELY_VERSION,
  }
  const snapshotOf = (snapshot: unknown) => {
    const s = snapshot as {
      status?: string
      value?: unknown
      context?: unknown
      output?: unknown
      error?: unknown
    }
    return redact(
      { status: s.status, value: s.value, context: s.context, output: s.output, error: s.error },
      { keys },
    )
  }
  switch (inspection.type) {
    case '@xstate.actor': {
      const machine = machineOf(ref)
      const name = actorLabel(ref)
      const definition =
        machine === undefined ? { id: name } : redact(machine.config, { keys, functions: 'name' })
      return {
        type: '@xstate.actor',
        name,
        definition: JSON.stringify(definition),
        parentId: ref._parent?.sessionId,
        // announced before its first snapshot exists; that snapshot follows as its own message
        snapshot: { status: 'active' },
        ...common,
      }
    }
    case '@xstate.event':
      return {
        type: '@xstate.event',
        event: redact(inspection.event, { keys }),
        sourceId: inspection.sourceRef?.sessionId,
        ...common,
      }
    case '@xstate.snapshot':
      return {
        type: '@xstate.snapshot',
        event: redact(inspection.event, { keys }),
        snapshot: snapshotOf(inspection.snapshot),
        ...common,
      }
    default:
      return undefined
  }
}

// --- the relay: a minimal WebSocket server (RFC 6455), publish only ---------------------------------------------

const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
/** Messages a viewer that connects late is sent first: actor definitions, then the latest events. */
const KEEP_ACTORS = 500
const KEEP_EVENTS = 500
/** A viewer that falls this far behind is dropped rather than buffered without end. */
const MAX_BACKLOG = 4 * 1024 * 1024
const MAX_INBOUND_FRAME = 64 * 1024

type Relay = { url: string; viewerUrl: string; publish(message: object): void; close(): Promise<void> }

function frame(opcode: number, payload: Buffer): Buffer {
  const length = payload.length
  const header = Buffer.alloc(length < 126 ? 2 : length < 65536 ? 4 : 10)
  header[0] = 0x80 | opcode
  if (length < 126) header[1] = length
  else if (length < 65536) {
    header[1] = 126
    header.writeUInt16BE(length, 2)
  } else {
    header[1] = 127
    header.writeBigUInt64BE(BigInt(length), 2)
  }
  return Buffer.concat([header, payload])
}

/** Answers close and ping frames; anything a viewer sends otherwise is ignored (the relay only publishes). */
function handleInbound(socket: Duplex, drop: () => void): void {
  let buffered = Buffer.alloc(0)
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk])
    while (buffered.length >= 2) {
      const opcode = buffered[0]! & 0x0f
      const maskLength = buffered[1]! & 0x80 ? 4 : 0
      let length = buffered[1]! & 0x7f
      let offset = 2
      if (length === 126) {
        if (buffered.length < 4) return
        length = buffered.readUInt16BE(2)
        offset = 4
      } else if (length === 127) {
        if (buffered.length < 10) return
        length = Number(buffered.readBigUInt64BE(2))
        offset = 10
      }
      if (length > MAX_INBOUND_FRAME) return drop()
      if (buffered.length < offset + maskLength + length) return
      const mask = buffered.subarray(offset, offset + maskLength)
      const payload = Buffer.from(buffered.subarray(offset + maskLength, offset + maskLength + length))
      if (maskLength > 0) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!
      buffered = buffered.subarray(offset + maskLength + length)
      if (opcode === 0x8) {
        socket.end(frame(0x8, payload.subarray(0, 2)))
        return drop()
      }
      if (opcode === 0x9) socket.write(frame(0xa, payload))
    }
  })
}

/** The page at http://127.0.0.1:<port>/: Stately's viewer (from stately.ai) fed from this relay, as theirs does. */
function viewerPage(websocketUrl: string): string {
  return `<!DOCTYPE html>
<html><head><title>sdnet inspector</title><style>*{margin:0;padding:0}html,body,iframe{width:100%;height:100%;border:none}</style></head>
<body><iframe id="inspector" src="https://stately.ai/inspect"></iframe>
<script>
const frame = document.getElementById('inspector'); const pending = []; let ready = false
addEventListener('message', (e) => { if (e.data && e.data.type === '@statelyai.connected') { ready = true; pending.splice(0).forEach((m) => frame.contentWindow.postMessage(m, '*')) } })
const ws = new WebSocket(${JSON.stringify(websocketUrl)})
ws.onmessage = (e) => { const m = JSON.parse(e.data); if (ready) frame.contentWindow.postMessage(m, '*'); else pending.push(m) }
</script></body></html>`
}

async function startRelay(port: number): Promise<Relay> {
  const clients = new Set<Duplex>()
  const actors: string[] = []
  const events: string[] = []
  let origins: string[] = []
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '/') !== '/') {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(viewerPage(relay.url))
  })

  const accept = (req: IncomingMessage, socket: Duplex) => {
    const key = req.headers['sec-websocket-key']
    // Browsers let any page open a WebSocket to localhost: only our own viewer page (or a non-browser
    // client, which sends no Origin) may read the trace.
    const origin = req.headers.origin
    if (origin !== undefined && !origins.includes(origin)) {
      socket.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\n\r\n')
      return
    }
    if (typeof key !== 'string' || req.headers.upgrade?.toLowerCase() !== 'websocket') {
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n')
      return
    }
    const acceptKey = createHash('sha1')
      .update(key + WEBSOCKET_GUID)
      .digest('base64')
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${acceptKey}\r\n\r\n`,
    )
    const drop = () => {
      clients.delete(socket)
      socket.destroy()
    }
    clients.add(socket)
    socket.on('error', drop)
    socket.on('close', drop)
    handleInbound(socket, drop)
    for (const message of [...actors, ...events]) socket.write(frame(0x1, Buffer.from(message)))
  }
  server.on('upgrade', accept)

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const bound = (server.address() as { port: number }).port
  origins = [`http://127.0.0.1:${bound}`, `http://localhost:${bound}`]
  const relay: Relay = {
    url: `ws://127.0.0.1:${bound}`,
    viewerUrl: `http://127.0.0.1:${bound}/`,
    publish(message) {
      const text = JSON.stringify(message)
      const kept = (message as { type: string }).type === '@xstate.actor' ? actors : events
      kept.push(text)
      if (kept.length > (kept === actors ? KEEP_ACTORS : KEEP_EVENTS)) kept.shift()
      const data = frame(0x1, Buffer.from(text))
      for (const socket of clients) {
        if (socket.writableLength > MAX_BACKLOG) socket.destroy()
        else socket.write(data)
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of clients) socket.destroy()
        server.close(() => resolve())
      }),
  }
  return relay
}
