import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import type { DropResult, NodeEvent, NodeOptions, SdnetNode } from '../../actors/index.ts'
import { cbor } from '../../transport/cbor.ts'
import { decodeDropMessage, encodeDropMessage, fileHash } from '../../transport/drop-codec.ts'
import { manifestHash } from '../../transport/drop-manifest.ts'
import { testNodes } from '../helpers/nodes.ts'

const nodes = testNodes()
after(() => nodes.cleanup())

function nextEvent<T extends NodeEvent['type']>(node: SdnetNode, type: T) {
  return new Promise<Extract<NodeEvent, { type: T }>>((resolve) => {
    const off = node.on(type, (event) => {
      off()
      resolve(event as Extract<NodeEvent, { type: T }>)
    })
  })
}

/** Two started, paired nodes with their link up; bob receives into `bobDir`. */
async function pairedPair(opts: { alice?: Partial<NodeOptions>; bob?: Partial<NodeOptions> } = {}) {
  const bobDir = await mkdtemp(join(tmpdir(), 'sdnet-drops-'))
  const alice = await nodes.make('alice', opts.alice)
  const bob = await nodes.make('bob', { ...opts.bob, drop: { dir: bobDir, ...opts.bob?.drop } })
  await Promise.all([alice.start(), bob.start()])
  const up = Promise.all([nextEvent(alice, 'ConnectionEstablished'), nextEvent(bob, 'ConnectionEstablished')])
  const session = alice.pair.generate({ autoAccept: true })
  await Promise.all([session.result, bob.pair.join(session.code).result])
  await up
  return { alice, bob, bobDir }
}

async function sourceTree(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'sdnet-src-'))
  const tree = join(root, 'holiday')
  await mkdir(join(tree, 'empty folder'), { recursive: true })
  await mkdir(join(tree, 'photos', 'ünïcödé'), { recursive: true })
  await writeFile(join(tree, 'notes.txt'), 'sunny\n')
  await writeFile(join(tree, 'empty.bin'), '')
  await writeFile(join(tree, 'photos', 'ünïcödé', 'big.bin'), randomBytes(3 * 256 * 1024 + 17))
  return tree
}

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex')

