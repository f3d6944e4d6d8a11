import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { DropFailureReason, DropOutput, ToldFailure } from '../../machines/drop.ts'
import {
  type DropSenderEffect,
  type DropSenderEvent,
  type DropSenderInput,
  type DropSenderPhase,
  dropSenderMachine,
} from '../../machines/drop-sender.machine.ts'
import { DROP_INPUT, dropEffect, endsAfter, startRecorded } from './harness.ts'

const input = DROP_INPUT
const { timeouts } = input

const persist = (phase: DropSenderPhase) => dropEffect('persist', { phase })
const sendOffer = dropEffect('sendOffer')
const openDataStream = dropEffect('openDataStream')
const sendCancel = dropEffect('sendCancel')
const sendFailure = (reason: DropFailureReason, told: Omit<ToldFailure, 'reason'> = {}) =>
  dropEffect('sendFailure', { reason, ...told })

function sender(options: Partial<DropSenderInput> = {}) {
  return startRecorded(dropSenderMachine, { ...input, ...options })
}
type Run = ReturnType<typeof sender>

const value = (run: Run) => run.actor.getSnapshot().value
const output = (run: Run) => run.actor.getSnapshot().output as DropOutput | undefined

function offered() {
  const run = sender()
  assert.deepEqual(run.drain(), [], 'nothing before the first event')
  assert.equal(value(run), 'Offering')
  assert.deepEqual(run.send({ type: 'link.up' }), [persist('AwaitingConsent'), sendOffer])
  assert.equal(value(run), 'AwaitingConsent')
  return run
}

function streaming() {
  const run = offered()
  assert.deepEqual(run.send({ type: 'peer.accepted' }), [persist('Sending'), openDataStream])
  assert.deepEqual(value(run), { Sending: 'Streaming' })
  return run
}

function allSent() {
  const run = streaming()
  assert.deepEqual(run.send({ type: 'data.allSent' }), [])
  assert.deepEqual(value(run), { Sending: 'AwaitingVerification' })
  return run
}

function waiting() {
  const run = streaming()
  assert.deepEqual(run.send({ type: 'link.lost' }), [persist('WaitingForPeer')])
  assert.equal(value(run), 'WaitingForPeer')
  return run
}

const timedOut: DropOutput = { outcome: 'failed', reason: 'Timeout', by: 'local' }
const peerLost: DropOutput = { outcome: 'failed', reason: 'PeerLost', by: 'local' }

/** Every phase after the offer went out, reached the way a transfer gets there. */
const afterTheOffer: Array<[string, () => Run]> = [
  ['AwaitingConsent', offered],
  ['Sending.Streaming', streaming],
  ['Sending.AwaitingVerification', allSent],
  ['WaitingForPeer', waiting],
]

