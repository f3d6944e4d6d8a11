import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type BackoffSettings, backoffDelay, mulberry32, nextAttempt } from '../../machines/backoff.ts'

/** mulberry32 as it is usually written: a closure that advances its state on every draw. */
function sequentialMulberry32(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const settings: BackoffSettings = { base: 1_000, cap: 60_000 }

describe('backoff', () => {
  test('mulberry32(seed, i) is the i-th draw of the usual sequential mulberry32', () => {
    for (const seed of [0, 1, 42, 0xdeadbeef, -7, 2 ** 31 - 1]) {
      const next = sequentialMulberry32(seed)
      for (let index = 0; index < 1_000; index++)
        assert.equal(mulberry32(seed, index), next(), `${seed}/${index}`)
    }
  })

  test('mulberry32 stays in [0, 1) and spreads out', () => {
    const draws = Array.from({ length: 10_000 }, (_, index) => mulberry32(99, index))
    assert.ok(draws.every((x) => x >= 0 && x < 1))
    const mean = draws.reduce((sum, x) => sum + x, 0) / draws.length
    assert.ok(Math.abs(mean - 0.5) < 0.02, `mean ${mean}`)
    assert.equal(new Set(draws).size, draws.length)
  })

  test('the delay doubles from base up to the cap, each scaled by a jitter in [0.5, 1)', () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const ceiling = Math.min(settings.cap, settings.base * 2 ** attempt)
      const delay = backoffDelay(attempt, settings, 7)
      assert.ok(Number.isInteger(delay), `attempt ${attempt}: ${delay} ms`)
      assert.ok(
        delay >= ceiling / 2 && delay < ceiling,
        `attempt ${attempt}: ${delay} ms, ceiling ${ceiling}`,
      )
    }
    // far past the cap the arithmetic still holds (2^attempt overflows to Infinity, min() takes the cap)
    const late = backoffDelay(2_000, settings, 7)
    assert.ok(late >= settings.cap / 2 && late < settings.cap, `${late} ms`)
  })

  test('jitter is a pure function of seed and attempt: same seed, same delays; another seed, others', () => {
    const delays = (seed: number) =>
      Array.from({ length: 10 }, (_, attempt) => backoffDelay(attempt, settings, seed))
    assert.deepEqual(delays(7), delays(7))
    assert.notDeepEqual(delays(7), delays(8))
  })

  test('the attempt counter grows until the un-jittered delay reaches the cap, then stays', () => {
    const attempts = [0]
    for (let step = 0; step < 10; step++)
      attempts.push(nextAttempt(attempts.at(-1)!, { base: 1_000, cap: 8_000 }))
    // 1 s, 2 s, 4 s, then 8 s = the cap: attempt 3 is the last one that changes anything
    assert.deepEqual(attempts, [0, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3])
    assert.equal(nextAttempt(0, { base: 0, cap: 8_000 }), 0, 'a zero base never grows')
  })
})