describe('file drops between paired devices', () => {
  test('a folder tree with empty files, empty folders and non-ASCII names arrives whole, after consent', async () => {
    const { alice, bob, bobDir } = await pairedPair()
    const tree = await sourceTree()
    const offered = new Promise<string>((resolve) =>
      bob.drop.on('offer', (offer) => {
        assert.equal(offer.name, 'alice')
        assert.equal(offer.files, 3)
        resolve(offer.transferId)
        offer.accept()
      }),
    )
    const seen: string[] = []
    bob.on('*', (event) => {
      if (event.type.startsWith('Drop') && event.type !== 'DropProgress') seen.push(event.type)
    })
    const transfer = await alice.drop.send('bob', [tree])
    const transferId = await offered
    assert.equal(transferId, transfer.transferId)
    const [sent, received] = await Promise.all([transfer.result, bob.drop.get(transferId).result])
    assert.equal(sent.outcome, 'completed', JSON.stringify(sent))
    assert.equal(received.outcome, 'completed', JSON.stringify(received))
    const big = await readFile(join(bobDir, 'holiday', 'photos', 'ünïcödé', 'big.bin'))
    assert.equal(sha(big), sha(await readFile(join(tree, 'photos', 'ünïcödé', 'big.bin'))))
    assert.equal(await readFile(join(bobDir, 'holiday', 'notes.txt'), 'utf8'), 'sunny\n')
    assert.equal((await stat(join(bobDir, 'holiday', 'empty.bin'))).size, 0)
    assert.ok((await stat(join(bobDir, 'holiday', 'empty folder'))).isDirectory())
    // nothing but the drop (no partial folder) is left in the receive folder
    assert.deepEqual(await readdir(bobDir), ['holiday'])
    if (sent.outcome === 'completed' && received.outcome === 'completed') {
      const bigResult = sent.files.find((f) => f.path.endsWith('big.bin'))!
      assert.equal(bigResult.hash, Buffer.from(fileHash(big)).toString('hex'))
      assert.deepEqual(
        received.files.map((f) => f.hash),
        sent.files.map((f) => f.hash),
      )
    }
    assert.deepEqual(seen, ['DropOffered', 'DropAccepted', 'DropCompleted'])
    assert.deepEqual(alice.drop.list(), [])
  })

  test('a second drop of the same name lands beside the first with a suffix, never over it', async () => {
    const { alice, bob, bobDir } = await pairedPair()
    const src = await mkdtemp(join(tmpdir(), 'sdnet-src-'))
    await writeFile(join(src, 'report.txt'), 'first')
    bob.drop.on('offer', (offer) => offer.accept())
    assert.equal(
      (await (await alice.drop.send('bob', [join(src, 'report.txt')])).result).outcome,
      'completed',
    )
    await writeFile(join(src, 'report.txt'), 'second')
    assert.equal(
      (await (await alice.drop.send('bob', [join(src, 'report.txt')])).result).outcome,
      'completed',
    )
    assert.equal(await readFile(join(bobDir, 'report.txt'), 'utf8'), 'first')
    assert.equal(await readFile(join(bobDir, 'report (1).txt'), 'utf8'), 'second')
  })

  test('a rejected drop writes nothing and tells the sender', async () => {
    const { alice, bob, bobDir } = await pairedPair()
    const tree = await sourceTree()
    bob.drop.on('offer', (offer) => offer.reject())
    const result = await (await alice.drop.send('bob', [tree])).result
    assert.equal(result.outcome, 'rejected')
    assert.deepEqual(await readdir(bobDir).catch(() => []), [])
  })

  test('a path that does not exist is refused at once, naming it', async () => {
    const { alice } = await pairedPair()
    await assert.rejects(alice.drop.send('bob', ['/no/such/holiday']), {
      name: 'DropPathError',
      message: /Cannot send "\/no\/such\/holiday": it does not exist/,
    })
    assert.deepEqual(alice.drop.list(), [])
  })

  test('a receive folder that is a symbolic link fails the drop when accepted, as an I/O failure', async () => {
    const real = await mkdtemp(join(tmpdir(), 'sdnet-real-'))
    const link = join(await mkdtemp(join(tmpdir(), 'sdnet-link-')), 'inbox')
    await symlink(real, link)
    const { alice, bob } = await pairedPair({ bob: { drop: { dir: link } } })
    const src = await mkdtemp(join(tmpdir(), 'sdnet-src-'))
    await writeFile(join(src, 'a.txt'), 'x')
    bob.drop.on('offer', (offer) => offer.accept())
    const result = await (await alice.drop.send('bob', [join(src, 'a.txt')])).result
    assert.equal(result.outcome, 'failed')
    if (result.outcome === 'failed') {
      assert.equal(result.reason, 'IoError')
      assert.match(result.message, /symbolic link/)
    }
    assert.deepEqual(await readdir(real), [])
  })

  test('devices whose drops are accepted without asking', async () => {
    const { alice, bobDir } = await pairedPair({ bob: { drop: { acceptFrom: ['alice'] } } })
    const src = await mkdtemp(join(tmpdir(), 'sdnet-src-'))
    await writeFile(join(src, 'a.txt'), 'auto')
    const result = await (await alice.drop.send('bob', [join(src, 'a.txt')])).result
    assert.equal(result.outcome, 'completed')
    assert.equal(await readFile(join(bobDir, 'a.txt'), 'utf8'), 'auto')
  })
})

