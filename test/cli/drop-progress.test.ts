// The progress a drop command shows: at most 4 NDJSON lines a second, and the bar driven by progress reports.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { DropProgress } from '../../actors/client.ts'
import { type Bar, barPayload, ProgressThrottle, TransferBar } from '../../cli/drop-progress.ts'

describe('ProgressThrottle', () => {
  test('whatever the feed, no second holds more than 4 lines, and a busy feed still gets at least 2 a second out', () => {
    for (const feedMs of [1, 10, 50, 100, 249, 250, 251, 333]) {
      let now = 0
      const throttle = new ProgressThrottle(4, () => now)
      const printed: number[] = []
      for (; now <= 10_000; now += feedMs) if (throttle.take()) printed.push(now)
      // Any closed window of 1 s, starting at a printed line (where the densest window starts).
      for (const [i, start] of printed.entries()) {
        const within = printed.slice(i).filter((at) => at <= start + 1000).length
        assert.ok(within <= 4, `feed every ${feedMs} ms: ${within} lines from ${start} ms`)
      }
      const expected = Math.floor(10_000 / Math.max(feedMs, 250))
      assert.ok(printed.length >= expected * 0.5, `feed every ${feedMs} ms printed only ${printed.length}`)
    }
  })

  test('the first line goes out at once, and a line after a pause too', () => {
    let now = 5_000
    const throttle = new ProgressThrottle(4, () => now)
    assert.equal(throttle.take(), true)
    now += 100
    assert.equal(throttle.take(), false)
    now += 10_000
    assert.equal(throttle.take(), true)
  })
})

describe('TransferBar', () => {
  const progress = (bytesDone: number, filesDone = 0): DropProgress => ({
    transferId: 't',
    bytesDone,
    bytesTotal: 4 * 1024 * 1024,
    filesDone,
    filesTotal: 2,
    rate: 1024 * 1024,
    etaMs: 3_000,
  })

  function recorder() {
    const calls: unknown[][] = []
    const bar: Bar = {
      start: (...args) => void calls.push(['start', ...args]),
      update: (...args) => void calls.push(['update', ...args]),
      stop: () => void calls.push(['stop']),
    }
    return { bar, calls }
  }

  test('the tokens are readable sizes, rate, time left and files', () => {
    assert.deepEqual(barPayload(progress(1024 * 1024, 1)), {
      done: '1.0 MiB',
      size: '4.0 MiB',
      speed: '1.0 MiB/s',
      left: '0:03',
      files: '1/2',
    })
  })

  test('started by the first report (a resumed transfer from where it is), updated, and full when it completes', () => {
    const { bar, calls } = recorder()
    const view = new TransferBar(bar)
    view.progress(progress(1024 * 1024))
    view.progress(progress(2 * 1024 * 1024, 1))
    view.finish(true)
    const MiB = 1024 * 1024
    assert.deepEqual(calls, [
      ['start', 4 * MiB, MiB, barPayload(progress(MiB))],
      ['update', 2 * MiB, barPayload(progress(2 * MiB, 1))],
      [
        'update',
        4 * MiB,
        { done: '4.0 MiB', size: '4.0 MiB', speed: '1.0 MiB/s', left: '0:00', files: '2/2' },
      ],
      ['stop'],
    ])
  })

  test('a transfer that did not complete stops the bar where it was; one without a report has no bar', () => {
    const { bar, calls } = recorder()
    const view = new TransferBar(bar)
    view.finish(false)
    assert.deepEqual(calls, [])
    view.progress(progress(1))
    view.finish(false)
    assert.deepEqual(
      calls.map((c) => c[0]),
      ['start', 'stop'],
    )
  })
})
