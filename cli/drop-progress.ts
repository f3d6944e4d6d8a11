// A transfer's progress as the drop commands show it: one cli-progress bar, redrawn on one line (bytes, rate,
// ETA), on a terminal; at most 4 NDJSON `progress` lines a second with --json; nothing otherwise.
import { Presets, SingleBar } from 'cli-progress'
import type { DropProgress } from '../actors/client.ts'
import { formatBytes, formatDuration, formatRate } from './drop-format.ts'

/** The most `progress` lines a second that `--json` prints (issue 11). */
export const PROGRESS_LINES_PER_SECOND = 4

/**
 * Lets a progress line through only when more than 1/perSecond s passed since the last one it let through, so
 * that any second, however it is placed, holds at most `perSecond` of them.
 */
export class ProgressThrottle {
  readonly #gapMs: number
  readonly #now: () => number
  #last = Number.NEGATIVE_INFINITY

  constructor(perSecond = PROGRESS_LINES_PER_SECOND, now: () => number = () => performance.now()) {
    this.#gapMs = 1000 / perSecond
    this.#now = now
  }

  /** True when a line may be printed now; it is then counted as printed. */
  take(): boolean {
    const now = this.#now()
    if (now - this.#last <= this.#gapMs) return false
    this.#last = now
    return true
  }
}

/** What the adapter needs of a bar: cli-progress's SingleBar, or a recorder in tests. */
export interface Bar {
  start(total: number, startValue: number, payload?: object): void
  update(current: number, payload?: object): void
  stop(): void
}

/** The bar's text tokens for one progress report (named apart from cli-progress's own `{value}`, `{eta}`...). */
export function barPayload(progress: DropProgress): Record<string, string> {
  return {
    done: formatBytes(progress.bytesDone),
    size: formatBytes(progress.bytesTotal),
    speed: formatRate(progress.rate),
    left: formatDuration(progress.etaMs),
    files: `${progress.filesDone.toLocaleString('en')}/${progress.filesTotal.toLocaleString('en')}`,
  }
}

export const BAR_FORMAT = '[{bar}] {percentage}% | {done} of {size} | {speed} | ETA {left} | files {files}'

/** Drives one bar from a transfer's progress reports: started by the first, filled and stopped at the end. */
export class TransferBar {
  readonly #bar: Bar
  #last: DropProgress | undefined

  constructor(bar: Bar) {
    this.#bar = bar
  }

  progress(progress: DropProgress): void {
    if (this.#last === undefined)
      this.#bar.start(progress.bytesTotal, progress.bytesDone, barPayload(progress))
    else this.#bar.update(progress.bytesDone, barPayload(progress))
    this.#last = progress
  }

  /** Ends the bar; a completed transfer shows it full for its last frame. */
  finish(completed: boolean): void {
    const last = this.#last
    if (last === undefined) return
    if (completed) {
      const full = { ...last, bytesDone: last.bytesTotal, filesDone: last.filesTotal, etaMs: 0 }
      this.#bar.update(full.bytesDone, barPayload(full))
    }
    this.#bar.stop()
    this.#last = undefined
  }
}

/** A cli-progress bar on standard output, cleared when it stops (the outcome line takes its place). */
export function terminalBar(label: string): Bar {
  return new SingleBar(
    {
      format: `${label} ${BAR_FORMAT}`,
      stream: process.stdout,
      barsize: 24,
      clearOnComplete: true,
      hideCursor: true,
      fps: 8,
    },
    Presets.shades_classic,
  )
}