describe('file drops from a hostile paired device', () => {
  test('a chunk tampered with once is fetched again and the file arrives intact', async () => {
    let tampered = 0
    const { alice, bob, bobDir } = await pairedPair({
      alice: {
        drop: {
          rewriteChunk: (frame) => {
            if (frame.offset !== 256 * 1024 || tampered > 0) return frame
            tampered++
            const data = Uint8Array.from(frame.data)
            data[0] = data[0]! ^ 0xff
            return { ...frame, data }
          },
        },
      },
    })
    const tree = await sourceTree()
    bob.drop.on('offer', (offer) => offer.accept())
    const result = await (await alice.drop.send('bob', [tree])).result
    assert.equal(result.outcome, 'completed', JSON.stringify(result))
    assert.equal(tampered, 1)
    const got = await readFile(join(bobDir, 'holiday', 'photos', 'ünïcödé', 'big.bin'))
    assert.equal(sha(got), sha(await readFile(join(tree, 'photos', 'ünïcödé', 'big.bin'))))
  })

  test('a chunk that fails its check twice fails the drop, and no corrupted file reaches a final name', async () => {
    const { alice, bob, bobDir } = await pairedPair({
      alice: {
        drop: {
          rewriteChunk: (frame) => {
            if (frame.offset !== 256 * 1024) return frame
            const data = Uint8Array.from(frame.data)
            data[0] = data[0]! ^ 0xff
            return { ...frame, data }
          },
        },
      },
    })
    const tree = await sourceTree()
    const receiving = new Promise<DropResult>((resolve) =>
      bob.drop.on('offer', (offer) => void offer.accept().result.then(resolve)),
    )
    const transfer = await alice.drop.send('bob', [tree])
    const [sent, received] = await Promise.all([transfer.result, receiving])
    assert.equal(received.outcome, 'failed')
    assert.equal(sent.outcome, 'failed')
    if (received.outcome === 'failed') {
      assert.equal(received.reason, 'Corrupted')
      assert.match(received.message, /hash check twice/)
    }
    const big = join(bobDir, 'holiday', 'photos', 'ünïcödé', 'big.bin')
    await assert.rejects(stat(big), { code: 'ENOENT' })
    assert.deepEqual((await readdir(bobDir)).includes('.sdnet-partial'), false)
  })

  test('offers whose manifests escape the receive folder or carry links are refused before anything is written', async () => {
    const { alice, bob, bobDir } = await pairedPair()
    const offered: string[] = []
    bob.drop.on('offer', (offer) => offered.push(offer.transferId))
    const replies = attackerReplies(alice)
    const hostile = [
      [{ path: '../escape.txt', kind: 'file', size: 1, mode: 0o644, mtimeMs: 0 }],
      [{ path: '/etc/passwd', kind: 'file', size: 1, mode: 0o644, mtimeMs: 0 }],
      [
        { path: 'a', kind: 'dir', mode: 0o755, mtimeMs: 0 },
        { path: 'a/../../b', kind: 'file', size: 1, mode: 0o644, mtimeMs: 0 },
      ],
      [{ path: 'link', kind: 'symlink', target: '/etc', mode: 0o777, mtimeMs: 0 }],
      [{ path: 'dev', kind: 'device', mode: 0o600, mtimeMs: 0 }],
      [
        { path: 'A.txt', kind: 'file', size: 1, mode: 0o644, mtimeMs: 0 },
        { path: 'a.txt', kind: 'file', size: 1, mode: 0o644, mtimeMs: 0 },
      ],
    ]
    for (const entries of hostile) {
      const offer = handMadeOffer(entries)
      await alice.send('bob', 'drop/1', encodeDropMessage(offer))
      const reply = await replies.next()
      assert.equal(reply.t, 'reject', JSON.stringify(entries))
      if (reply.t === 'reject') {
        assert.equal(reply.transferId, offer.transferId)
        assert.equal(reply.reason, 'InvalidManifest')
      }
    }
    assert.deepEqual(offered, [])
    assert.deepEqual(await readdir(bobDir).catch(() => []), [])
  })

  test('a flood of offers is refused past the limit, and the offers that waited are unharmed', async () => {
    const { alice, bob } = await pairedPair()
    const offered: string[] = []
    const fourWaiting = Promise.withResolvers<void>()
    bob.drop.on('offer', (offer) => {
      offered.push(offer.transferId)
      if (offered.length === 4) fourWaiting.resolve()
    })
    const replies = attackerReplies(alice)
    const flood = Array.from({ length: 8 }, () =>
      handMadeOffer([{ path: 'f.txt', kind: 'file', size: 1, mode: 0o644, mtimeMs: 0 }]),
    )
    for (const offer of flood) await alice.send('bob', 'drop/1', encodeDropMessage(offer))
    // the first four wait for consent; each one after them is refused as rate limited
    for (let i = 4; i < flood.length; i++) {
      const reply = await replies.next()
      assert.equal(reply.t, 'reject')
      if (reply.t === 'reject') assert.equal(reply.reason, 'RateLimited')
    }
    await fourWaiting.promise
    const first = flood.slice(0, 4).map((o) => o.transferId)
    assert.deepEqual([...offered].sort(), first.sort())
    assert.equal(bob.drop.list().length, 4)
  })
})

