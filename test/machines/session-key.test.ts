import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { emit } from 'xstate'
import {
  type SessionKeyEffect,
  type SessionKeyEvent,
  type SessionKeyInput,
  type SessionKeyParentEvent,
  type SessionKeyRole,
  sessionKeyMachine,
} from '../../machines/session-key.machine.ts'
import { startRecorded } from './harness.ts'

const timeouts = { handshake: 10_000, rekey: 5_000, rekeyInterval: 86_400_000 }
const inputFor = (role: SessionKeyRole): SessionKeyInput => ({ role, rekeyAfterFrames: 100, timeouts })

// Alone, the schedule has no parent to tell: what it would tell is recorded in the effect stream instead, in order.
const handshakeDone: SessionKeyParentEvent = { type: 'handshake.done' }
const keys = sessionKeyMachine.provide({
  // `handshake.done` is not one of the schedule's effects, hence the cast: the stand-in emits it all the same.
  actions: { reportHandshakeDone: emit(handshakeDone as unknown as SessionKeyEffect) },
})
type Recorded = SessionKeyEffect | SessionKeyParentEvent

const start = (role: SessionKeyRole) => startRecorded<typeof keys, Recorded>(keys, inputFor(role))
const done = { type: 'handshake.done' } as const
const install = (epoch: number) => ({ type: 'installKeys', epoch }) as const

/** A schedule that finished its handshake: keys of epoch 0 are installed. */
function established(role: SessionKeyRole) {
  const run = start(role)
  if (role === 'opener') {
    assert.deepEqual(run.drain(), [{ type: 'sendHello' }])
    assert.deepEqual(run.send({ type: 'peer.welcomeVerified' }), [install(0), done])
  } else {
    assert.deepEqual(run.drain(), [])
    assert.deepEqual(run.send({ type: 'peer.helloVerified' }), [{ type: 'sendWelcome' }, install(0), done])
  }
  assert.equal(run.actor.getSnapshot().value, 'Established')
  return run
}

/** A schedule that asked for a re-key and waits for the ack. */
function rekeying(role: SessionKeyRole) {
  const run = established(role)
  assert.deepEqual(run.send({ type: 'keys.framesSent', count: 100 }), [{ type: 'sendRekey', epoch: 1 }])
  assert.equal(run.actor.getSnapshot().value, 'Rekeying')
  return run
}

/** Each side's effects, delivered to the other side as the verified frames actors/ would decode. */
const delivered: Partial<Record<SessionKeyEffect['type'], SessionKeyEvent>> = {
  sendHello: { type: 'peer.helloVerified' },
  sendWelcome: { type: 'peer.welcomeVerified' },
  sendRekey: { type: 'peer.rekeyVerified' },
  sendRekeyAck: { type: 'peer.rekeyAckVerified' },
}

