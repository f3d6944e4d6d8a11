import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { AnyActorRef } from 'xstate'
import { backoffDelay } from '../../machines/backoff.ts'
import {
  type ConnectionEffect,
  type ConnectionInput,
  connectionMachine,
} from '../../machines/connection.machine.ts'
import { type SessionKeyEffect, sessionKeyMachine } from '../../machines/session-key.machine.ts'
import { startRecorded } from './harness.ts'

const timeouts = {
  dial: 5_000,
  handshake: 10_000,
  backoffBase: 1_000,
  backoffCap: 30_000,
  rekey: 5_000,
  rekeyInterval: 86_400_000,
}
const input: ConnectionInput = {
  deviceId: 'laptop',
  peerId: 'PL',
  rekeyAfterFrames: 100,
  timeouts,
  jitterSeed: 7,
}
const backoff = { base: timeouts.backoffBase, cap: timeouts.backoffCap }

type Effect = ConnectionEffect | SessionKeyEffect

const link = { deviceId: 'laptop', peerId: 'PL' } as const
const dial = { type: 'dial', ...link } as const
const openHandshake = { type: 'openHandshake', ...link } as const
const acceptHandshake = { type: 'acceptHandshake', ...link } as const
const closeLink = { type: 'closeLink', ...link } as const
const sendRevoke = { type: 'sendRevoke', ...link } as const
const announceConnected = { type: 'announceConnected', ...link } as const
const announceLost = { type: 'announceLost', ...link } as const
const install = (epoch: number) => ({ type: 'installKeys', epoch }) as const

/**
 * A connection whose effects, and those of every `keys` child it starts, land in one stream in the order they
 * happen. The child is followed the way actors/ must do it: on `openHandshake` / `acceptHandshake`, which come
 * before the child starts.
 */
function connection(options: Partial<ConnectionInput> = {}, machine = connectionMachine) {
  const run = startRecorded<typeof connectionMachine, SessionKeyEffect>(machine, { ...input, ...options })
  run.actor.on('*', (effect) => {
    if (effect.type === 'openHandshake' || effect.type === 'acceptHandshake') {
      run.follow(run.actor.getSnapshot().children.keys as AnyActorRef)
    }
  })
  return run
}
type Run = ReturnType<typeof connection>

const value = (run: Run) => run.actor.getSnapshot().value

function dialing(options: Partial<ConnectionInput> = {}) {
  const run = connection(options)
  assert.deepEqual(run.send({ type: 'cmd.connect' }), [dial])
  assert.equal(value(run), 'Dialing')
  return run
}

function handshaking(role: 'opener' | 'acceptor') {
  if (role === 'acceptor') {
    const run = connection()
    assert.deepEqual(run.send({ type: 'link.inbound' }), [acceptHandshake])
    assert.deepEqual(value(run), { Linked: 'Handshaking' })
    return run
  }
  const run = dialing()
  assert.deepEqual(run.send({ type: 'link.up' }), [openHandshake, { type: 'sendHello' }])
  assert.deepEqual(value(run), { Linked: 'Handshaking' })
  return run
}

function connected(role: 'opener' | 'acceptor') {
  const run = handshaking(role)
  if (role === 'opener') {
    assert.deepEqual(run.send({ type: 'peer.welcomeVerified' }), [install(0), announceConnected])
  } else {
    assert.deepEqual(run.send({ type: 'peer.helloVerified' }), [
      { type: 'sendWelcome' },
      install(0),
      announceConnected,
    ])
  }
  assert.deepEqual(value(run), { Linked: 'Connected' })
  return run
}

function reconnecting() {
  const run = dialing()
  assert.deepEqual(run.send({ type: 'link.dialFailed', message: 'ECONNREFUSED' }), [])
  assert.equal(value(run), 'Reconnecting')
  return run
}

/** Lets exactly `ms` pass in Reconnecting: nothing before it, a dial at it. */
function waitsExactly(run: Run, ms: number) {
  assert.deepEqual(run.advance(ms - 1), [], `not before ${ms} ms`)
  assert.deepEqual(run.advance(1), [dial], `at ${ms} ms`)
}

