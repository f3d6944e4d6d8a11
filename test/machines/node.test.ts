import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type AnyActorRef, createActor, fromPromise, toPromise } from 'xstate'
import type { ConnectionEvent } from '../../machines/connection.machine.ts'
import {
  EffectNotProvidedError,
  type NodeEvent,
  nodeMachine,
  type TransportInfo,
} from '../../machines/node.machine.ts'
import type { DropEvent, DropRole } from '../../machines/transfers.ts'
import type { DeviceInfo } from '../../machines/types.ts'
import { DROP_INPUT, dropEffect, NODE_INPUT, startRecorded } from './harness.ts'

const input = NODE_INPUT
const transport: TransportInfo = { peerId: '12D3KooWself', addresses: ['/ip4/127.0.0.1/tcp/4001'] }
const initiatorTimeouts = { codeTtl: 600_000, step: 10_000, confirm: 60_000 }
const joinerTimeouts = { discovery: 30_000, settle: 3_000, dial: 5_000, step: 10_000, confirm: 60_000 }
const generate = (sessionId: string): NodeEvent => ({
  type: 'cmd.pairGenerate',
  sessionId,
  autoAccept: false,
  timeouts: initiatorTimeouts,
})
const join = (sessionId: string): NodeEvent => ({ type: 'cmd.pairJoin', sessionId, timeouts: joinerTimeouts })
const device: DeviceInfo = { id: 'phone', name: 'Phone', publicKey: new Uint8Array(32).fill(3) }

/** Lets settled promises deliver their results (invoked actors answer on the microtask queue). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

/** A node whose transport effects are promises the test settles by hand. */
function node() {
  const start = Promise.withResolvers<TransportInfo>()
  const stop = Promise.withResolvers<void>()
  const machine = nodeMachine.provide({
    actors: {
      startTransport: fromPromise(() => start.promise),
      stopTransport: fromPromise(() => stop.promise),
    },
  })
  return { ...startRecorded(machine, input), start, stop }
}

async function running() {
  const run = node()
  run.start.resolve(transport)
  await settle()
  assert.deepEqual(run.drain(), [{ type: 'node.started', ...transport }])
  assert.equal(run.actor.getSnapshot().value, 'Running')
  return run
}

/** The spawned actor registered as `pair:<sessionId>`, the id the actor layer looks children up by. */
const child = (run: ReturnType<typeof node>, sessionId: string) =>
  run.actor.getSnapshot().children[`pair:${sessionId}`] as AnyActorRef | undefined

/** The connection registered as `conn:<deviceId>`. */
const conn = (run: ReturnType<typeof node>, deviceId: string) =>
  run.actor.getSnapshot().children[`conn:${deviceId}`] as AnyActorRef | undefined
const connectDevice = (deviceId: string, peerId: string, jitterSeed = 7): NodeEvent => ({
  type: 'cmd.connectDevice',
  deviceId,
  peerId,
  jitterSeed,
})
const forwardTo = (deviceId: string, event: ConnectionEvent): NodeEvent => ({
  type: 'device.forward',
  deviceId,
  event,
})

/** The drop registered as `drop:<transferId>`. */
const drop = (run: ReturnType<typeof node>, transferId: string) =>
  run.actor.getSnapshot().children[`drop:${transferId}`] as AnyActorRef | undefined
const startDrop = (transferId: string, role: DropRole, resumed?: boolean): NodeEvent => ({
  type: 'cmd.startDrop',
  role,
  ...DROP_INPUT,
  transferId,
  ...(resumed !== undefined && { resumed }),
})
const forwardToDrop = (transferId: string, event: DropEvent): NodeEvent => ({
  type: 'drop.forward',
  transferId,
  event,
})

