import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type JoinerEvent, type JoinerInput, joinerMachine } from '../../machines/pair-joiner.machine.ts'
import type { DeviceInfo } from '../../machines/types.ts'
import { startRecorded } from './harness.ts'

const timeouts = { discovery: 30_000, settle: 3_000, dial: 5_000, step: 10_000, confirm: 60_000 }
const input: JoinerInput = { sessionId: 's2', timeouts }

const initiator: DeviceInfo = { id: 'desktop', name: 'Desktop', publicKey: new Uint8Array(32).fill(9) }
const discovered = (peerId: string): JoinerEvent => ({ type: 'peer.discovered', peerId })
const dial = (peerId: string, attempt: number) => ({
  type: 'dialCandidate',
  sessionId: 's2',
  peerId,
  attempt,
})
const close = (peerId: string) => ({ type: 'closeCandidate', sessionId: 's2', peerId })

function requestSentTo(peerId: string, options: Partial<JoinerInput> = {}) {
  const run = startRecorded(joinerMachine, { ...input, ...options })
  assert.deepEqual(run.send(discovered(peerId)), [dial(peerId, 1)])
  assert.deepEqual(run.send({ type: 'link.requestSent', peerId }), [])
  assert.equal(run.actor.getSnapshot().value, 'RequestSent')
  return run
}

function challengedBy(peerId: string) {
  const run = requestSentTo(peerId)
  assert.deepEqual(run.send({ type: 'peer.challengeReceived', peerId, device: initiator }), [
    { type: 'sendResponse', sessionId: 's2', peerId },
  ])
  assert.equal(run.actor.getSnapshot().value, 'ChallengeReceived')
  return run
}

function responseSentTo(peerId: string) {
  const run = challengedBy(peerId)
  assert.deepEqual(run.send({ type: 'link.responseSent', peerId }), [])
  assert.equal(run.actor.getSnapshot().value, 'ResponseSent')
  return run
}

