// Order statistics for benchmark samples (milliseconds).

export interface Summary {
  runs: number
  p50: number
  p95: number
  min: number
  max: number
}

/** Nearest-rank percentile: the smallest sample with at least `p` percent of the samples at or below it. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) throw new RangeError('A percentile of no samples is undefined.')
  const sorted = [...samples].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[rank - 1]!
}

export function summarize(samples: number[]): Summary {
  return {
    runs: samples.length,
    p50: percentile(samples, 50),
    p95: percentile(samples, 95),
    min: Math.min(...samples),
    max: Math.max(...samples),
  }
}

/** Milliseconds with two decimals: enough to read, stable in JSON. */
export function round(ms: number): number {
  return Math.round(ms * 100) / 100
}

/**
 * A whole benchmark's time bound, counted from now: `check(what)` throws once it has passed, naming where the
 * benchmark was; `leftMs()` is what remains.
 */
export function benchDeadline(ms: number): { check(what: string): void; leftMs(): number } {
  const end = performance.now() + ms
  return {
    check(what) {
      if (performance.now() > end) throw new Error(`The benchmark ran out of time (${ms} ms) ${what}.`)
    },
    leftMs: () => end - performance.now(),
  }
}