describe('node machine', () => {
  test('starts the transport and reports who it is', async () => {
    const run = await running()
    assert.deepEqual(run.actor.getSnapshot().context.transport, transport)
  })

  test('fails when the transport does not start, with its message', async () => {
    const run = node()
    run.start.reject(new Error('listen EADDRINUSE 127.0.0.1:4001'))
    await settle()
    assert.deepEqual(run.drain(), [])
    assert.deepEqual(run.actor.getSnapshot().output, {
      outcome: 'failed',
      reason: 'StartFailed',
      message: 'listen EADDRINUSE 127.0.0.1:4001',
    })
  })

  test('fails when the transport takes longer than `start`', () => {
    const run = node()
    run.advance(input.timeouts.start - 1)
    assert.equal(run.actor.getSnapshot().value, 'Starting')
    run.advance(1)
    assert.deepEqual(run.actor.getSnapshot().output, {
      outcome: 'failed',
      reason: 'StartTimeout',
      message: 'the transport did not start within 30000 ms',
    })
  })

  test('without provided transport effects it fails with EffectNotProvidedError', async () => {
    const actor = createActor(nodeMachine, { input }).start()
    const output = await toPromise(actor)
    assert.deepEqual(output, {
      outcome: 'failed',
      reason: 'StartFailed',
      message: 'startTransport must be provided with machine.provide()',
    })
    const stop = createActor(
      nodeMachine.implementations.actors.stopTransport as ReturnType<typeof fromPromise>,
    )
    await assert.rejects(toPromise(stop.start()), (error) => {
      assert.ok(error instanceof EffectNotProvidedError)
      assert.equal(error.name, 'EffectNotProvidedError')
      assert.equal(error.message, 'stopTransport must be provided with machine.provide()')
      return true
    })
  })

  test('commands that need a running node are ignored while starting', () => {
    const run = node()
    assert.deepEqual(run.send(generate('s1')), [])
    assert.equal(child(run, 's1'), undefined)
  })

  test('spawns one child per session, pair:<sessionId>, with the input it was asked for', async () => {
    const run = await running()
    assert.deepEqual(run.send(generate('s1')), [])
    assert.deepEqual(run.send(join('s2')), [])
    const initiator = child(run, 's1')!.getSnapshot()
    const joiner = child(run, 's2')!.getSnapshot()
    assert.equal(initiator.value, 'WaitingForConnection')
    assert.deepEqual(initiator.context, { sessionId: 's1', autoAccept: false, timeouts: initiatorTimeouts })
    assert.equal(joiner.value, 'Discovering')
    assert.deepEqual(joiner.context.timeouts, joinerTimeouts)
    const sessions = run.actor.getSnapshot().context.sessions
    assert.deepEqual(Object.keys(sessions), ['s1', 's2'])
    assert.equal(sessions.s1?.role, 'initiator')
    assert.equal(sessions.s2?.role, 'joiner')
  })

  test('refuses a session id that is taken, whatever the role, and stays up', async () => {
    const run = await running()
    run.send(generate('s1'))
    const first = child(run, 's1')
    assert.deepEqual(run.send(generate('s1')), [
      { type: 'session.rejected', sessionId: 's1', reason: 'SessionIdTaken' },
    ])
    assert.deepEqual(run.send(join('s1')), [
      { type: 'session.rejected', sessionId: 's1', reason: 'SessionIdTaken' },
    ])
    assert.equal(child(run, 's1'), first)
    assert.equal(run.actor.getSnapshot().status, 'active')
  })

  test('a session id that is a property of every object is still a free id', async () => {
    const run = await running()
    assert.deepEqual(run.send(generate('constructor')), [])
    assert.equal(child(run, 'constructor')?.getSnapshot().value, 'WaitingForConnection')
    assert.deepEqual(
      run.send({ type: 'session.forward', sessionId: 'toString', event: { type: 'cmd.cancel' } }),
      [{ type: 'session.unknown', sessionId: 'toString' }],
    )
  })

  test('forwards an event to its live session; the session emits its own effects', async () => {
    const run = await running()
    run.send(generate('s1'))
    const effects: unknown[] = []
    child(run, 's1')!.on('*', (effect) => effects.push(effect))
    const request = { type: 'peer.requestReceived', peerId: 'J', device } as const
    assert.deepEqual(run.send({ type: 'session.forward', sessionId: 's1', event: request }), [])
    assert.equal(child(run, 's1')!.getSnapshot().value, 'ChallengeSent')
    assert.deepEqual(effects, [{ type: 'sendChallenge', sessionId: 's1', peerId: 'J' }])
  })

  test('reports events for sessions it does not hold, or that have ended', async () => {
    const run = await running()
    const cancel = { type: 'cmd.cancel' } as const
    assert.deepEqual(run.send({ type: 'session.forward', sessionId: 'nope', event: cancel }), [
      { type: 'session.unknown', sessionId: 'nope' },
    ])
    run.send(generate('s1'))
    assert.deepEqual(run.send({ type: 'session.forward', sessionId: 's1', event: cancel }), [])
    assert.equal(child(run, 's1')!.getSnapshot().status, 'done')
    assert.deepEqual(run.send({ type: 'session.forward', sessionId: 's1', event: cancel }), [
      { type: 'session.unknown', sessionId: 's1' },
    ])
  })

  test('a discovered peer goes to every live joiner and to nobody else', async () => {
    const run = await running()
    run.send(generate('s1'))
    run.send(join('s2'))
    run.send(join('s3'))
    run.send({ type: 'session.forward', sessionId: 's3', event: { type: 'cmd.cancel' } })
    const dials: unknown[] = []
    for (const id of ['s1', 's2', 's3']) child(run, id)!.on('*', (effect) => dials.push(effect))
    assert.deepEqual(run.send({ type: 'transport.peerDiscovered', peerId: 'P' }), [])
    assert.deepEqual(dials, [{ type: 'dialCandidate', sessionId: 's2', peerId: 'P', attempt: 1 }])
    assert.equal(child(run, 's1')!.getSnapshot().value, 'WaitingForConnection')
  })

  test('a finished session is stopped and forgotten, and its id can be used again', async () => {
    const run = await running()
    run.send(join('s2'))
    const finished = child(run, 's2')!
    assert.deepEqual(run.send({ type: 'session.finished', sessionId: 's2' }), [])
    assert.equal(finished.getSnapshot().status, 'stopped')
    assert.equal(child(run, 's2'), undefined)
    assert.deepEqual(run.actor.getSnapshot().context.sessions, {})
    run.send(join('s2'))
    assert.notEqual(child(run, 's2'), undefined)
  })

  test('stopping cancels every live session, stops the transport, and ends Stopped', async () => {
    const run = await running()
    run.send(generate('s1'))
    run.send({
      type: 'session.forward',
      sessionId: 's1',
      event: { type: 'peer.requestReceived', peerId: 'J', device },
    })
    run.send(join('s2'))
    const effects: unknown[] = []
    child(run, 's1')!.on('*', (effect) => effects.push(effect))
    assert.deepEqual(run.send({ type: 'cmd.stop' }), [])
    assert.equal(run.actor.getSnapshot().value, 'Stopping')
    assert.deepEqual(effects, [{ type: 'sendFailure', sessionId: 's1', peerId: 'J', code: 'Cancelled' }])
    assert.deepEqual(child(run, 's1')!.getSnapshot().output, { outcome: 'cancelled' })
    assert.deepEqual(child(run, 's2')!.getSnapshot().output, { outcome: 'cancelled' })
    run.stop.resolve()
    await settle()
    assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'stopped' })
  })

  test('a transport that fails to stop, or hangs past `stop`, still ends Stopped', async () => {
    const failing = await running()
    failing.send({ type: 'cmd.stop' })
    failing.stop.reject(new Error('close timed out'))
    await settle()
    assert.deepEqual(failing.actor.getSnapshot().output, { outcome: 'stopped' })

    const hanging = await running()
    hanging.send({ type: 'cmd.stop' })
    hanging.advance(input.timeouts.stop - 1)
    assert.equal(hanging.actor.getSnapshot().value, 'Stopping')
    hanging.advance(1)
    assert.deepEqual(hanging.actor.getSnapshot().output, { outcome: 'stopped' })
  })

  test('a transport failure ends the node, and its sessions with it', async () => {
    const run = await running()
    run.send(generate('s1'))
    const session = child(run, 's1')!
    assert.deepEqual(run.send({ type: 'transport.failed', message: 'the listener closed' }), [])
    assert.deepEqual(run.actor.getSnapshot().output, {
      outcome: 'failed',
      reason: 'TransportFailed',
      message: 'the listener closed',
    })
    assert.equal(session.getSnapshot().status, 'stopped')
  })

  test('spawns one connection per device, conn:<deviceId>, with the node connection settings', async () => {
    const run = await running()
    assert.deepEqual(run.send(connectDevice('laptop', 'PL', 42)), [])
    const connection = conn(run, 'laptop')!.getSnapshot()
    assert.equal(connection.value, 'Disconnected')
    // exactly the settings and the spec: nothing of the command event (its `type`) leaks into the child
    assert.deepEqual(connection.context, {
      deviceId: 'laptop',
      peerId: 'PL',
      jitterSeed: 42,
      rekeyAfterFrames: input.connection.rekeyAfterFrames,
      timeouts: input.connection.timeouts,
      attempt: 0,
      role: undefined,
    })
    const devices = run.actor.getSnapshot().context.devices
    assert.deepEqual(Object.keys(devices), ['laptop'])
    assert.equal(devices.laptop?.peerId, 'PL')
    assert.equal(devices.laptop?.ref, conn(run, 'laptop'))
  })

  test('refuses a device id that is taken, and keeps the first connection', async () => {
    const run = await running()
    run.send(connectDevice('laptop', 'PL'))
    const first = conn(run, 'laptop')
    assert.deepEqual(run.send(connectDevice('laptop', 'PX')), [
      { type: 'device.rejected', deviceId: 'laptop', reason: 'DeviceIdTaken' },
    ])
    assert.equal(conn(run, 'laptop'), first)
    assert.equal(run.actor.getSnapshot().context.devices.laptop?.peerId, 'PL')
    assert.deepEqual(run.send(connectDevice('constructor', 'PC')), [], 'an inherited property is a free id')
    assert.equal(conn(run, 'constructor')?.getSnapshot().value, 'Disconnected')
  })

  test('forwards an event to its live connection; the connection emits its own effects', async () => {
    const run = await running()
    run.send(connectDevice('laptop', 'PL'))
    const effects: unknown[] = []
    conn(run, 'laptop')!.on('*', (effect) => effects.push(effect))
    assert.deepEqual(run.send(forwardTo('laptop', { type: 'cmd.connect' })), [])
    assert.equal(conn(run, 'laptop')!.getSnapshot().value, 'Dialing')
    assert.deepEqual(effects, [{ type: 'dial', deviceId: 'laptop', peerId: 'PL' }])
  })

  test('reports events for devices it does not hold, or whose connection has ended', async () => {
    const run = await running()
    assert.deepEqual(run.send(forwardTo('nope', { type: 'cmd.connect' })), [
      { type: 'device.unknown', deviceId: 'nope' },
    ])
    run.send(connectDevice('laptop', 'PL'))
    assert.deepEqual(run.send(forwardTo('laptop', { type: 'cmd.revoke' })), [])
    assert.deepEqual(conn(run, 'laptop')!.getSnapshot().output, { outcome: 'revoked', by: 'local' })
    assert.deepEqual(run.send(forwardTo('laptop', { type: 'cmd.connect' })), [
      { type: 'device.unknown', deviceId: 'laptop' },
    ])
  })

  test('a discovered peer goes to the live connection on that peer, and still to every live joiner', async () => {
    const run = await running()
    run.send(connectDevice('laptop', 'PL'))
    run.send(connectDevice('phone', 'PP'))
    run.send(connectDevice('old', 'PL'))
    run.send(forwardTo('old', { type: 'cmd.revoke' }))
    run.send(join('s2'))
    const effects: unknown[] = []
    for (const id of ['laptop', 'phone', 'old']) conn(run, id)!.on('*', (effect) => effects.push(effect))
    child(run, 's2')!.on('*', (effect) => effects.push(effect))
    assert.deepEqual(run.send({ type: 'transport.peerDiscovered', peerId: 'PL' }), [])
    assert.deepEqual(effects, [
      { type: 'dialCandidate', sessionId: 's2', peerId: 'PL', attempt: 1 },
      { type: 'dial', deviceId: 'laptop', peerId: 'PL' },
    ])
    assert.equal(conn(run, 'phone')!.getSnapshot().value, 'Disconnected')
  })

  test('a forgotten device is stopped and forgotten, and its id can be used again', async () => {
    const run = await running()
    run.send(connectDevice('laptop', 'PL'))
    const forgotten = conn(run, 'laptop')!
    assert.deepEqual(run.send({ type: 'cmd.forgetDevice', deviceId: 'laptop' }), [])
    assert.equal(forgotten.getSnapshot().status, 'stopped')
    assert.equal(conn(run, 'laptop'), undefined)
    assert.deepEqual(run.actor.getSnapshot().context.devices, {})
    assert.deepEqual(
      run.send({ type: 'cmd.forgetDevice', deviceId: 'laptop' }),
      [],
      'forgetting twice is harmless',
    )
    run.send(connectDevice('laptop', 'PL2'))
    assert.equal(conn(run, 'laptop')?.getSnapshot().context.peerId, 'PL2')
  })

  test('device commands are ignored until the node runs, and its connections end with it', async () => {
    const run = node()
    assert.deepEqual(run.send(connectDevice('laptop', 'PL')), [])
    assert.equal(conn(run, 'laptop'), undefined)
    run.start.resolve(transport)
    await settle()
    run.send(connectDevice('laptop', 'PL'))
    const connection = conn(run, 'laptop')!
    run.send({ type: 'transport.failed', message: 'the listener closed' })
    assert.equal(connection.getSnapshot().status, 'stopped')
  })

  test('spawns one drop per transfer, drop:<transferId>, on either side, with the input it was asked for', async () => {
    const run = await running()
    assert.deepEqual(run.send(startDrop('t1', 'sender')), [])
    assert.deepEqual(run.send(startDrop('t2', 'receiver')), [])
    assert.deepEqual(run.send(startDrop('t3', 'sender', true)), [])
    // exactly the input: nothing of the command event (its `type`, the role) leaks into the child
    const { transferId: _, ...shared } = DROP_INPUT
    assert.deepEqual(
      ['t1', 't2', 't3'].map((id) => [
        drop(run, id)!.getSnapshot().value,
        drop(run, id)!.getSnapshot().context,
      ]),
      [
        ['Offering', { ...shared, transferId: 't1' }],
        ['Offered', { ...shared, transferId: 't2', failedFiles: [] }],
        ['WaitingForPeer', { ...shared, transferId: 't3', resumed: true }],
      ],
    )
    const transfers = run.actor.getSnapshot().context.transfers
    assert.deepEqual(
      Object.entries(transfers).map(([id, transfer]) => [id, transfer.role, transfer.ref === drop(run, id)]),
      [
        ['t1', 'sender', true],
        ['t2', 'receiver', true],
        ['t3', 'sender', true],
      ],
    )
  })

  test('refuses a transfer id that is taken, whatever the side, and keeps the first drop', async () => {
    const run = await running()
    run.send(startDrop('t1', 'sender'))
    const first = drop(run, 't1')
    for (const role of ['sender', 'receiver'] as const) {
      assert.deepEqual(run.send(startDrop('t1', role)), [
        { type: 'drop.rejected', transferId: 't1', reason: 'TransferIdTaken' },
      ])
    }
    assert.equal(drop(run, 't1'), first)
    assert.equal(run.actor.getSnapshot().context.transfers.t1?.role, 'sender')
    assert.equal(run.actor.getSnapshot().status, 'active')
    assert.deepEqual(run.send(startDrop('constructor', 'receiver')), [], 'an inherited property is a free id')
    assert.equal(drop(run, 'constructor')?.getSnapshot().value, 'Offered')
  })

  test('forwards an event to its live drop; the drop emits its own effects', async () => {
    const run = await running()
    run.send(startDrop('t1', 'sender'))
    const effects: unknown[] = []
    drop(run, 't1')!.on('*', (effect) => effects.push(effect))
    assert.deepEqual(run.send(forwardToDrop('t1', { type: 'link.up' })), [])
    assert.equal(drop(run, 't1')!.getSnapshot().value, 'AwaitingConsent')
    assert.deepEqual(effects, [dropEffect('persist', { phase: 'AwaitingConsent' }), dropEffect('sendOffer')])
  })

  test('reports events for transfers it does not hold, or that have ended', async () => {
    const run = await running()
    const cancel = { type: 'cmd.cancel' } as const
    assert.deepEqual(run.send(forwardToDrop('nope', cancel)), [{ type: 'drop.unknown', transferId: 'nope' }])
    run.send(startDrop('t1', 'receiver'))
    assert.deepEqual(run.send(forwardToDrop('t1', cancel)), [])
    assert.deepEqual(drop(run, 't1')!.getSnapshot().output, { outcome: 'cancelled', by: 'local' })
    assert.deepEqual(run.send(forwardToDrop('t1', cancel)), [{ type: 'drop.unknown', transferId: 't1' }])
  })

  test('a finished drop is stopped and forgotten, and its id can be used again', async () => {
    const run = await running()
    run.send(startDrop('t1', 'sender'))
    const finished = drop(run, 't1')!
    assert.deepEqual(run.send({ type: 'drop.finished', transferId: 't1' }), [])
    assert.equal(finished.getSnapshot().status, 'stopped')
    assert.equal(drop(run, 't1'), undefined)
    assert.deepEqual(run.actor.getSnapshot().context.transfers, {})
    assert.deepEqual(run.send({ type: 'drop.finished', transferId: 't1' }), [], 'finishing twice is harmless')
    run.send(startDrop('t1', 'receiver'))
    assert.equal(drop(run, 't1')?.getSnapshot().value, 'Offered')
  })

  test('stopping does not cancel drops, which resume after the restart; they end with the node', async () => {
    const run = await running()
    run.send(startDrop('t1', 'sender', true))
    const transfer = drop(run, 't1')!
    const effects: unknown[] = []
    transfer.on('*', (effect) => effects.push(effect))
    run.send({ type: 'cmd.stop' })
    assert.equal(transfer.getSnapshot().value, 'WaitingForPeer')
    run.stop.resolve()
    await settle()
    assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'stopped' })
    assert.equal(transfer.getSnapshot().status, 'stopped')
    assert.deepEqual(effects, [], 'nothing sent, nothing removed')
  })

  test('drop commands are ignored until the node runs', () => {
    const run = node()
    assert.deepEqual(run.send(startDrop('t1', 'sender')), [])
    assert.deepEqual(run.send(forwardToDrop('t1', { type: 'link.up' })), [])
    assert.equal(drop(run, 't1'), undefined)
  })
})
