// Paired devices stay connected and talk securely, end to end: the real `sdnet` CLI and daemons on three virtual
// hosts (network namespaces on one bridge). Every test pairs its own devices and waits, through `events --json`,
// until both daemons report the sealed `/sdnet/msg/1.0.0` link; then it sends, pings, restarts, unplugs or
// revokes, and checks what each side reports.

import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { after, before, describe, type TestContext, test } from 'node:test'
import { probeProtocol } from '../../bench/messaging-floor.ts'
import {
  type CliProcess,
  type CliResult,
  createTestbed,
  type Device,
  type JsonObject,
  lastEvent,
  onlyEvent,
  type Testbed,
  text,
} from '../helpers/cli.ts'
import { canCreateNamespaces } from '../helpers/netns.ts'

const capability = canCreateNamespaces()
const TEST_TIMEOUT_MS = 90_000
/** Pairing, then dial and handshake: a few hundred ms here; generous for a loaded CI machine. */
const CONNECT_TIMEOUT_MS = 20_000
/** The connection monitor pings every second and gives up after at most 2 s (PLATFORM.md "Loss detection"). */
const LOSS_NOTICED_MS = 5_000
/** After the cable is back: libp2p's redial (0.5, 1, 2, 4, 8 s) or the connection's backoff (capped at 10 s). */
const RECONNECT_TIMEOUT_MS = 20_000
const LISTEN_PROBES = 10
const PROTOCOL = 'chat/1'

