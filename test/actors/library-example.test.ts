// The README's library example (demo/library.ts) runs as documented: pairs, sends, answers, pings, exits 0.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'

test('demo/library.ts pairs two nodes, exchanges messages over the sealed link and drops a folder', () => {
  const script = join(import.meta.dirname, '..', '..', 'demo', 'library.ts')
  const run = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 })
  assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`)
  assert.match(run.stdout, /paired with laptop \[[0-9A-F-]+\], both screens showed \d{3} \d{3}/)
  assert.match(run.stdout, /nas received: hello/)
  assert.match(run.stdout, /laptop got the answer: got 1024 bytes from laptop/)
  assert.match(run.stdout, /nas was offered 1 file\(s\) by laptop \[[0-9A-F-]+\]/)
  assert.match(run.stdout, /dropped photos\/beach\.jpg \(17 bytes, hash [0-9a-f]{16}…\)/)
  assert.match(run.stdout, /nas has: not really a jpeg/)
  assert.match(run.stdout, /laptop sees: nas connected/)
})
