// Reconnect backoff for connection.machine.ts: exponential, capped, with deterministic jitter. Pure: the
// randomness is a seed that actors/ draws once per connection, so a test (or a replay) sees the same delays.

export type BackoffSettings = {
  /** Milliseconds: the delay before the first retry, before jitter. */
  base: number
  /** Milliseconds: no delay is longer, before jitter. */
  cap: number
}

/**
 * The `index`-th number (from 0) that mulberry32 seeded with `seed` produces, in [0, 1). mulberry32 advances its
 * state by a constant per draw, so any draw can be computed directly: no state to carry in a machine's context.
 */
export function mulberry32(seed: number, index: number): number {
  let t = (seed + Math.imul(index + 1, 0x6d2b79f5)) | 0
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/**
 * Whole milliseconds to wait before retry number `attempt` (from 0): min(cap, base * 2^attempt), scaled by a
 * jitter factor in [0.5, 1) so that devices that lost their links at the same moment do not retry in step.
 */
export function backoffDelay(attempt: number, settings: BackoffSettings, seed: number): number {
  const ceiling = Math.min(settings.cap, settings.base * 2 ** attempt)
  return Math.floor(ceiling * (0.5 + 0.5 * mulberry32(seed, attempt)))
}

/**
 * The attempt after `attempt`. It stops growing once the cap is reached: later retries would wait as long anyway,
 * and a bounded counter keeps the machine's reachable states finite.
 */
export function nextAttempt(attempt: number, settings: BackoffSettings): number {
  return settings.base > 0 && settings.base * 2 ** attempt < settings.cap ? attempt + 1 : attempt
}
