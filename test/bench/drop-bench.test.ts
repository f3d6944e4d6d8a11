// The file drop benchmark still runs: its quick mode (16 MiB, 200 files, one round) between two namespaces prints
// the table and a JSON line with every figure, floor and verdict. The figures themselves are not judged here: a
// quick run is too short for them, and `npm run bench` prints them.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import path from 'node:path'
import { describe, test } from 'node:test'
import { repoRoot, WatchedProcess } from '../helpers/cli.ts'
import { canCreateNamespaces } from '../helpers/netns.ts'

const capability = canCreateNamespaces()
const BENCH_TIMEOUT_MS = 60_000

describe('the file drop benchmark', { skip: capability.ok ? false : capability.reason }, () => {
  test('its quick mode measures every figure beside its floor', {
    timeout: BENCH_TIMEOUT_MS + 10_000,
  }, async () => {
    const bench = new WatchedProcess(
      // The bench makes its own namespaces, so it runs as a plain child of this root process.
      spawn(process.execPath, [path.join(repoRoot, 'bench', 'drop.bench.ts'), '--quick'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
      'drop bench --quick',
    )
    const result = await bench.finished(BENCH_TIMEOUT_MS)
    assert.equal(result.code, 0, bench.transcript())
    const lines = result.stdout.trim().split('\n')
    assert.match(lines[0] ?? '', /^measurement\s+sdnet\s+floor\s+ratio\s+target/, bench.transcript())
    const figures = JSON.parse(lines.at(-1) ?? '') as {
      plan: { fileBytes: number; files: number }
      big: { drops: unknown[]; floors: Array<{ bytes: number }>; tcp: Array<{ bytes: number }> }
      many: { drops: unknown[]; floors: Array<{ files: number }>; synced: Array<{ files: number }> }
      resume: { size: number; chunkBytes: number; resent: number }
      met: Record<string, boolean>
    }
    const { plan, big, many, resume, met } = figures
    assert.deepEqual(
      { fileBytes: plan.fileBytes, files: plan.files },
      { fileBytes: 16 * 1024 * 1024, files: 200 },
    )
    assert.equal(big.drops.length, 1)
    assert.deepEqual(
      [...big.floors, ...big.tcp].map((floor) => floor.bytes),
      [plan.fileBytes, plan.fileBytes],
    )
    assert.equal(many.drops.length, 1)
    assert.deepEqual(
      [...many.floors, ...many.synced].map((floor) => floor.files),
      [plan.files, plan.files],
    )
    // The resumed drop sent at least the whole file, and what it sent again is counted.
    assert.ok(resume.chunkBytes >= resume.size, JSON.stringify(resume))
    assert.equal(resume.resent, resume.chunkBytes - resume.size)
    assert.deepEqual(
      Object.keys(met).map((label) => label.replace(/^\S+ (MiB|GiB) /, '').replace(/^\d+ x /, '')),
      [
        'disk to disk (MB/s)',
        'peak RSS, sender (MB)',
        'peak RSS, receiver (MB)',
        '4 KiB in a folder (files/s)',
        'resent after kill -9 at half (%)',
      ],
    )
    for (const verdict of Object.values(met)) assert.equal(typeof verdict, 'boolean')
  })
})