describe('session-key machine', () => {
  test('the opener says hello first and installs epoch 0 once the welcome is verified', () => {
    const run = start('opener')
    assert.deepEqual(run.drain(), [{ type: 'sendHello' }])
    assert.equal(run.actor.getSnapshot().value, 'AwaitingWelcome')
    assert.deepEqual(run.send({ type: 'peer.helloVerified' }), [], 'an opener is never greeted')
    assert.deepEqual(run.send({ type: 'peer.welcomeVerified' }), [install(0), done])
    assert.equal(run.actor.getSnapshot().context.epoch, 0)
  })

  test('the acceptor waits for hello, answers welcome and installs epoch 0', () => {
    const run = start('acceptor')
    assert.deepEqual(run.drain(), [])
    assert.equal(run.actor.getSnapshot().value, 'AwaitingHello')
    assert.deepEqual(run.send({ type: 'peer.welcomeVerified' }), [], 'an acceptor is never welcomed')
    assert.deepEqual(run.send({ type: 'peer.helloVerified' }), [{ type: 'sendWelcome' }, install(0), done])
  })

  for (const role of ['opener', 'acceptor'] as const) {
    test(`${role}: re-keys once rekeyAfterFrames frames were sent, and switches on the ack`, () => {
      const run = established(role)
      assert.deepEqual(run.send({ type: 'keys.framesSent', count: 99 }), [])
      assert.deepEqual(run.send({ type: 'keys.framesSent', count: 100 }), [{ type: 'sendRekey', epoch: 1 }])
      assert.deepEqual(run.send({ type: 'keys.framesSent', count: 150 }), [], 'one re-key at a time')
      assert.deepEqual(run.send({ type: 'peer.rekeyAckVerified' }), [install(1)])
      assert.equal(run.actor.getSnapshot().value, 'Established')
      assert.deepEqual(run.send({ type: 'keys.framesSent', count: 100 }), [{ type: 'sendRekey', epoch: 2 }])
      assert.deepEqual(run.send({ type: 'peer.rekeyAckVerified' }), [install(2)])
      assert.equal(run.actor.getSnapshot().context.epoch, 2)
    })

    test(`${role}: re-keys after rekeyInterval under the same keys, counted from the newest keys`, () => {
      const run = established(role)
      assert.deepEqual(run.advance(timeouts.rekeyInterval - 1), [])
      assert.deepEqual(run.advance(1), [{ type: 'sendRekey', epoch: 1 }])
      assert.deepEqual(run.advance(timeouts.rekey - 1), [])
      assert.deepEqual(run.send({ type: 'peer.rekeyAckVerified' }), [install(1)])
      assert.deepEqual(run.advance(timeouts.rekeyInterval - 1), [])
      assert.deepEqual(run.advance(1), [{ type: 'sendRekey', epoch: 2 }])
    })

    test(`${role}: answers the peer's re-key and restarts the interval from the new keys`, () => {
      const run = established(role)
      run.advance(timeouts.rekeyInterval - 10)
      assert.deepEqual(run.send({ type: 'peer.rekeyVerified' }), [
        { type: 'sendRekeyAck', epoch: 1 },
        install(1),
      ])
      assert.equal(run.actor.getSnapshot().value, 'Established')
      assert.deepEqual(run.advance(timeouts.rekeyInterval - 1), [])
      assert.deepEqual(run.advance(1), [{ type: 'sendRekey', epoch: 2 }])
    })

    test(`${role}: a re-key that is not acked within \`rekey\` fails the schedule`, () => {
      const run = rekeying(role)
      assert.deepEqual(run.advance(timeouts.rekey - 1), [])
      assert.deepEqual(run.advance(1), [])
      assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'failed', reason: 'Timeout' })
    })

    test(`${role}: a handshake that does not finish within \`handshake\` fails`, () => {
      const run = start(role)
      run.drain()
      assert.deepEqual(run.advance(timeouts.handshake - 1), [])
      assert.deepEqual(run.advance(1), [])
      assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'failed', reason: 'Timeout' })
    })

    test(`${role}: a bad signature fails the schedule in every state`, () => {
      for (const reach of [() => start(role), () => established(role), () => rekeying(role)]) {
        const run = reach()
        run.drain()
        assert.deepEqual(run.send({ type: 'peer.badSignature' }), [])
        assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'failed', reason: 'BadSignature' })
      }
    })

    test(`${role}: a closed link ends the schedule in every state`, () => {
      for (const reach of [() => start(role), () => established(role), () => rekeying(role)]) {
        const run = reach()
        run.drain()
        assert.deepEqual(run.send({ type: 'link.closed' }), [])
        assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'closed' })
      }
    })
  }

  test("crossing re-keys: the opener ignores the acceptor's and waits for its ack", () => {
    const run = rekeying('opener')
    assert.deepEqual(run.send({ type: 'peer.rekeyVerified' }), [])
    assert.equal(run.actor.getSnapshot().value, 'Rekeying')
    assert.deepEqual(run.send({ type: 'peer.rekeyAckVerified' }), [install(1)])
  })

  test("crossing re-keys: the acceptor drops its own and answers the opener's", () => {
    const run = rekeying('acceptor')
    assert.deepEqual(run.send({ type: 'peer.rekeyVerified' }), [
      { type: 'sendRekeyAck', epoch: 1 },
      install(1),
    ])
    assert.equal(run.actor.getSnapshot().value, 'Established')
    assert.deepEqual(run.send({ type: 'peer.rekeyAckVerified' }), [], 'an ack for a dropped re-key is stale')
    assert.equal(run.actor.getSnapshot().context.epoch, 1)
  })

  test('two schedules wired back to back agree on every epoch, also when both re-key at once', () => {
    const opener = start('opener')
    const acceptor = start('acceptor')
    const installed = { opener: [] as number[], acceptor: [] as number[] }
    // Delivers what each side sends to the other until both are quiet, the way the link would.
    const exchange = (fromOpener: Recorded[], fromAcceptor: Recorded[]) => {
      let pending = { opener: fromOpener, acceptor: fromAcceptor }
      while (pending.opener.length + pending.acceptor.length > 0) {
        const next = { opener: [] as Recorded[], acceptor: [] as Recorded[] }
        for (const [side, other] of [
          ['opener', 'acceptor'],
          ['acceptor', 'opener'],
        ] as const) {
          for (const effect of pending[side]) {
            if (effect.type === 'installKeys') installed[side].push(effect.epoch)
            const event = delivered[effect.type as SessionKeyEffect['type']]
            if (event !== undefined) next[other].push(...(other === 'opener' ? opener : acceptor).send(event))
          }
        }
        pending = next
      }
    }
    exchange(opener.drain(), acceptor.drain())
    assert.deepEqual(installed, { opener: [0], acceptor: [0] })
    // one side re-keys
    exchange(opener.send({ type: 'keys.framesSent', count: 100 }), [])
    exchange([], acceptor.send({ type: 'keys.framesSent', count: 100 }))
    // both at once: each sends its rekey before it sees the other's
    exchange(
      opener.send({ type: 'keys.framesSent', count: 100 }),
      acceptor.send({ type: 'keys.framesSent', count: 100 }),
    )
    assert.deepEqual(installed, { opener: [0, 1, 2, 3], acceptor: [0, 1, 2, 3] })
    assert.equal(opener.actor.getSnapshot().value, 'Established')
    assert.equal(acceptor.actor.getSnapshot().value, 'Established')
  })
})