/** What a paired device playing the attacker hears back: it takes over its own drop messages. */
function attackerReplies(node: SdnetNode) {
  const queue: Uint8Array[] = []
  let waiting: ((body: Uint8Array) => void) | undefined
  node.handle('drop/1', (m) => {
    if (waiting !== undefined) {
      const w = waiting
      waiting = undefined
      w(m.body)
    } else queue.push(m.body)
  })
  return {
    next: async () =>
      decodeDropMessage(queue.shift() ?? (await new Promise<Uint8Array>((resolve) => (waiting = resolve)))),
  }
}

/** An offer built by hand, past the sender's own checks, with its manifest in one part. */
function handMadeOffer(entries: unknown[]) {
  const manifest = cbor.encode({ entries })
  const bytes = new Uint8Array(manifest.buffer, manifest.byteOffset, manifest.byteLength)
  const files = entries.filter((e) => (e as { kind: string }).kind === 'file') as Array<{ size: number }>
  return {
    t: 'offer' as const,
    v: 1 as const,
    transferId: randomBytes(16).toString('hex'),
    token: new Uint8Array(32),
    files: files.length,
    bytes: files.reduce((sum, f) => sum + f.size, 0),
    manifestBytes: bytes.byteLength,
    manifestHash: manifestHash(bytes),
    part: bytes,
  }
}

describe('resuming a drop', () => {
  test('the receiver restarts at about half; the drop goes on from its last verified offset and completes intact', async () => {
    const size = 20 * 1024 * 1024 + 12_345
    const src = await mkdtemp(join(tmpdir(), 'sdnet-src-'))
    await writeFile(join(src, 'video.bin'), randomBytes(size))
    let sentAfterRestart = 0
    let restarted = false
    const { alice, bob, bobDir } = await pairedPair({
      alice: {
        drop: {
          rewriteChunk: (frame) => {
            if (restarted) sentAfterRestart += frame.data.byteLength
            return frame
          },
        },
      },
    })
    // about half is verified and written on the receiver (past its first checkpoint, at 8 MiB)
    const half = new Promise<void>((resolve) =>
      bob.on(
        'DropProgress',
        (e) => e.type === 'DropProgress' && e.bytesDone >= 12 * 1024 * 1024 && resolve(),
      ),
    )
    bob.drop.on('offer', (offer) => offer.accept())
    const transfer = await alice.drop.send('bob', [join(src, 'video.bin')])
    await half
    const lost = nextEvent(alice, 'ConnectionLost')
    await bob.stop()
    await lost
    assert.ok(alice.drop.list().some((d) => d.state === 'WaitingForPeer'))
    restarted = true
    await bob.start()
    const result = await transfer.result
    assert.equal(result.outcome, 'completed', JSON.stringify(result))
    const got = await readFile(join(bobDir, 'video.bin'))
    assert.equal(sha(got), sha(await readFile(join(src, 'video.bin'))))
    // it went on from the checkpoint, not from the start
    assert.ok(sentAfterRestart <= size - 8 * 1024 * 1024, `sent ${sentAfterRestart} bytes after the restart`)
  })

  test('a file that changed on the sender while the receiver was away fails the drop instead of mixing versions', async () => {
    const size = 12 * 1024 * 1024
    const src = await mkdtemp(join(tmpdir(), 'sdnet-src-'))
    await writeFile(join(src, 'doc.bin'), randomBytes(size))
    const half = Promise.withResolvers<void>()
    const { alice, bob } = await pairedPair({
      alice: {
        drop: {
          rewriteChunk: (frame) => {
            if (frame.offset >= 6 * 1024 * 1024) half.resolve()
            return frame
          },
        },
      },
    })
    bob.drop.on('offer', (offer) => offer.accept())
    const transfer = await alice.drop.send('bob', [join(src, 'doc.bin')])
    await half.promise
    const lost = nextEvent(alice, 'ConnectionLost')
    await bob.stop()
    await lost
    await writeFile(join(src, 'doc.bin'), randomBytes(size + 1))
    await bob.start()
    const result = await transfer.result
    assert.equal(result.outcome, 'failed')
    if (result.outcome === 'failed') {
      assert.equal(result.reason, 'SourceChanged')
      assert.equal(result.file, 'doc.bin')
    }
  })
})