describe('paired devices across a virtual LAN', { skip: capability.ok ? false : capability.reason }, () => {
  let bed: Testbed

  before(async () => {
    bed = await createTestbed(3)
  })

  after(async () => {
    const errors = await bed?.cleanup()
    if (errors?.length) console.error(`cleanup: ${errors.map((error) => error.message).join('\n')}`)
  })

  interface Side {
    device: Device
    /** `events --json` of this device's daemon, running since before the pairing. */
    events: CliProcess
  }

  /**
   * alpha on host a and beta on host b, daemons running, paired (`pair generate --auto-accept` / `pair join`),
   * and both daemons reporting ConnectionEstablished for the other. Stopped when the test ends.
   */
  async function connectedPair(t: TestContext): Promise<[Side, Side]> {
    const [alpha, beta] = await Promise.all([bed.device(0, 'alpha'), bed.device(1, 'beta')])
    t.after(async () => {
      for (const device of [alpha, beta]) for (const cli of device.processes) cli.kill()
      for (const error of await bed.stop([alpha, beta]))
        t.diagnostic(`cleanup: ${error.message.split('\n')[0]}`)
    })
    await Promise.all([alpha.start(), beta.start()])
    const sides: [Side, Side] = [
      { device: alpha, events: alpha.events() },
      { device: beta, events: beta.events() },
    ]
    const session = await alpha.generate(['--auto-accept'])
    const joined = await beta.run(['pair', 'join', session.code, '--json'])
    assert.equal(joined.code, 0, joined.transcript)
    lastEvent(joined, 'paired')
    const generated = await session.cli.finished()
    assert.equal(generated.code, 0, generated.transcript)

    // `events` says nothing when its subscription starts. A daemon announces PairingCompleted in the same step
    // that starts the connection, before any packet of it: whoever printed it will print ConnectionEstablished.
    const paired = (event: JsonObject) => event.type === 'PairingCompleted'
    await Promise.all(sides.map((side) => side.events.waitFor(paired, CONNECT_TIMEOUT_MS)))
    await Promise.all([
      sides[0].events.waitFor(nodeEvent('ConnectionEstablished', beta), CONNECT_TIMEOUT_MS),
      sides[1].events.waitFor(nodeEvent('ConnectionEstablished', alpha), CONNECT_TIMEOUT_MS),
    ])
    await expectState(alpha, beta, 'connected')
    await expectState(beta, alpha, 'connected')
    return sides
  }

  test('messages go both ways over the sealed link, and ping answers', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const [a, b] = await connectedPair(t)
    const alpha = a.device
    const beta = b.device

    // alpha -> beta, beta named by name.
    const atBeta = beta.spawn(['listen', PROTOCOL, '--json'])
    await listening(atBeta, alpha, b, 'beta')
    const toBeta = 'hello beta'
    const mark = b.events.printed
    expectSent(await alpha.run(['send', 'beta', PROTOCOL, toBeta, '--json']), 'beta', toBeta)
    const received = await atBeta.waitFor((event) => event.event === 'message' && event.text === toBeta)
    assert.deepEqual(received, {
      event: 'message',
      deviceId: alpha.identity.deviceId,
      name: 'alpha',
      protocol: PROTOCOL,
      bytes: toBeta.length,
      text: toBeta,
    })
    const noted = await b.events.waitFor(
      (event) => event.type === 'MessageReceived' && event.size === toBeta.length,
      CONNECT_TIMEOUT_MS,
      mark,
    )
    assert.equal(noted.deviceId, alpha.identity.deviceId)
    assert.equal(noted.protocol, PROTOCOL)

    // beta -> alpha, alpha named by a prefix of its id; UTF-8 text counts bytes, not characters.
    const atAlpha = alpha.spawn(['listen', PROTOCOL, '--json'])
    const prefix = alpha.identity.deviceId.slice(0, 8)
    await listening(atAlpha, beta, a, prefix)
    const toAlpha = 'grüße aus beta 👋'
    expectSent(await beta.run(['send', prefix, PROTOCOL, toAlpha, '--json']), prefix, toAlpha)
    const back = await atAlpha.waitFor((event) => event.event === 'message' && event.text === toAlpha)
    assert.equal(back.deviceId, beta.identity.deviceId)
    assert.equal(back.name, 'beta')
    assert.equal(back.bytes, Buffer.byteLength(toAlpha))

    const pinged = await alpha.run(['ping', 'beta', '-c', '3', '-i', '0.1', '--json'])
    assert.equal(pinged.code, 0, pinged.transcript)
    const pongs = pinged.events.filter((event) => event.event === 'pong')
    assert.deepEqual(
      pongs.map((event) => event.seq),
      [1, 2, 3],
      pinged.transcript,
    )
    for (const pong of pongs) {
      assert.ok(typeof pong.rttMs === 'number' && pong.rttMs > 0 && pong.rttMs < 1_000, pinged.transcript)
    }
    const summary = lastEvent(pinged, 'summary')
    assert.equal(summary.sent, 3)
    assert.equal(summary.received, 3)
    const rtts = pongs.map((event) => event.rttMs as number)
    assert.equal(summary.minMs, Math.min(...rtts))
    assert.equal(summary.maxMs, Math.max(...rtts))
    const [entry] = await alpha.connections()
    assert.ok(entry?.rttMs !== null && entry?.rttMs !== undefined, 'devices reports the last round-trip time')
    assert.ok(entry.lastSeen !== null && entry.lastSeen <= Date.now(), 'devices reports the last contact')
  })

  test('after one daemon restarts, both reconnect without any command', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const [a, b] = await connectedPair(t)
    const alpha = a.device
    const beta = b.device

    const lostMark = a.events.printed
    await beta.stop()
    await a.events.waitFor(nodeEvent('ConnectionLost', beta), LOSS_NOTICED_MS, lostMark)
    const upMark = a.events.printed
    await beta.start()

    await a.events.waitFor(nodeEvent('ConnectionEstablished', beta), RECONNECT_TIMEOUT_MS, upMark)
    // A pong has crossed beta's new daemon both ways, so beta holds the keys too.
    const pinged = await alpha.run(['ping', 'beta', '-c', '1', '--json'])
    assert.equal(pinged.code, 0, pinged.transcript)
    assert.equal(lastEvent(pinged, 'summary').received, 1)
    await expectState(alpha, beta, 'connected')
    await expectState(beta, alpha, 'connected')
  })

  test('a pulled cable is noticed within seconds, and the devices reconnect once it is back', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const [a, b] = await connectedPair(t)
    const alpha = a.device
    const beta = b.device
    const host = beta.host
    t.after(() => host.linkUp())

    const mark = [a.events.printed, b.events.printed] as const
    const pulled = performance.now()
    await host.linkDown()
    const lost = await a.events.waitForTimed(nodeEvent('ConnectionLost', beta), LOSS_NOTICED_MS, mark[0])
    t.diagnostic(`alpha noticed the pulled cable after ${Math.round(lost.at - pulled)} ms`)
    await b.events.waitFor(nodeEvent('ConnectionLost', alpha), LOSS_NOTICED_MS, mark[1])

    const refused = await alpha.run(['send', 'beta', PROTOCOL, 'anyone there?', '--json'])
    expectNotConnected(refused)

    const upMark = [a.events.printed, b.events.printed] as const
    const plugged = performance.now()
    await host.linkUp()
    const [back] = await Promise.all([
      a.events.waitForTimed(nodeEvent('ConnectionEstablished', beta), RECONNECT_TIMEOUT_MS, upMark[0]),
      b.events.waitFor(nodeEvent('ConnectionEstablished', alpha), RECONNECT_TIMEOUT_MS, upMark[1]),
    ])
    t.diagnostic(`reconnected ${Math.round(back.at - plugged)} ms after the cable was back`)
    await expectState(alpha, beta, 'connected')
    await expectState(beta, alpha, 'connected')
    const pinged = await beta.run(['ping', 'alpha', '-c', '1', '--json'])
    assert.equal(
      pinged.code,
      0,
      `${pinged.transcript}\nwhat the daemons reported since the cable came back:\n${since(a, upMark[0])}\n${since(b, upMark[1])}`,
    )
  })

  test('revoking on one side ends the pairing on both, and revoking again is harmless', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const [a, b] = await connectedPair(t)
    const alpha = a.device
    const beta = b.device
    const mark = [a.events.printed, b.events.printed] as const

    const revoked = await alpha.run(['revoke', 'beta', '--json'])
    assert.equal(revoked.code, 0, revoked.transcript)
    assert.deepEqual(onlyEvent(revoked, 'revoked'), {
      event: 'revoked',
      deviceId: beta.identity.deviceId,
      notified: true,
    })

    const local = await a.events.waitFor(nodeEvent('DeviceRevoked', beta), CONNECT_TIMEOUT_MS, mark[0])
    assert.equal(local.by, 'local')
    const remote = await b.events.waitFor(nodeEvent('DeviceRevoked', alpha), CONNECT_TIMEOUT_MS, mark[1])
    assert.equal(remote.by, 'peer', 'beta learns it from alpha over the link')
    assert.equal(remote.name, 'alpha')
    assert.deepEqual(await alpha.connections(), [])
    assert.deepEqual(await beta.connections(), [])

    for (const [from, to] of [
      [beta, 'alpha'],
      [alpha, 'beta'],
    ] as const) {
      const sent = await from.run(['send', to, PROTOCOL, 'still there?', '--json'])
      assert.equal(sent.code, 1, sent.transcript)
      const failure = lastEvent(sent, 'error')
      assert.equal(failure.name, 'UnknownDeviceError', sent.transcript)
    }

    for (const [device, other] of [
      [alpha, 'beta'],
      [beta, 'alpha'],
    ] as const) {
      const again = await device.run(['revoke', other, '--json'])
      assert.equal(again.code, 0, again.transcript)
      assert.deepEqual(onlyEvent(again, 'revoked'), { event: 'revoked', device: other, already: true })
    }
    // Neither daemon reconnects the other afterwards.
    assert.equal(
      a.events.events.slice(mark[0]).filter((event) => event.type === 'ConnectionEstablished').length,
      0,
      a.events.transcript(),
    )
    assert.ok((await alpha.status()).running)
    assert.ok((await beta.status()).running)
  })

  test('a device that never paired cannot open the messaging protocol', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const [a] = await connectedPair(t)
    const alpha = a.device
    const gamma = await bed.device(2, 'gamma')
    t.after(async () => {
      for (const error of await bed.stop([gamma])) t.diagnostic(`cleanup: ${error.message.split('\n')[0]}`)
    })
    await gamma.start()

    const status = await alpha.status()
    const addresses = (status.addresses as unknown[]).map((address) => text(address, 'status.addresses[]'))
    const target = addresses.find((address) => address.startsWith(`/ip4/${alpha.host.address}/tcp/`))
    assert.ok(target, `alpha listens on its LAN address: ${addresses.join(', ')}`)
    const peerAddress = target.includes('/p2p/') ? target : `${target}/p2p/${alpha.identity.peerId}`

    const probe = await probeProtocol(gamma.host, peerAddress, '/sdnet/msg/1.0.0')
    t.diagnostic(`the stranger's stream: ${JSON.stringify(probe)}`)
    assert.equal(probe.connected, true, `the stranger reaches alpha at all: ${JSON.stringify(probe)}`)
    assert.ok(
      probe.outcome === 'reset' || probe.outcome === 'ended' || probe.outcome === 'refused',
      `alpha must refuse the stream at once, not ${JSON.stringify(probe)}`,
    )
    assert.doesNotMatch(
      probe.error ?? '',
      /UnsupportedProtocol|protocol selection failed/i,
      'alpha serves the protocol; it refuses this peer',
    )

    // alpha is still up and still talks to its paired device; gamma's daemon paired with nobody.
    assert.equal((await alpha.status()).running, true)
    const pinged = await alpha.run(['ping', 'beta', '-c', '1', '--json'])
    assert.equal(pinged.code, 0, pinged.transcript)
    assert.deepEqual(
      (await alpha.connections()).map((device) => device.name),
      ['beta'],
    )
    assert.deepEqual(await gamma.connections(), [])
  })
})

