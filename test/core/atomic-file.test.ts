import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, it } from 'node:test'
import { type WriteStep, writeFileAtomic } from '../../actors/store/atomic-file.ts'

const STEPS: WriteStep[] = ['open', 'write', 'fsync', 'close', 'rename', 'fsyncDir']

class SimulatedCrash extends Error {}

describe('writeFileAtomic', () => {
  let dir: string
  let path: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sdnet-atomic-'))
    path = join(dir, 'state.json')
  })
  afterEach(() => rm(dir, { recursive: true, force: true }))

  it('creates and then replaces a file, leaving no temp file', async () => {
    await writeFileAtomic(path, 'first')
    assert.equal(await readFile(path, 'utf8'), 'first')
    await writeFileAtomic(path, new TextEncoder().encode('second'))
    assert.equal(await readFile(path, 'utf8'), 'second')
    assert.deepEqual(await readdir(dir), ['state.json'])
  })

  it('applies the mode exactly, whatever the umask', async () => {
    await writeFileAtomic(path, 'x', { mode: 0o600 })
    assert.equal((await stat(path)).mode & 0o777, 0o600)
    // 0o666 is wider than any usual umask allows, so only an explicit chmod produces it.
    await writeFileAtomic(path, 'y', { mode: 0o666 })
    assert.equal((await stat(path)).mode & 0o777, 0o666)
  })

  it('runs the steps in order', async () => {
    const seen: WriteStep[] = []
    await writeFileAtomic(path, 'x', { afterStep: (step) => seen.push(step) })
    assert.deepEqual(seen, STEPS)
  })

  for (const crashAt of STEPS) {
    it(`a crash after "${crashAt}" leaves the complete old or new file and no temp file`, async () => {
      await writeFile(path, 'old content')
      const crash = new SimulatedCrash(crashAt)
      await assert.rejects(
        writeFileAtomic(path, 'new content', {
          afterStep: (step) => {
            if (step === crashAt) throw crash
          },
        }),
        (error) => error === crash,
      )
      const renamed = STEPS.indexOf(crashAt) >= STEPS.indexOf('rename')
      assert.equal(await readFile(path, 'utf8'), renamed ? 'new content' : 'old content')
      assert.deepEqual(await readdir(dir), ['state.json'])
    })
  }

  it('a crash before the rename of a first write leaves no file at all', async () => {
    await assert.rejects(
      writeFileAtomic(path, 'x', {
        afterStep: (step) => {
          if (step === 'close') throw new SimulatedCrash()
        },
      }),
      SimulatedCrash,
    )
    assert.deepEqual(await readdir(dir), [])
  })

  it('rejects when the directory does not exist', async () => {
    await assert.rejects(writeFileAtomic(join(dir, 'missing', 'state.json'), 'x'), { code: 'ENOENT' })
    assert.deepEqual(await readdir(dir), [])
  })
})
