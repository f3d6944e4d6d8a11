// The floors' own counters: a benchmark's floor and ceiling are only worth their figures if they count what was
// sent, whatever the chunking, and if the ceiling really opens what it counts.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { BatchSealer, FrameCounter, SealedFrameCounter, varint } from '../../bench/messaging-floor.ts'

/** `count` frames of `size` bytes, each `varint length || payload`, back to back. */
function frames(size: number, count: number): Uint8Array {
  const frame = Uint8Array.from([...varint(size), ...randomBytes(size)])
  const all = new Uint8Array(frame.length * count)
  for (let i = 0; i < count; i += 1) all.set(frame, i * frame.length)
  return all
}

/** `bytes` cut into chunks of the sizes in `cuts`, repeated. */
function chunked(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const chunks: Uint8Array[] = []
  for (let at = 0, i = 0; at < bytes.length; i += 1) {
    const size = cuts[i % cuts.length] as number
    chunks.push(bytes.subarray(at, at + size))
    at += size
  }
  return chunks
}

function join(parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((part) => [...part]))
}

/** The key frame, `batches` sealed batches of `perBatch` frames of `size` bytes, and the empty frame. */
function sealedRun(size: number, perBatch: number, batches: number): Uint8Array {
  const key = randomBytes(32)
  const sealer = new BatchSealer(key)
  const parts: Uint8Array[] = [Uint8Array.from([...varint(32), ...key])]
  for (let i = 0; i < batches; i += 1) parts.push(sealer.seal(frames(size, perBatch)).subarray())
  parts.push(Uint8Array.of(0))
  return join(parts)
}

/** Feeds `chunks` to `counter`; how many chunks it took until the end of the run was seen. */
function feed(counter: FrameCounter | SealedFrameCounter, chunks: Uint8Array[]): number {
  for (const [i, chunk] of chunks.entries()) if (counter.count(chunk)) return i + 1
  return -1
}

const CUTS = [1, 2, 7, 100, 4096, 65_536, 3, 70_000]

describe('floor counters', () => {
  it('the floor counts every frame whatever the chunking', () => {
    const run = join([frames(64, 3000), frames(70_000, 3), Uint8Array.of(0)])
    const chunks = chunked(run, CUTS)
    const counter = new FrameCounter()
    assert.equal(feed(counter, chunks), chunks.length)
    assert.deepEqual(
      { frames: counter.frames, bytes: counter.bytes },
      { frames: 3003, bytes: 3000 * 64 + 210_000 },
    )
  })

  for (const [size, perBatch] of [
    [64, 1000],
    [65_536, 1],
  ] as const) {
    it(`the ceiling opens and counts ${size} B frames whatever the chunking`, () => {
      const run = sealedRun(size, perBatch, 4)
      // One byte at a time and 1 to 17 bytes in turn split every length prefix and every tag somewhere.
      const steps = Array.from({ length: 17 }, (_, i) => i + 1)
      for (const cuts of [[1], steps, CUTS]) {
        const chunks = chunked(run, cuts)
        const counter = new SealedFrameCounter()
        assert.equal(feed(counter, chunks), chunks.length, `cut into ${cuts.join(', ')}`)
        assert.deepEqual(
          { frames: counter.frames, bytes: counter.bytes },
          { frames: 4 * perBatch, bytes: 4 * perBatch * size },
        )
      }
      const chunks = chunked(run, CUTS)
      const counter = new SealedFrameCounter()
      assert.equal(feed(counter, chunks), chunks.length)
      assert.deepEqual(
        { frames: counter.frames, bytes: counter.bytes },
        { frames: 4 * perBatch, bytes: 4 * perBatch * size },
      )
      counter.reset()
      assert.deepEqual({ frames: counter.frames, bytes: counter.bytes }, { frames: 0, bytes: 0 })
    })
  }

  it('the ceiling rejects a batch that was changed on the way', () => {
    const run = sealedRun(64, 100, 2)
    run[200] = (run[200] as number) ^ 1
    assert.throws(() => feed(new SealedFrameCounter(), chunked(run, CUTS)), /authenticate/)
  })

  it('the ceiling wants its key first', () => {
    assert.throws(() => new SealedFrameCounter().count(Uint8Array.of(5, 1, 2, 3, 4, 5)), /32-byte key/)
  })
})
