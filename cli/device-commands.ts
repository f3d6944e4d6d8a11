// `sdnet ping | send | listen | revoke | events`: talking to paired devices through the daemon.
import type { DeviceStatus } from '../actors/client.ts'
import { connect } from './daemon-commands.ts'
import { answerHint } from './drop-format.ts'
import type { GlobalOptions } from './options.ts'
import { type Output, UsageError } from './output.ts'

export async function devicesCommand(opts: GlobalOptions, out: Output): Promise<void> {
  const client = await connect(opts)
  const devices = await client.call<DeviceStatus[]>('devices')
  client.close()
  const ago = (at: number | null) =>
    at === null ? 'never' : `${Math.max(0, Math.round((Date.now() - at) / 1000))} s ago`
  const rows = devices.map(
    (d) =>
      `  ${d.name.padEnd(18)} ${d.state.padEnd(12)} ${(d.rttMs === null ? '-' : `${d.rttMs.toFixed(2)} ms`).padEnd(10)} last seen ${ago(d.lastSeen).padEnd(10)} ${d.fingerprint}  ${d.id.slice(0, 12)}`,
  )
  out.result(
    devices,
    devices.length === 0 ? 'No paired devices yet. Pair one with `sdnet pair generate`.' : rows.join('\n'),
  )
}

export async function pingCommand(
  opts: GlobalOptions,
  device: string,
  flags: { count?: string; interval?: string },
  out: Output,
): Promise<void> {
  const count = wholeNumber(flags.count ?? '4', '-c', 1, 1_000)
  const interval = Number(flags.interval ?? '1')
  if (!Number.isFinite(interval) || interval < 0 || interval > 60) {
    throw new UsageError(`-i "${flags.interval}" must be a number of seconds from 0 to 60`)
  }
  const client = await connect(opts)
  try {
    const summary = await client.call<{ sent: number; received: number; p50Ms: number | null }>(
      'ping',
      { device, count, intervalMs: Math.round(interval * 1000) },
      (event) => {
        if (event.event === 'pong')
          out.event(event, `reply ${event.seq}: ${(event.rttMs as number).toFixed(3)} ms`)
        else if (event.event === 'lost') out.event(event, `no reply ${event.seq}: ${event.reason}`)
      },
    )
    out.event(
      { event: 'summary', ...summary },
      `${summary.sent} sent, ${summary.received} received${summary.p50Ms === null ? '' : `, median ${summary.p50Ms.toFixed(3)} ms`}`,
    )
    if (summary.received === 0) process.exitCode = 1
  } finally {
    client.close()
  }
}

export async function sendCommand(
  opts: GlobalOptions,
  device: string,
  protocol: string,
  text: string | undefined,
  out: Output,
): Promise<void> {
  // `-` or no text: the message is standard input, sent as it is (bytes, not just text).
  const body = text === undefined || text === '-' ? await readStdin() : Buffer.from(text, 'utf8')
  const client = await connect(opts)
  try {
    await client.call('send', { device, protocol, base64: body.toString('base64') })
  } finally {
    client.close()
  }
  out.event(
    { event: 'sent', device, protocol, bytes: body.length },
    `Sent ${body.length} bytes to ${device} (${protocol}).`,
  )
}

export async function listenCommand(opts: GlobalOptions, protocol: string, out: Output): Promise<void> {
  const client = await connect(opts)
  out.info(`Listening for ${protocol} (Ctrl-C to stop)…`)
  await client.call('listen', { protocol }, (event) => {
    if (event.event !== 'message') return
    const { base64: _bytes, ...line } = event
    out.event(line, `${event.name}: ${event.text}`)
  })
}

export async function revokeCommand(opts: GlobalOptions, device: string, out: Output): Promise<void> {
  const client = await connect(opts)
  const result = await client.call<{ revoked: boolean; deviceId?: string; notified?: boolean }>('revoke', {
    device,
  })
  client.close()
  if (!result.revoked) {
    out.event(
      { event: 'revoked', device, already: true },
      `${device} is not paired (already revoked?): nothing to do.`,
    )
    return
  }
  out.event(
    { event: 'revoked', deviceId: result.deviceId, notified: result.notified },
    `Revoked ${device}.${result.notified ? ' It was told and dropped this device too.' : ' It was offline: it will be refused when it comes back.'}`,
  )
}

export async function eventsCommand(opts: GlobalOptions, out: Output): Promise<void> {
  const client = await connect(opts)
  out.info('Following events (Ctrl-C to stop)…')
  await client.call('events', {}, (event) => {
    const { type, at, ...rest } = event as { type: string; at: number; transferId?: unknown }
    // An offer says how to answer it.
    const hint =
      type === 'DropOffered' && typeof rest.transferId === 'string' ? `\n${answerHint(rest.transferId)}` : ''
    out.event(event, `${new Date(at).toISOString().slice(11, 23)} ${type} ${JSON.stringify(rest)}${hint}`)
  })
}

function wholeNumber(value: string, flag: string, min: number, max: number): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`${flag} "${value}" must be a whole number from ${min} to ${max}`)
  return n
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}
