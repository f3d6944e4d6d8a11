// The pairing rate limiter with a simulated clock: what bans a peer, what does not, and when the ban ends.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PairingRateLimiter } from '../../actors/pairing/rate-limit.ts'

function limiter() {
  let now = 0
  const rl = new PairingRateLimiter({ now: () => now })
  return { rl, advance: (ms: number) => (now += ms) }
}

test('more than three bad proofs in a minute ban the peer for a minute, and only that peer', () => {
  const { rl, advance } = limiter()
  for (let i = 0; i < 3; i++) rl.recordBadProof('mallory')
  assert.equal(rl.isBanned('mallory'), false)
  rl.recordBadProof('mallory')
  assert.equal(rl.isBanned('mallory'), true)
  assert.equal(rl.isBanned('bob'), false)
  advance(60_001)
  assert.equal(rl.isBanned('mallory'), false)
})

test('bad proofs spread over more than the window do not add up', () => {
  const { rl, advance } = limiter()
  for (let i = 0; i < 10; i++) {
    rl.recordBadProof('slow')
    advance(30_000)
  }
  assert.equal(rl.isBanned('slow'), false)
})

test('more than 30 requests for sessions we do not hold ban the peer; successful pairings never count', () => {
  const { rl } = limiter()
  for (let i = 0; i < 30; i++) rl.recordMiss('scanner')
  assert.equal(rl.isBanned('scanner'), false)
  rl.recordMiss('scanner')
  assert.equal(rl.isBanned('scanner'), true)
  // A peer that only ever finds its session is never recorded, however often it pairs.
  assert.equal(rl.isBanned('laptop'), false)
})