// ---- helpers

/** A side's event lines from `mark` on, connection actors and connection events only, for failure messages. */
function since(side: { device: Device; events: CliProcess }, mark: number): string {
  const lines = side.events.events
    .slice(mark)
    .filter((event) => event.type !== 'StateChanged' || String(event.actor).startsWith('conn:'))
    .map((event) => `  ${JSON.stringify(event)}`)
  return `${side.device.name}:\n${lines.join('\n')}`
}

/** Matches `events --json` lines of `type` about `device`. */
function nodeEvent(type: string, device: Device): (event: JsonObject) => boolean {
  return (event) => event.type === type && event.deviceId === device.identity.deviceId
}

async function expectState(device: Device, other: Device, state: string): Promise<void> {
  const list = await device.connections()
  const entry = list.find((item) => item.id === other.identity.deviceId)
  assert.ok(entry, `${device.name} lists ${other.name}: ${JSON.stringify(list)}`)
  assert.equal(entry.state, state, `${device.name} sees ${other.name} as ${entry.state}`)
}

function expectSent(result: CliResult, device: string, body: string): void {
  assert.equal(result.code, 0, result.transcript)
  assert.deepEqual(onlyEvent(result, 'sent'), {
    event: 'sent',
    device,
    protocol: PROTOCOL,
    bytes: Buffer.byteLength(body),
  })
}

