// What a process costs while a benchmark runs, read from /proc (Linux): its peak resident set (VmHWM), which a
// root process may reset (`clear_refs`, Linux >= 4.0) to measure one phase at a time; its GC pauses; and where its
// main thread spends its time (V8's sampling profiler).
import { readFileSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import path from 'node:path'
import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks'

/** The peak resident set of `pid` (default: this process) since it started or was reset, in bytes. */
export function peakRss(pid: number | 'self' = 'self'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1]
  if (kib === undefined) throw new Error(`/proc/${pid}/status shows no VmHWM`)
  return Number(kib) * 1024
}

/** The part of the resident set of `pid` that is mapped from files (the node binary, libraries), in bytes. */
export function fileBackedRss(pid: number | 'self' = 'self'): number {
  const kib = /^RssFile:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
  return Number(kib ?? Number.NaN) * 1024
}

/** Resets the peak resident set of `pid` to what it holds now; false where the kernel or rights do not allow it. */
export function resetPeakRss(pid: number | 'self' = 'self'): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}

/** Main-thread pauses for garbage collection since the meter was made: scavenges and mark-compacts, ms and count. */
export interface GcPauses {
  minorMs: number
  majorMs: number
  minor: number
  major: number
}

/** Starts counting this process's GC pauses; read the running totals from the returned object. */
export function gcMeter(): GcPauses {
  const totals: GcPauses = { minorMs: 0, majorMs: 0, minor: 0, major: 0 }
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
        totals.minorMs += entry.duration
        totals.minor += 1
      } else {
        totals.majorMs += entry.duration
        totals.major += 1
      }
    }
  }).observe({ entryTypes: ['gc'] })
  return totals
}

/** Where a process spends its CPU: V8's sampling profiler through the inspector, summed by function. */
export class Profiler {
  readonly #session = new Session()

  async start(): Promise<object> {
    this.#session.connect()
    await this.#post('Profiler.enable')
    await this.#post('Profiler.setSamplingInterval', { interval: 500 })
    await this.#post('Profiler.start')
    return {}
  }

  /** The functions with the most self time: `name (file:line) ms`, most first. */
  async stop(count = 12): Promise<Top> {
    const { profile } = (await this.#post('Profiler.stop')) as { profile: CpuProfile }
    this.#session.disconnect()
    const interval = (profile.endTime - profile.startTime) / 1000 / Math.max(1, profile.samples.length)
    const self = new Map<string, number>()
    for (const node of profile.nodes) {
      const { functionName, url, lineNumber } = node.callFrame
      if (functionName === '(idle)') continue
      const where = url === '' ? '' : ` (${shortUrl(url)}:${lineNumber + 1})`
      const fn = `${functionName || '(anonymous)'}${where}`
      self.set(fn, (self.get(fn) ?? 0) + (node.hitCount ?? 0) * interval)
    }
    return [...self.entries()]
      .sort((x, y) => y[1] - x[1])
      .slice(0, count)
      .map(([fn, ms]) => ({ fn, ms: Math.round(ms) }))
  }

  #post(method: string, params?: object): Promise<unknown> {
    return new Promise((resolve, reject) =>
      this.#session.post(method, params, (error, result) => (error ? reject(error) : resolve(result))),
    )
  }
}

/** Functions by self time, most first. */
export type Top = Array<{ fn: string; ms: number }>

const repoUrl = `file://${path.resolve(import.meta.dirname, '..')}/`

/** A script's URL as a path in the repository, or in node_modules. */
function shortUrl(url: string): string {
  const local = url.startsWith(repoUrl) ? url.slice(repoUrl.length) : url
  return local.replace(/^node_modules\//, '')
}

interface CpuProfile {
  startTime: number
  endTime: number
  samples: number[]
  nodes: Array<{ hitCount?: number; callFrame: { functionName: string; url: string; lineNumber: number } }>
}

/** The pauses between two readings of a meter. */
export function gcSince(before: GcPauses, after: GcPauses): GcPauses {
  return {
    minorMs: after.minorMs - before.minorMs,
    majorMs: after.majorMs - before.majorMs,
    minor: after.minor - before.minor,
    major: after.major - before.major,
  }
}