const isRoot = process.getuid?.() === 0

describe('a receive folder on a small disk', { skip: isRoot ? false : 'mounting a tmpfs needs root' }, () => {
  /** A tmpfs of `mib` MiB as bob's receive folder, unmounted after the test. */
  async function smallDisk(t: { after: (fn: () => void) => void }, mib: number): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'sdnet-tmpfs-'))
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'tmpfs', dir])
    t.after(() => execFileSync('umount', ['-l', dir]))
    return dir
  }

  test('an offer that does not fit is refused with a clear reason, before a byte is written', async (t) => {
    const disk = await smallDisk(t, 8)
    const { alice, bob } = await pairedPair({ bob: { drop: { dir: disk } } })
    const src = await mkdtemp(join(tmpdir(), 'sdnet-src-'))
    await writeFile(join(src, 'huge.bin'), randomBytes(12 * 1024 * 1024))
    bob.drop.on('offer', (offer) => offer.accept())
    const result = await (await alice.drop.send('bob', [join(src, 'huge.bin')])).result
    assert.equal(result.outcome, 'failed')
    if (result.outcome === 'failed') {
      assert.equal(result.reason, 'DiskFull')
      assert.match(result.message, /disk is full/)
    }
    assert.deepEqual(await readdir(disk), [])
  })

  test('a disk that fills up during the drop fails it cleanly: no partial file under a final name, daemon up', async (t) => {
    const disk = await smallDisk(t, 24)
    const filler = join(disk, 'filler')
    let filled = false
    const { alice, bob } = await pairedPair({
      alice: {
        drop: {
          rewriteChunk: (frame) => {
            // Something else takes the disk right after the receiver checked its free space.
            if (!filled) {
              filled = true
              writeFileSync(filler, Buffer.alloc(20 * 1024 * 1024))
            }
            return frame
          },
        },
      },
      bob: { drop: { dir: disk } },
    })
    const src = await mkdtemp(join(tmpdir(), 'sdnet-src-'))
    await writeFile(join(src, 'movie.bin'), randomBytes(6 * 1024 * 1024))
    const receiving = new Promise<DropResult>((resolve) =>
      bob.drop.on('offer', (offer) => void offer.accept().result.then(resolve)),
    )
    await alice.drop.send('bob', [join(src, 'movie.bin')])
    const received = await receiving
    assert.equal(received.outcome, 'failed')
    if (received.outcome === 'failed') assert.equal(received.reason, 'DiskFull')
    assert.deepEqual((await readdir(disk)).sort(), ['filler'])
    // the daemon is still up: once there is room again, a drop goes through
    await rm(filler)
    await writeFile(join(src, 'small.txt'), 'fits now')
    const again = await (await alice.drop.send('bob', [join(src, 'small.txt')])).result
    assert.equal(again.outcome, 'completed')
    assert.equal(await readFile(join(disk, 'small.txt'), 'utf8'), 'fits now')
  })
})
