import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  type InitiatorEvent,
  type InitiatorInput,
  initiatorMachine,
} from '../../machines/pair-initiator.machine.ts'
import type { DeviceInfo } from '../../machines/types.ts'
import { startRecorded } from './harness.ts'

// The step timeout outlasts the code's lifetime so that a test can tell the two timers apart.
const timeouts = { codeTtl: 60_000, step: 90_000, confirm: 120_000 }
const manual: InitiatorInput = { sessionId: 's1', autoAccept: false, timeouts }
const auto: InitiatorInput = { ...manual, autoAccept: true }

const joiner: DeviceInfo = { id: 'laptop', name: 'Laptop', publicKey: new Uint8Array(32).fill(7) }
const request: InitiatorEvent = { type: 'peer.requestReceived', peerId: 'J', device: joiner }
const verified: InitiatorEvent = { type: 'peer.responseVerified', peerId: 'J', device: joiner }

function challenged(input: InitiatorInput = manual) {
  const run = startRecorded(initiatorMachine, input)
  assert.deepEqual(run.send(request), [{ type: 'sendChallenge', sessionId: 's1', peerId: 'J' }])
  assert.equal(run.actor.getSnapshot().value, 'ChallengeSent')
  return run
}

function awaitingConfirmation() {
  const run = challenged()
  assert.deepEqual(run.send(verified), [
    { type: 'requestConfirmation', sessionId: 's1', peerId: 'J', device: joiner },
  ])
  assert.equal(run.actor.getSnapshot().value, 'AwaitingConfirmation')
  return run
}

describe('pair-initiator machine', () => {
  test('pairs once the user accepts a joiner that proved the code', () => {
    const run = awaitingConfirmation()
    assert.deepEqual(run.send({ type: 'cmd.accept' }), [
      { type: 'sendComplete', sessionId: 's1', peerId: 'J' },
    ])
    assert.equal(run.actor.getSnapshot().value, 'Paired')
    assert.equal(run.actor.getSnapshot().status, 'done')
    assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'paired', peerId: 'J', device: joiner })
  })

  test('pairs without asking when auto-accept is on', () => {
    const run = challenged(auto)
    assert.deepEqual(run.send(verified), [{ type: 'sendComplete', sessionId: 's1', peerId: 'J' }])
    assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'paired', peerId: 'J', device: joiner })
  })

  test('keeps the device of the verified response', () => {
    const run = challenged(auto)
    const proven: DeviceInfo = { ...joiner, name: 'Laptop (renamed)' }
    run.send({ type: 'peer.responseVerified', peerId: 'J', device: proven })
    assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'paired', peerId: 'J', device: proven })
  })

  test('tells the joiner when the user rejects it', () => {
    const run = awaitingConfirmation()
    assert.deepEqual(run.send({ type: 'cmd.reject' }), [
      { type: 'sendFailure', sessionId: 's1', peerId: 'J', code: 'Rejected' },
    ])
    assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'rejected' })
  })

  test('fails with WrongCode when the joiner cannot prove the code', () => {
    const run = challenged()
    assert.deepEqual(run.send({ type: 'peer.proofRejected', peerId: 'J' }), [
      { type: 'sendFailure', sessionId: 's1', peerId: 'J', code: 'WrongCode' },
    ])
    assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'failed', reason: 'WrongCode' })
  })

  test('expires when nobody asks for the session within the code lifetime', () => {
    const run = startRecorded(initiatorMachine, manual)
    assert.deepEqual(run.advance(timeouts.codeTtl - 1), [])
    assert.equal(run.actor.getSnapshot().value, 'WaitingForConnection')
    assert.deepEqual(run.advance(1), [])
    assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'expired' })
  })

  test('a joiner that answers stops the code lifetime timer and starts the step timer', () => {
    const run = challenged()
    assert.deepEqual(run.advance(timeouts.codeTtl), [])
    assert.equal(run.actor.getSnapshot().value, 'ChallengeSent')
    assert.deepEqual(run.advance(timeouts.step - timeouts.codeTtl), [
      { type: 'sendFailure', sessionId: 's1', peerId: 'J', code: 'Timeout' },
    ])
    assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'failed', reason: 'Timeout' })
  })

  test('gives the user `confirm` ms to decide', () => {
    const run = awaitingConfirmation()
    assert.deepEqual(run.advance(timeouts.confirm - 1), [])
    assert.deepEqual(run.advance(1), [{ type: 'sendFailure', sessionId: 's1', peerId: 'J', code: 'Timeout' }])
    assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'failed', reason: 'Timeout' })
  })

  for (const at of ['ChallengeSent', 'AwaitingConfirmation'] as const) {
    const reach = at === 'ChallengeSent' ? () => challenged() : awaitingConfirmation

    test(`${at}: an error frame from the joiner ends the session with its code, silently`, () => {
      const run = reach()
      assert.deepEqual(run.send({ type: 'peer.failed', peerId: 'J', code: 'RateLimited' }), [])
      assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'failed', reason: 'RateLimited' })
    })

    test(`${at}: losing the joiner fails with PeerLost, silently`, () => {
      const run = reach()
      assert.deepEqual(run.send({ type: 'link.lost', peerId: 'J' }), [])
      assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'failed', reason: 'PeerLost' })
    })

    test(`${at}: cancelling tells the joiner`, () => {
      const run = reach()
      assert.deepEqual(run.send({ type: 'cmd.cancel' }), [
        { type: 'sendFailure', sessionId: 's1', peerId: 'J', code: 'Cancelled' },
      ])
      assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'cancelled' })
    })

    test(`${at}: events from a peer the session is not bound to are ignored`, () => {
      const run = reach()
      const before = run.actor.getSnapshot()
      for (const event of [
        { type: 'peer.responseVerified', peerId: 'M', device: joiner },
        { type: 'peer.proofRejected', peerId: 'M' },
        { type: 'peer.failed', peerId: 'M', code: 'ProtocolError' },
        { type: 'link.lost', peerId: 'M' },
        { type: 'peer.requestReceived', peerId: 'M', device: joiner },
      ] satisfies InitiatorEvent[]) {
        assert.deepEqual(run.send(event), [], event.type)
      }
      assert.equal(run.actor.getSnapshot().value, before.value)
      assert.deepEqual(run.actor.getSnapshot().context, before.context)
    })
  }

  test('cancelling before any joiner showed up has nobody to tell', () => {
    const run = startRecorded(initiatorMachine, manual)
    assert.deepEqual(run.send({ type: 'cmd.cancel' }), [])
    assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'cancelled' })
  })

  test('the user cannot accept or reject before the joiner has proven the code', () => {
    const run = challenged()
    assert.deepEqual(run.send({ type: 'cmd.accept' }), [])
    assert.deepEqual(run.send({ type: 'cmd.reject' }), [])
    assert.equal(run.actor.getSnapshot().value, 'ChallengeSent')
  })

  test('late events after the end change nothing and emit nothing', () => {
    const run = awaitingConfirmation()
    run.send({ type: 'cmd.accept' })
    const done = run.actor.getSnapshot()
    for (const event of [
      verified,
      { type: 'cmd.reject' },
      { type: 'cmd.cancel' },
      { type: 'link.lost', peerId: 'J' },
      { type: 'peer.failed', peerId: 'J', code: 'Timeout' },
    ] satisfies InitiatorEvent[]) {
      assert.deepEqual(run.send(event), [], event.type)
    }
    assert.deepEqual(run.advance(timeouts.confirm * 10), [])
    assert.equal(run.actor.getSnapshot(), done)
  })
})