describe('connection machine', () => {
  test('dials when asked or when the peer is discovered, and waits for nothing else while idle', () => {
    dialing()
    const run = connection()
    assert.deepEqual(run.advance(timeouts.rekeyInterval), [], 'Disconnected is idle: no timer')
    assert.deepEqual(run.send({ type: 'peer.discovered', peerId: 'PL' }), [dial])
  })

  test('as opener: dial, open the handshake, say hello, install epoch 0, announce', () => {
    const run = connected('opener')
    assert.equal(run.actor.getSnapshot().context.role, 'opener')
  })

  test('as acceptor: accept the handshake, answer welcome, install epoch 0, announce', () => {
    const run = connected('acceptor')
    assert.equal(run.actor.getSnapshot().context.role, 'acceptor')
  })

  test('an inbound link is accepted while dialing or backing off, too', () => {
    const whileDialing = dialing()
    assert.deepEqual(whileDialing.send({ type: 'link.inbound' }), [acceptHandshake])
    assert.deepEqual(value(whileDialing), { Linked: 'Handshaking' })
    const whileWaiting = reconnecting()
    assert.deepEqual(whileWaiting.send({ type: 'link.inbound' }), [acceptHandshake])
    assert.deepEqual(value(whileWaiting), { Linked: 'Handshaking' })
    assert.equal(whileWaiting.actor.getSnapshot().context.role, 'acceptor')
  })

  test('a dial that fails or hangs past `dial` backs off, and the backoff ends in another dial', () => {
    const failed = reconnecting()
    waitsExactly(failed, backoffDelay(0, backoff, input.jitterSeed))
    const hung = dialing()
    assert.deepEqual(hung.advance(timeouts.dial - 1), [])
    assert.deepEqual(hung.advance(1), [])
    assert.equal(value(hung), 'Reconnecting')
  })

  test('backoff doubles per failed attempt up to the cap, with the jitter its seed decides', () => {
    const waits = (jitterSeed: number) => {
      const run = dialing({ jitterSeed })
      const delays: number[] = []
      for (let failure = 0; failure < 8; failure++) {
        run.send({ type: 'link.dialFailed' })
        // 1, 2, 4, 8, 16 s, then 32 s is past the 30 s cap: from attempt 5 on the counter (and so the wait) stays
        const delay = backoffDelay(Math.min(failure, 5), backoff, jitterSeed)
        waitsExactly(run, delay)
        delays.push(delay)
      }
      return delays
    }
    const delays = waits(7)
    delays.forEach((delay, failure) => {
      const ceiling = Math.min(timeouts.backoffCap, timeouts.backoffBase * 2 ** failure)
      assert.ok(delay >= ceiling / 2 && delay < ceiling, `failure ${failure}: ${delay} ms of ${ceiling}`)
    })
    assert.deepEqual(new Set(delays.slice(5)).size, 1, 'capped waits repeat')
    assert.deepEqual(waits(7), delays, 'the same seed waits the same')
    assert.notDeepEqual(waits(8), delays, 'another seed waits otherwise')
  })

  test('a discovery or a command while backing off dials at once, and uses up the step', () => {
    const run = reconnecting()
    assert.deepEqual(run.send({ type: 'peer.discovered', peerId: 'PL' }), [dial])
    run.send({ type: 'link.dialFailed' })
    waitsExactly(run, backoffDelay(1, backoff, input.jitterSeed))
    run.send({ type: 'link.dialFailed' })
    assert.deepEqual(run.send({ type: 'cmd.connect' }), [dial])
    assert.equal(run.actor.getSnapshot().context.attempt, 3)
  })

  test('the attempt count starts over once a link is Connected', () => {
    const run = reconnecting()
    waitsExactly(run, backoffDelay(0, backoff, input.jitterSeed))
    run.send({ type: 'link.dialFailed' })
    waitsExactly(run, backoffDelay(1, backoff, input.jitterSeed))
    run.send({ type: 'link.up' })
    run.send({ type: 'peer.welcomeVerified' })
    assert.equal(run.actor.getSnapshot().context.attempt, 0)
    assert.deepEqual(run.send({ type: 'link.lost' }), [announceLost])
    waitsExactly(run, backoffDelay(0, backoff, input.jitterSeed))
  })

  for (const role of ['opener', 'acceptor'] as const) {
    test(`${role}: a handshake that does not finish within \`handshake\` closes the link and backs off`, () => {
      const run = handshaking(role)
      run.drain()
      assert.deepEqual(run.advance(timeouts.handshake - 1), [])
      assert.deepEqual(run.advance(1), [closeLink])
      assert.equal(value(run), 'Reconnecting')
      assert.equal(
        run.actor.getSnapshot().children.keys,
        undefined,
        'the key schedule is stopped with the link',
      )
    })

    test(`${role}: a bad signature during the handshake closes the link and backs off`, () => {
      const run = handshaking(role)
      assert.deepEqual(run.send({ type: 'peer.badSignature' }), [closeLink])
      assert.equal(value(run), 'Reconnecting')
    })

    test(`${role}: losing the link during the handshake closes what is left and backs off`, () => {
      const run = handshaking(role)
      assert.deepEqual(run.send({ type: 'link.lost' }), [closeLink])
      assert.equal(value(run), 'Reconnecting')
    })

    test(`${role}: re-keys by frame count through the key schedule, staying Connected`, () => {
      const run = connected(role)
      assert.deepEqual(run.send({ type: 'keys.framesSent', count: 99 }), [])
      assert.deepEqual(run.send({ type: 'keys.framesSent', count: 100 }), [{ type: 'sendRekey', epoch: 1 }])
      assert.deepEqual(run.send({ type: 'peer.rekeyAckVerified' }), [install(1)])
      assert.deepEqual(run.send({ type: 'peer.rekeyVerified' }), [
        { type: 'sendRekeyAck', epoch: 2 },
        install(2),
      ])
      assert.deepEqual(value(run), { Linked: 'Connected' })
    })

    test(`${role}: re-keys by interval; a re-key that is never acked drops the link`, () => {
      const run = connected(role)
      assert.deepEqual(run.advance(timeouts.rekeyInterval), [{ type: 'sendRekey', epoch: 1 }])
      assert.deepEqual(run.advance(timeouts.rekey - 1), [])
      assert.deepEqual(run.advance(1), [closeLink, announceLost])
      assert.equal(value(run), 'Reconnecting')
    })

    test(`${role}: a bad signature once Connected drops the link`, () => {
      const run = connected(role)
      assert.deepEqual(run.send({ type: 'peer.badSignature' }), [closeLink, announceLost])
      assert.equal(value(run), 'Reconnecting')
    })

    test(`${role}: losing a Connected link announces it and backs off`, () => {
      const run = connected(role)
      assert.deepEqual(run.send({ type: 'link.lost' }), [announceLost])
      assert.equal(value(run), 'Reconnecting')
      waitsExactly(run, backoffDelay(0, backoff, input.jitterSeed))
    })
  }

  test('crossing re-keys between two connections wired back to back: both end on the same epoch', () => {
    const opener = connected('opener')
    const acceptor = connected('acceptor')
    const fromOpener = opener.send({ type: 'keys.framesSent', count: 100 })
    const fromAcceptor = acceptor.send({ type: 'keys.framesSent', count: 100 })
    assert.deepEqual(
      [fromOpener, fromAcceptor],
      [[{ type: 'sendRekey', epoch: 1 }], [{ type: 'sendRekey', epoch: 1 }]],
    )
    // each rekey reaches the other side: the acceptor answers the opener's, the opener ignores the acceptor's
    assert.deepEqual(acceptor.send({ type: 'peer.rekeyVerified' }), [
      { type: 'sendRekeyAck', epoch: 1 },
      install(1),
    ])
    assert.deepEqual(opener.send({ type: 'peer.rekeyVerified' }), [])
    assert.deepEqual(opener.send({ type: 'peer.rekeyAckVerified' }), [install(1)])
    assert.deepEqual([value(opener), value(acceptor)], [{ Linked: 'Connected' }, { Linked: 'Connected' }])
  })

  test('a key schedule that errs drops the link like one that fails', () => {
    // sealing the welcome throws: the invoked child ends in error status
    const machine = connectionMachine.provide({
      actors: {
        sessionKeys: sessionKeyMachine.provide({
          actions: {
            sendWelcome: () => {
              throw new Error('no key to seal with')
            },
          },
        }),
      },
    })
    const run = connection({}, machine)
    run.send({ type: 'link.inbound' })
    assert.deepEqual(run.send({ type: 'peer.helloVerified' }), [closeLink])
    assert.equal(value(run), 'Reconnecting')
    assert.equal(run.actor.getSnapshot().status, 'active')
  })

  test('revoking locally: the peer is told only when keys can seal it; a link or dial is closed', () => {
    const cases: Array<[string, () => Run, Effect[]]> = [
      ['Disconnected', () => connection(), []],
      ['Dialing', () => dialing(), [closeLink]],
      ['Handshaking', () => handshaking('opener'), [closeLink]],
      ['Connected', () => connected('acceptor'), [sendRevoke, closeLink]],
      ['Reconnecting', () => reconnecting(), []],
    ]
    for (const [state, reach, effects] of cases) {
      const run = reach()
      assert.deepEqual(run.send({ type: 'cmd.revoke' }), effects, state)
      assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'revoked', by: 'local' }, state)
    }
  })

  test('revoked by the peer: the link is closed and the connection ends', () => {
    const run = connected('opener')
    assert.deepEqual(run.send({ type: 'peer.revoked' }), [closeLink])
    assert.deepEqual(run.actor.getSnapshot().output, { outcome: 'revoked', by: 'peer' })
  })

  test('facts that do not fit the state are ignored', () => {
    const idle = connection()
    for (const event of [{ type: 'link.up' }, { type: 'link.lost' }, { type: 'peer.revoked' }] as const) {
      assert.deepEqual(idle.send(event), [], event.type)
    }
    assert.equal(value(idle), 'Disconnected')
    const linked = connected('opener')
    const before = linked.actor.getSnapshot().context
    for (const event of [{ type: 'link.up' }, { type: 'link.inbound' }, { type: 'cmd.connect' }] as const) {
      assert.deepEqual(linked.send(event), [], event.type)
    }
    assert.deepEqual(value(linked), { Linked: 'Connected' })
    assert.deepEqual(linked.actor.getSnapshot().context, before)
  })
})