describe('drop sender machine', () => {
  test('offers once the device can be reached, persisting the new phase before the offer goes out', () => {
    offered()
  })

  test('a device that cannot be reached within `offer` fails PeerLost; nobody is told', () => {
    endsAfter(sender(), timeouts.offer, [], peerLost)
  })

  test('cancelled before the offer went out: the peer knows nothing, so nothing is sent', () => {
    const run = sender()
    assert.deepEqual(run.send({ type: 'cmd.cancel' }), [])
    assert.deepEqual(output(run), { outcome: 'cancelled', by: 'local' })
  })

  test('accepted: persists Sending, then opens the data stream', () => {
    streaming()
  })

  test('rejected: ends Rejected with nothing to send', () => {
    const run = offered()
    assert.deepEqual(run.send({ type: 'peer.rejected' }), [])
    assert.deepEqual(output(run), { outcome: 'rejected' })
  })

  test('no answer within `consent`: fails Timeout and tells the receiver', () => {
    endsAfter(offered(), timeouts.consent, [sendFailure('Timeout')], timedOut)
  })

  test('each progress report restarts `stall`; a stream that stops moving fails Timeout', () => {
    const run = streaming()
    for (let report = 0; report < 3; report++) {
      assert.deepEqual(run.advance(timeouts.stall - 1), [])
      assert.deepEqual(run.send({ type: 'data.progressed' }), [], 'progress is no effect')
    }
    endsAfter(run, timeouts.stall, [sendFailure('Timeout')], timedOut)
  })

  test('all sent: the receiver has `verify` to say it checked everything', () => {
    const done = allSent()
    assert.deepEqual(done.send({ type: 'data.progressed' }), [], 'the last report is ignored')
    assert.deepEqual(done.send({ type: 'peer.completed' }), [])
    assert.deepEqual(output(done), { outcome: 'completed' })
    endsAfter(allSent(), timeouts.verify, [sendFailure('Timeout')], timedOut)
  })

  test('the receiver may say completed before this side saw its last byte go out', () => {
    const run = streaming()
    assert.deepEqual(run.send({ type: 'peer.completed' }), [])
    assert.deepEqual(output(run), { outcome: 'completed' })
  })

  test('a lost link waits for the receiver to resume, and streams again from where it asks', () => {
    const run = waiting()
    assert.deepEqual(run.send({ type: 'link.up' }), [], 'the receiver resumes: this side waits for it')
    assert.deepEqual(run.send({ type: 'data.progressed' }), [], 'a report the lost link overtook')
    assert.deepEqual(run.send({ type: 'peer.resumed' }), [persist('Sending'), openDataStream])
    assert.deepEqual(value(run), { Sending: 'Streaming' })
  })

  test('a receiver that resumes while this side streams gets a new data stream, stall restarted', () => {
    const run = allSent()
    assert.deepEqual(run.send({ type: 'peer.resumed' }), [openDataStream])
    assert.deepEqual(value(run), { Sending: 'Streaming' })
    endsAfter(run, timeouts.stall, [sendFailure('Timeout')], timedOut)
  })

  test('a device that does not come back within `reconnect` fails PeerLost; nobody is told', () => {
    endsAfter(waiting(), timeouts.reconnect, [], peerLost)
  })

  test('a receiver that finished checking while the link was down says so on the next one', () => {
    const run = waiting()
    assert.deepEqual(run.send({ type: 'peer.completed' }), [])
    assert.deepEqual(output(run), { outcome: 'completed' })
  })

  test('resumed after a restart: starts in WaitingForPeer, emits nothing until the receiver asks', () => {
    const run = sender({ resumed: true })
    assert.deepEqual(run.drain(), [])
    assert.equal(value(run), 'WaitingForPeer')
    assert.deepEqual(run.send({ type: 'peer.resumed' }), [persist('Sending'), openDataStream])
    endsAfter(sender({ resumed: true }), timeouts.reconnect, [], peerLost)
  })

  test('files that changed since the offer fail SourceChanged from every phase after it, told', () => {
    for (const [phase, reach] of afterTheOffer) {
      const run = reach()
      assert.deepEqual(
        run.send({ type: 'source.changed', file: 3 }),
        [sendFailure('SourceChanged', { file: 3 })],
        phase,
      )
      assert.deepEqual(
        output(run),
        { outcome: 'failed', reason: 'SourceChanged', by: 'local', file: 3 },
        phase,
      )
    }
  })

  test('a file that cannot be read while sending fails IoError with its message', () => {
    const run = streaming()
    const failed = { type: 'source.failed', file: 1, message: 'EIO: i/o error, read' } as const
    assert.deepEqual(run.send(failed), [sendFailure('IoError', { file: 1, message: 'EIO: i/o error, read' })])
    assert.deepEqual(output(run), {
      outcome: 'failed',
      reason: 'IoError',
      by: 'local',
      file: 1,
      message: 'EIO: i/o error, read',
    })
  })

  test('cancelling after the offer tells the receiver; its cancel or failure ends it quietly', () => {
    const ends: Array<[DropSenderEvent, DropSenderEffect[], DropOutput]> = [
      [{ type: 'cmd.cancel' }, [sendCancel], { outcome: 'cancelled', by: 'local' }],
      [{ type: 'peer.cancelled' }, [], { outcome: 'cancelled', by: 'peer' }],
      [
        {
          type: 'peer.failed',
          reason: 'DiskFull',
          message: 'ENOSPC: no space left on device, write',
          file: 2,
        },
        [],
        {
          outcome: 'failed',
          reason: 'DiskFull',
          by: 'peer',
          message: 'ENOSPC: no space left on device, write',
          file: 2,
        },
      ],
      [
        { type: 'peer.misbehaved', message: 'a refetch of file 9 of 3' },
        [sendFailure('ProtocolError', { message: 'a refetch of file 9 of 3' })],
        { outcome: 'failed', reason: 'ProtocolError', by: 'local', message: 'a refetch of file 9 of 3' },
      ],
    ]
    for (const [phase, reach] of afterTheOffer) {
      for (const [event, effects, expected] of ends) {
        const run = reach()
        assert.deepEqual(run.send(event), effects, `${phase}: ${event.type}`)
        assert.deepEqual(output(run), expected, `${phase}: ${event.type}`)
      }
    }
  })

  test('losing the link before the receiver answered fails PeerLost: an offer lives on its link', () => {
    const run = offered()
    assert.deepEqual(run.send({ type: 'link.lost' }), [])
    assert.deepEqual(output(run), peerLost)
  })

  test('facts that do not fit the phase are ignored', () => {
    const offering = sender()
    for (const event of [
      { type: 'peer.accepted' },
      { type: 'link.lost' },
      { type: 'data.allSent' },
    ] as const) {
      assert.deepEqual(offering.send(event), [], event.type)
    }
    assert.equal(value(offering), 'Offering')
    const run = streaming()
    for (const event of [
      { type: 'peer.accepted' },
      { type: 'link.up' },
      { type: 'peer.rejected' },
    ] as const) {
      assert.deepEqual(run.send(event), [], event.type)
    }
    assert.deepEqual(value(run), { Sending: 'Streaming' })
  })

  test('late events are no-ops: a finished transfer ignores everything, timers included', () => {
    const run = streaming()
    run.send({ type: 'peer.completed' })
    const done = run.actor.getSnapshot()
    for (const event of [{ type: 'peer.resumed' }, { type: 'link.lost' }, { type: 'cmd.cancel' }] as const) {
      assert.deepEqual(run.send(event), [], event.type)
    }
    assert.deepEqual(run.advance(timeouts.reconnect), [])
    assert.equal(run.actor.getSnapshot(), done)
  })
})
