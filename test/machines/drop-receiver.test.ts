import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { DropFailureReason, DropOutput, ToldFailure } from '../../machines/drop.ts'
import {
  type DropReceiverEffect,
  type DropReceiverEvent,
  type DropReceiverInput,
  type DropReceiverPhase,
  dropReceiverMachine,
} from '../../machines/drop-receiver.machine.ts'
import { DROP_INPUT, dropEffect, endsAfter, startRecorded } from './harness.ts'

const input = DROP_INPUT
const { timeouts } = input

const persist = (phase: DropReceiverPhase) => dropEffect('persist', { phase })
const sendAccept = dropEffect('sendAccept')
const sendReject = dropEffect('sendReject')
const sendResume = dropEffect('sendResume')
const refetch = (file: number, scope: 'chunk' | 'file') => dropEffect('sendRefetch', { file, scope })
const verifyFiles = dropEffect('verifyFiles')
const sendComplete = dropEffect('sendComplete')
const sendCancel = dropEffect('sendCancel')
const sendFailure = (reason: DropFailureReason, told: Omit<ToldFailure, 'reason'> = {}) =>
  dropEffect('sendFailure', { reason, ...told })
const removeTemp = dropEffect('removeTemp')

function receiver(options: Partial<DropReceiverInput> = {}) {
  return startRecorded(dropReceiverMachine, { ...input, ...options })
}
type Run = ReturnType<typeof receiver>

const value = (run: Run) => run.actor.getSnapshot().value
const output = (run: Run) => run.actor.getSnapshot().output as DropOutput | undefined

function offered() {
  const run = receiver()
  assert.deepEqual(run.drain(), [], 'nothing before the first event')
  assert.equal(value(run), 'Offered')
  return run
}

function receiving() {
  const run = offered()
  assert.deepEqual(run.send({ type: 'cmd.accept' }), [persist('Receiving'), sendAccept])
  assert.equal(value(run), 'Receiving')
  return run
}

function verifying() {
  const run = receiving()
  assert.deepEqual(run.send({ type: 'data.allReceived' }), [persist('Verifying'), verifyFiles])
  assert.equal(value(run), 'Verifying')
  return run
}

function waiting() {
  const run = receiving()
  assert.deepEqual(run.send({ type: 'link.lost' }), [persist('WaitingForPeer')])
  assert.equal(value(run), 'WaitingForPeer')
  return run
}

const timedOut: DropOutput = { outcome: 'failed', reason: 'Timeout', by: 'local' }
const corrupted = (file: number): DropOutput => ({
  outcome: 'failed',
  reason: 'Corrupted',
  by: 'local',
  file,
})

/** Every phase, reached the way a transfer gets there. */
const phases: Array<[string, () => Run]> = [
  ['Offered', offered],
  ['Receiving', receiving],
  ['Verifying', verifying],
  ['WaitingForPeer', waiting],
]