describe('pair-joiner machine', () => {
  test('pairs with the first peer that holds the session and proves the code back', () => {
    const run = responseSentTo('A')
    assert.deepEqual(
      run.send({ type: 'peer.completeVerified', peerId: 'A', device: initiator, sas: '123 456' }),
      [],
    )
    assert.equal(run.actor.getSnapshot().status, 'done')
    assert.deepEqual(run.actor.getSnapshot().output, {
      outcome: 'paired',
      peerId: 'A',
      device: initiator,
      sas: '123 456',
    })
  })

  test('redials a candidate up to maxDialAttempts, then moves to the next queued one', () => {
    const run = startRecorded(joinerMachine, { ...input, maxDialAttempts: 3 })
    assert.deepEqual(run.send(discovered('A')), [dial('A', 1)])
    assert.deepEqual(run.send(discovered('B')), [], 'B is queued while A is being dialled')
    assert.deepEqual(run.send({ type: 'link.dialFailed', peerId: 'A' }), [dial('A', 2)])
    assert.deepEqual(
      run.advance(timeouts.dial),
      [dial('A', 3)],
      'a dial that hangs counts as a failed attempt',
    )
    assert.deepEqual(run.send({ type: 'link.dialFailed', peerId: 'A' }), [dial('B', 1)])
    assert.deepEqual(run.send({ type: 'link.dialFailed', peerId: 'B' }), [dial('B', 2)])
    assert.deepEqual(run.send({ type: 'link.dialFailed', peerId: 'B' }), [dial('B', 3)])
    assert.deepEqual(run.advance(timeouts.dial), [])
    assert.equal(run.actor.getSnapshot().value, 'Discovering')
  })

  test('fails with NotFound when discovery turns up nobody that answers', () => {
    const run = startRecorded(joinerMachine, input)
    assert.deepEqual(run.advance(timeouts.discovery - 1), [])
    assert.equal(run.actor.getSnapshot().value, 'Discovering', 'settle only counts once someone refused')
    assert.deepEqual(run.advance(1), [])
    assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'failed', reason: 'NotFound' })
  })

  test('fails with WrongCode when every peer found refused the session and no other shows up', () => {
    const run = requestSentTo('A')
    assert.deepEqual(run.send({ type: 'peer.sessionUnknown', peerId: 'A' }), [close('A')])
    assert.equal(run.actor.getSnapshot().value, 'Discovering')
    assert.deepEqual(run.advance(timeouts.settle - 1), [])
    assert.deepEqual(run.advance(1), [])
    assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'failed', reason: 'WrongCode' })
  })

  test('a refusal moves on to the next queued candidate', () => {
    const run = requestSentTo('A')
    run.send(discovered('B'))
    assert.deepEqual(run.send({ type: 'peer.sessionUnknown', peerId: 'A' }), [close('A'), dial('B', 1)])
    assert.equal(run.actor.getSnapshot().context.refusals, 1)
  })

  test('a candidate that does not answer within `step`, or drops, is closed and the next one tried', () => {
    const run = requestSentTo('A')
    run.send(discovered('B'))
    run.send(discovered('C'))
    assert.deepEqual(run.advance(timeouts.step), [close('A'), dial('B', 1)])
    run.send({ type: 'link.requestSent', peerId: 'B' })
    assert.deepEqual(run.send({ type: 'link.lost', peerId: 'B' }), [close('B'), dial('C', 1)])
    assert.equal(run.actor.getSnapshot().context.refusals, 0, 'silence is not a refusal')
  })

  test('a peer is tried once per session, and at most maxCandidates peers are taken', () => {
    const run = requestSentTo('A', { maxCandidates: 2 })
    assert.deepEqual(run.send(discovered('A')), [])
    run.send(discovered('B'))
    run.send(discovered('B'))
    run.send(discovered('C'))
    assert.deepEqual(run.actor.getSnapshot().context.queue, ['B'])
    assert.deepEqual(run.send({ type: 'peer.sessionUnknown', peerId: 'A' }), [close('A'), dial('B', 1)])
    run.send({ type: 'link.requestSent', peerId: 'B' })
    assert.deepEqual(run.send({ type: 'peer.sessionUnknown', peerId: 'B' }), [close('B')])
    assert.deepEqual(run.send(discovered('A')), [], 'A already refused')
    assert.deepEqual(run.send(discovered('C')), [], 'C is one peer too many')
    assert.equal(run.actor.getSnapshot().value, 'Discovering')
  })

  for (const at of ['ChallengeReceived', 'ResponseSent'] as const) {
    const reach = at === 'ChallengeReceived' ? () => challengedBy('A') : () => responseSentTo('A')

    test(`${at}: the initiator's error frame decides the outcome`, () => {
      for (const [code, output] of [
        ['Rejected', { outcome: 'rejected' }],
        ['Expired', { outcome: 'expired' }],
        ['WrongCode', { outcome: 'failed', reason: 'WrongCode' }],
        ['RateLimited', { outcome: 'failed', reason: 'RateLimited' }],
      ] as const) {
        const run = reach()
        assert.deepEqual(run.send({ type: 'peer.failed', peerId: 'A', code }), [])
        assert.deepEqual(run.actor.getSnapshot().output, output, code)
      }
    })

    test(`${at}: losing the initiator fails with PeerLost`, () => {
      const run = reach()
      assert.deepEqual(run.send({ type: 'link.lost', peerId: 'A' }), [])
      assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'failed', reason: 'PeerLost' })
    })

    test(`${at}: cancelling closes the candidate`, () => {
      const run = reach()
      assert.deepEqual(run.send({ type: 'cmd.cancel' }), [close('A')])
      assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'cancelled' })
    })
  }

  test('ChallengeReceived: the response must go out within `step`', () => {
    const run = challengedBy('A')
    assert.deepEqual(run.advance(timeouts.step - 1), [])
    assert.deepEqual(run.advance(1), [])
    assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'failed', reason: 'Timeout' })
  })

  test('ResponseSent: waits `confirm` ms for the initiator user, then fails with Timeout', () => {
    const run = responseSentTo('A')
    assert.deepEqual(run.advance(timeouts.confirm - 1), [])
    assert.equal(run.actor.getSnapshot().value, 'ResponseSent')
    assert.deepEqual(run.advance(1), [])
    assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'failed', reason: 'Timeout' })
  })

  test('ResponseSent: an initiator whose proof does not verify fails with WrongCode', () => {
    const run = responseSentTo('A')
    assert.deepEqual(run.send({ type: 'peer.proofRejected', peerId: 'A' }), [])
    assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'failed', reason: 'WrongCode' })
  })

  test('cancelling while discovering has no candidate to close; while connecting it closes the dial', () => {
    const idle = startRecorded(joinerMachine, input)
    assert.deepEqual(idle.send({ type: 'cmd.cancel' }), [])
    assert.deepEqual(idle.actor.getSnapshot().output, { outcome: 'cancelled' })
    const dialling = startRecorded(joinerMachine, input)
    dialling.send(discovered('A'))
    assert.deepEqual(dialling.send({ type: 'cmd.cancel' }), [close('A')])
    assert.deepEqual(dialling.actor.getSnapshot().output, { outcome: 'cancelled' })
  })

  test('events about a peer other than the current candidate are ignored in every state', () => {
    const stale = (peerId: string): JoinerEvent[] => [
      { type: 'link.requestSent', peerId },
      { type: 'link.dialFailed', peerId },
      { type: 'link.responseSent', peerId },
      { type: 'link.lost', peerId },
      { type: 'peer.sessionUnknown', peerId },
      { type: 'peer.challengeReceived', peerId, device: initiator },
      { type: 'peer.completeVerified', peerId, device: initiator, sas: '000 000' },
      { type: 'peer.proofRejected', peerId },
      { type: 'peer.failed', peerId, code: 'Rejected' },
    ]
    const connecting = () => {
      const run = startRecorded(joinerMachine, input)
      run.send(discovered('A'))
      return run
    }
    for (const reach of [
      connecting,
      () => requestSentTo('A'),
      () => challengedBy('A'),
      () => responseSentTo('A'),
    ]) {
      const run = reach()
      const before = run.actor.getSnapshot()
      for (const event of stale('M')) assert.deepEqual(run.send(event), [], `${before.value} ${event.type}`)
      assert.equal(run.actor.getSnapshot().value, before.value)
      assert.deepEqual(run.actor.getSnapshot().context, before.context)
    }
  })

  test('late events after the end change nothing and emit nothing', () => {
    const run = responseSentTo('A')
    run.send({ type: 'peer.completeVerified', peerId: 'A', device: initiator, sas: '123 456' })
    const done = run.actor.getSnapshot()
    for (const event of [
      discovered('B'),
      { type: 'cmd.cancel' },
      { type: 'link.lost', peerId: 'A' },
      { type: 'peer.failed', peerId: 'A', code: 'Timeout' },
    ] satisfies JoinerEvent[]) {
      assert.deepEqual(run.send(event), [], event.type)
    }
    assert.deepEqual(run.advance(timeouts.discovery * 10), [])
    assert.equal(run.actor.getSnapshot(), done)
  })
})