/** A send to a paired device that is not connected: exit 1, and the message names the connection state. */
function expectNotConnected(result: CliResult): void {
  assert.equal(result.code, 1, result.transcript)
  const failure = lastEvent(result, 'error')
  assert.equal(failure.name, 'DeviceNotConnectedError', result.transcript)
  assert.match(text(failure.message, 'error.message'), /\((connecting|reconnecting|offline)\)/)
}

/**
 * `listen` prints nothing when its subscription reaches the daemon, and a message sent before that is dropped
 * (nobody listened). So send probes until the listener prints one; each probe is awaited on the receiving
 * daemon's events first, so this loop never waits on a timer.
 */
async function listening(listener: CliProcess, sender: Device, receiver: { events: CliProcess }, to: string) {
  const isProbe = (event: JsonObject) =>
    event.event === 'message' && typeof event.text === 'string' && event.text.startsWith('probe ')
  for (let probe = 1; probe <= LISTEN_PROBES && !listener.events.some(isProbe); probe += 1) {
    const mark = receiver.events.printed
    const sent = await sender.run(['send', to, PROTOCOL, `probe ${probe}`, '--json'])
    assert.equal(sent.code, 0, sent.transcript)
    await receiver.events.waitFor(
      (event) => event.type === 'MessageReceived' && event.protocol === PROTOCOL,
      CONNECT_TIMEOUT_MS,
      mark,
    )
  }
  await listener.waitFor(isProbe, CONNECT_TIMEOUT_MS)
}