describe('drop receiver machine', () => {
  test('an offer waits for the user; accepting persists Receiving before the sender is told', () => {
    receiving()
  })

  test('rejected: tells the sender; nothing was written, so nothing is removed', () => {
    const run = offered()
    assert.deepEqual(run.send({ type: 'cmd.reject' }), [sendReject])
    assert.deepEqual(output(run), { outcome: 'rejected' })
  })

  test('no answer within `consent`: fails Timeout, tells the sender', () => {
    endsAfter(offered(), timeouts.consent, [sendFailure('Timeout'), removeTemp], timedOut)
  })

  test('too little free space, found on accepting: fails DiskFull and tells the sender', () => {
    const run = offered()
    const full = { type: 'disk.full', message: '1.2 GiB needed, 300 MiB free' } as const
    assert.deepEqual(run.send(full), [
      sendFailure('DiskFull', { message: '1.2 GiB needed, 300 MiB free' }),
      removeTemp,
    ])
    assert.deepEqual(output(run), {
      outcome: 'failed',
      reason: 'DiskFull',
      by: 'local',
      message: '1.2 GiB needed, 300 MiB free',
    })
  })

  test('a chunk or a file that fails its check is fetched again; its second failure is Corrupted', () => {
    const run = receiving()
    assert.deepEqual(run.send({ type: 'data.chunkFailed', file: 1 }), [refetch(1, 'chunk')])
    assert.deepEqual(run.send({ type: 'data.fileFailed', file: 2 }), [refetch(2, 'file')])
    assert.deepEqual(run.actor.getSnapshot().context.failedFiles, [1, 2])
    assert.deepEqual(run.send({ type: 'data.fileFailed', file: 1 }), [
      sendFailure('Corrupted', { file: 1 }),
      removeTemp,
    ])
    assert.deepEqual(output(run), corrupted(1))
    const chunkTwice = receiving()
    chunkTwice.send({ type: 'data.chunkFailed', file: 0 })
    assert.deepEqual(chunkTwice.send({ type: 'data.chunkFailed', file: 0 }), [
      sendFailure('Corrupted', { file: 0 }),
      removeTemp,
    ])
    assert.deepEqual(output(chunkTwice), corrupted(0))
  })

  test('a failure is remembered across progress reports, lost links and resumes', () => {
    const run = receiving()
    run.send({ type: 'data.chunkFailed', file: 4 })
    run.send({ type: 'data.progressed' })
    run.send({ type: 'link.lost' })
    run.send({ type: 'link.up' })
    assert.deepEqual(run.send({ type: 'data.chunkFailed', file: 4 }), [
      sendFailure('Corrupted', { file: 4 }),
      removeTemp,
    ])
  })

  test('each progress report restarts `stall`; a stream that stops moving fails Timeout', () => {
    const run = receiving()
    for (let report = 0; report < 3; report++) {
      assert.deepEqual(run.advance(timeouts.stall - 1), [])
      assert.deepEqual(run.send({ type: 'data.progressed' }), [], 'progress is no effect')
    }
    endsAfter(run, timeouts.stall, [sendFailure('Timeout'), removeTemp], timedOut)
  })

  test('everything in: persists Verifying, runs the final check, and completes when it passes', () => {
    const run = verifying()
    assert.deepEqual(run.send({ type: 'data.progressed' }), [], 'the last report is ignored')
    assert.deepEqual(run.send({ type: 'verify.passed' }), [sendComplete])
    assert.deepEqual(output(run), { outcome: 'completed' })
  })

  test('a final check that fails is Corrupted; one that takes longer than `verify` is a Timeout', () => {
    const run = verifying()
    assert.deepEqual(run.send({ type: 'verify.failed', file: 2, message: 'photos/a.jpg is missing' }), [
      sendFailure('Corrupted', { file: 2, message: 'photos/a.jpg is missing' }),
      removeTemp,
    ])
    assert.deepEqual(output(run), {
      outcome: 'failed',
      reason: 'Corrupted',
      by: 'local',
      file: 2,
      message: 'photos/a.jpg is missing',
    })
    endsAfter(verifying(), timeouts.verify, [sendFailure('Timeout'), removeTemp], timedOut)
  })

  test('the final check is local: a lost or returning link does not stop it', () => {
    const run = verifying()
    assert.deepEqual(run.send({ type: 'link.lost' }), [])
    assert.deepEqual(run.send({ type: 'link.up' }), [])
    assert.equal(value(run), 'Verifying')
    assert.deepEqual(run.send({ type: 'verify.passed' }), [sendComplete])
  })

  test('a lost link waits; once it is back, persists Receiving and asks the sender to resume', () => {
    const run = waiting()
    assert.deepEqual(run.send({ type: 'data.progressed' }), [], 'a report the lost link overtook')
    assert.deepEqual(run.send({ type: 'link.up' }), [persist('Receiving'), sendResume])
    assert.equal(value(run), 'Receiving')
  })

  test('a sender that does not come back within `reconnect`: PeerLost, temp files removed, nobody told', () => {
    endsAfter(waiting(), timeouts.reconnect, [removeTemp], {
      outcome: 'failed',
      reason: 'PeerLost',
      by: 'local',
    })
  })

  test('resumed after a restart: starts in WaitingForPeer, emits nothing until the link is up', () => {
    const run = receiver({ resumed: true })
    assert.deepEqual(run.drain(), [])
    assert.equal(value(run), 'WaitingForPeer')
    assert.deepEqual(run.send({ type: 'link.up' }), [persist('Receiving'), sendResume])
  })

  test('a full disk or a failed write while receiving or checking fails the transfer, told', () => {
    for (const reach of [receiving, verifying]) {
      const full = reach()
      assert.deepEqual(full.send({ type: 'disk.full' }), [sendFailure('DiskFull'), removeTemp])
      assert.deepEqual(output(full), { outcome: 'failed', reason: 'DiskFull', by: 'local' })
      const broken = reach()
      assert.deepEqual(broken.send({ type: 'disk.failed', message: 'EIO: i/o error, write' }), [
        sendFailure('IoError', { message: 'EIO: i/o error, write' }),
        removeTemp,
      ])
      assert.deepEqual(output(broken), {
        outcome: 'failed',
        reason: 'IoError',
        by: 'local',
        message: 'EIO: i/o error, write',
      })
    }
  })

  test('cancelling tells the sender, from every phase; its cancel or failure ends it quietly', () => {
    const ends: Array<[DropReceiverEvent, DropReceiverEffect[], DropOutput]> = [
      [{ type: 'cmd.cancel' }, [sendCancel, removeTemp], { outcome: 'cancelled', by: 'local' }],
      [{ type: 'peer.cancelled' }, [removeTemp], { outcome: 'cancelled', by: 'peer' }],
      [
        { type: 'peer.failed', reason: 'SourceChanged' },
        [removeTemp],
        { outcome: 'failed', reason: 'SourceChanged', by: 'peer' },
      ],
      [
        { type: 'peer.misbehaved', message: 'a chunk past the end of file 0' },
        [sendFailure('ProtocolError', { message: 'a chunk past the end of file 0' }), removeTemp],
        {
          outcome: 'failed',
          reason: 'ProtocolError',
          by: 'local',
          message: 'a chunk past the end of file 0',
        },
      ],
    ]
    for (const [phase, reach] of phases) {
      for (const [event, effects, expected] of ends) {
        const run = reach()
        assert.deepEqual(run.send(event), effects, `${phase}: ${event.type}`)
        assert.deepEqual(output(run), expected, `${phase}: ${event.type}`)
      }
    }
  })

  test('losing the link before answering fails PeerLost: an offer lives on its link', () => {
    const run = offered()
    assert.deepEqual(run.send({ type: 'link.lost' }), [removeTemp])
    assert.deepEqual(output(run), { outcome: 'failed', reason: 'PeerLost', by: 'local' })
  })

  test('facts that do not fit the phase are ignored', () => {
    const offer = offered()
    for (const event of [
      { type: 'data.allReceived' },
      { type: 'verify.passed' },
      { type: 'data.chunkFailed', file: 0 },
    ] as const) {
      assert.deepEqual(offer.send(event), [], event.type)
    }
    assert.equal(value(offer), 'Offered')
    assert.deepEqual(offer.actor.getSnapshot().context.failedFiles, [])
    const run = receiving()
    for (const event of [{ type: 'cmd.accept' }, { type: 'link.up' }, { type: 'verify.passed' }] as const) {
      assert.deepEqual(run.send(event), [], event.type)
    }
    assert.equal(value(run), 'Receiving')
  })

  test('late events are no-ops: a finished transfer ignores everything, timers included', () => {
    const run = verifying()
    run.send({ type: 'verify.passed' })
    const done = run.actor.getSnapshot()
    for (const event of [
      { type: 'link.up' },
      { type: 'data.chunkFailed', file: 0 },
      { type: 'cmd.cancel' },
    ] as const) {
      assert.deepEqual(run.send(event), [], event.type)
    }
    assert.deepEqual(run.advance(timeouts.reconnect), [])
    assert.equal(run.actor.getSnapshot(), done)
  })
})
