// File drops end to end: the real `sdnet` CLI and daemons on two virtual hosts (network namespaces on one
// bridge). Every test pairs its own devices, then drops files with `sdnet drop`, answers with `sdnet drop wait`,
// `accept`, `reject` or `cancel`, and checks what both sides report and what lands in the receive folder.
// Interruptions are real: a daemon killed with SIGKILL, a cable pulled for 5 s, a receive folder on a full disk.

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, mkdtemp, open, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, type TestContext, test } from 'node:test'
import { chunkHash, FileHasher } from '../../transport/drop-codec.ts'
import {
  type CliProcess,
  createTestbed,
  type Device,
  type JsonObject,
  lastEvent,
  type Testbed,
} from '../helpers/cli.ts'
import { canCreateNamespaces } from '../helpers/netns.ts'

const capability = canCreateNamespaces()
const CONNECT_TIMEOUT_MS = 20_000
const DROP_TIMEOUT_MS = 120_000

describe('file drops across a virtual LAN', { skip: capability.ok ? false : capability.reason }, () => {
  let bed: Testbed

  before(async () => {
    bed = await createTestbed(2)
  })

  after(async () => {
    const errors = await bed?.cleanup()
    if (errors?.length) console.error(`cleanup: ${errors.map((error) => error.message).join('\n')}`)
  })

  interface Pair {
    alpha: Device
    beta: Device
    /** beta's receive folder. */
    inbox: string
    /** `sdnet drop wait --json` on beta, running since the pairing. */
    offers: CliProcess
    betaPid: number
  }

  /** alpha on host a and beta on host b, paired and connected; beta receives into its own folder. */
  async function connectedPair(t: TestContext, inbox?: string): Promise<Pair> {
    const [alpha, beta] = await Promise.all([bed.device(0, 'alpha'), bed.device(1, 'beta')])
    const folder = inbox ?? join(beta.root, 'inbox')
    beta.env.XDG_DOWNLOAD_DIR = folder
    t.after(async () => {
      for (const device of [alpha, beta]) for (const cli of device.processes) cli.kill()
      for (const error of await bed.stop([alpha, beta]))
        t.diagnostic(`cleanup: ${error.message.split('\n')[0]}`)
    })
    const [, started] = await Promise.all([alpha.start(), beta.start()])
    const events = [alpha.events(), beta.events()]
    const session = await alpha.generate(['--auto-accept'])
    const joined = await beta.run(['pair', 'join', session.code, '--json'])
    assert.equal(joined.code, 0, joined.transcript)
    await session.cli.finished()
    await Promise.all(
      events.map((e) => e.waitFor((event) => event.type === 'ConnectionEstablished', CONNECT_TIMEOUT_MS)),
    )
    for (const e of events) e.kill()
    return {
      alpha,
      beta,
      inbox: join(folder, 'sdnet'),
      offers: beta.spawn(['drop', 'wait', '--json']),
      betaPid: started.pid,
    }
  }

  /** Accepts the next offer on beta; resolves with its transfer id and the running `drop accept --json`. */
  async function acceptNext(pair: Pair, mark = 0): Promise<{ id: string; accept: CliProcess }> {
    const offer = await pair.offers.waitFor('offer', CONNECT_TIMEOUT_MS, mark)
    const id = String(offer.transferId)
    return { id, accept: pair.beta.spawn(['drop', 'accept', id, '--json']) }
  }

  async function source(device: Device, name: string): Promise<string> {
    const dir = join(device.root, 'outbox', name)
    await mkdir(dir, { recursive: true })
    return dir
  }

  test('a folder tree (empty file, empty folder, non-ASCII names) and a single file arrive with equal hashes', {
    timeout: DROP_TIMEOUT_MS,
  }, async (t) => {
    const pair = await connectedPair(t)
    const out = await source(pair.alpha, 'tree')
    const tree = join(out, 'Fotos från sommaren')
    await mkdir(join(tree, 'tom mapp'), { recursive: true })
    await mkdir(join(tree, 'ünïcödé'), { recursive: true })
    await writeFile(join(tree, 'empty.txt'), '')
    await writeFile(join(tree, 'ünïcödé', 'strand.jpg'), randomBytes(1_000_003))
    await writeFile(join(out, 'notes.md'), '# hello\n')

    const drop = pair.alpha.spawn(['drop', 'beta', tree, join(out, 'notes.md'), '--json'])
    const { accept } = await acceptNext(pair)
    const [sent, received] = await Promise.all([
      drop.finished(DROP_TIMEOUT_MS),
      accept.finished(DROP_TIMEOUT_MS),
    ])
    assert.equal(sent.code, 0, sent.transcript)
    assert.equal(received.code, 0, received.transcript)
    const sentFiles = fileHashes(lastEvent(sent, 'completed'))
    assert.deepEqual(fileHashes(lastEvent(received, 'completed')), sentFiles)
    assert.deepEqual(Object.keys(sentFiles).sort(), [
      'Fotos från sommaren/empty.txt',
      'Fotos från sommaren/ünïcödé/strand.jpg',
      'notes.md',
    ])
    const landed = join(pair.inbox, 'Fotos från sommaren')
    assert.equal(
      await sha256(join(landed, 'ünïcödé', 'strand.jpg')),
      await sha256(join(tree, 'ünïcödé', 'strand.jpg')),
    )
    assert.equal((await stat(join(landed, 'empty.txt'))).size, 0)
    assert.ok((await stat(join(landed, 'tom mapp'))).isDirectory())
    assert.equal(await readFile(join(pair.inbox, 'notes.md'), 'utf8'), '# hello\n')
  })

  test('a rejected drop fails on the sender with the reason, and nothing lands', {
    timeout: DROP_TIMEOUT_MS,
  }, async (t) => {
    const pair = await connectedPair(t)
    const out = await source(pair.alpha, 'rejected')
    await writeFile(join(out, 'secret.txt'), 'no thanks')
    const drop = pair.alpha.spawn(['drop', 'beta', join(out, 'secret.txt'), '--json'])
    const offer = await pair.offers.waitFor('offer', CONNECT_TIMEOUT_MS)
    const rejected = await pair.beta.run(['drop', 'reject', String(offer.transferId), '--json'])
    assert.equal(rejected.code, 0, rejected.transcript)
    const sent = await drop.finished(DROP_TIMEOUT_MS)
    assert.equal(sent.code, 1, sent.transcript)
    assert.equal(lastEvent(sent, 'rejected').reason, 'Declined')
    assert.deepEqual(await readdir(pair.inbox).catch(() => []), [])
  })

  for (const side of ['sender', 'receiver'] as const) {
    test(`cancelled mid-way by the ${side}: both sides end as cancelled, no partial file is left`, {
      timeout: DROP_TIMEOUT_MS,
    }, async (t) => {
      const pair = await connectedPair(t)
      const out = await source(pair.alpha, `cancel-${side}`)
      await writeFile(join(out, 'big.bin'), randomBytes(256 * 1024 * 1024))
      const drop = pair.alpha.spawn(['drop', 'beta', join(out, 'big.bin'), '--json'])
      const { id, accept } = await acceptNext(pair)
      await drop.waitFor(
        (e) => e.event === 'progress' && Number(e.bytesDone) > 16 * 1024 * 1024,
        DROP_TIMEOUT_MS,
      )
      const by = side === 'sender' ? pair.alpha : pair.beta
      const cancelled = await by.run(['drop', 'cancel', id, '--json'])
      assert.equal(cancelled.code, 0, cancelled.transcript)
      const [sent, received] = await Promise.all([
        drop.finished(DROP_TIMEOUT_MS),
        accept.finished(DROP_TIMEOUT_MS),
      ])
      assert.equal(lastEvent(sent, 'cancelled').by, side === 'sender' ? 'local' : 'peer', sent.transcript)
      assert.equal(
        lastEvent(received, 'cancelled').by,
        side === 'sender' ? 'peer' : 'local',
        received.transcript,
      )
      assert.deepEqual(await readdir(pair.inbox).catch(() => []), [])
    })
  }

  test('a 1 GiB file survives a kill -9 of the receiver at about half: it resumes by itself, re-sends < 5%', {
    timeout: 300_000,
  }, async (t) => {
    const pair = await connectedPair(t)
    const out = await source(pair.alpha, 'big')
    const size = 1024 * 1024 * 1024
    await writeRandom(join(out, 'disk.img'), size)
    const drop = pair.alpha.spawn(['drop', 'beta', join(out, 'disk.img'), '--json'])
    await acceptNext(pair)
    await drop.waitFor((e) => e.event === 'progress' && Number(e.bytesDone) > size / 2, 240_000)
    process.kill(pair.betaPid, 'SIGKILL')
    for (const cli of pair.beta.processes) cli.kill()
    await drop.waitFor((e) => e.event === 'state' && e.state === 'WaitingForPeer', CONNECT_TIMEOUT_MS)
    await pair.beta.start()
    const sent = await drop.finished(240_000)
    assert.equal(sent.code, 0, sent.transcript)
    const completed = lastEvent(sent, 'completed')
    const resent = Number(completed.bytesMoved) - size
    t.diagnostic(`re-sent ${resent} bytes (${((100 * resent) / size).toFixed(2)}% of the file)`)
    assert.ok(resent >= 0 && resent < size * 0.05, `re-sent ${resent} bytes`)
    assert.equal(await sha256(join(pair.inbox, 'disk.img')), await sha256(join(out, 'disk.img')))
    assert.equal(fileHashes(completed)['disk.img'], await sha256OfDrop(join(out, 'disk.img')))
  })

  test('the cable pulled for 5 s mid-drop: the drop waits and completes', {
    timeout: DROP_TIMEOUT_MS,
  }, async (t) => {
    const pair = await connectedPair(t)
    const out = await source(pair.alpha, 'cable')
    await writeFile(join(out, 'video.bin'), randomBytes(192 * 1024 * 1024))
    const drop = pair.alpha.spawn(['drop', 'beta', join(out, 'video.bin'), '--json'])
    await acceptNext(pair)
    await drop.waitFor(
      (e) => e.event === 'progress' && Number(e.bytesDone) > 32 * 1024 * 1024,
      DROP_TIMEOUT_MS,
    )
    const host = pair.beta.host
    await host.linkDown()
    await drop.waitFor((e) => e.event === 'state' && e.state === 'WaitingForPeer', CONNECT_TIMEOUT_MS)
    // The scenario is a cable out for 5 s: the time is the test, not a wait for an event.
    await new Promise((resolve) => setTimeout(resolve, 5_000))
    await host.linkUp()
    const sent = await drop.finished(DROP_TIMEOUT_MS)
    assert.equal(sent.code, 0, sent.transcript)
    assert.equal(await sha256(join(pair.inbox, 'video.bin')), await sha256(join(out, 'video.bin')))
  })

  test('a receive folder on a disk too small fails with a clear reason and leaves nothing', {
    timeout: DROP_TIMEOUT_MS,
  }, async (t) => {
    const disk = await mkdtemp(join(tmpdir(), 'sdnet-disk-'))
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', disk])
    t.after(() => execFileSync('umount', ['-l', disk]))
    const pair = await connectedPair(t, disk)
    const out = await source(pair.alpha, 'full')
    await writeFile(join(out, 'too-big.bin'), randomBytes(24 * 1024 * 1024))
    const drop = pair.alpha.spawn(['drop', 'beta', join(out, 'too-big.bin'), '--json'])
    const { accept } = await acceptNext(pair)
    const [sent, received] = await Promise.all([
      drop.finished(DROP_TIMEOUT_MS),
      accept.finished(DROP_TIMEOUT_MS),
    ])
    assert.equal(sent.code, 1)
    assert.equal(lastEvent(sent, 'failed').reason, 'DiskFull', sent.transcript)
    assert.match(String(lastEvent(received, 'failed').message), /disk is full/, received.transcript)
    assert.deepEqual(await readdir(pair.inbox).catch(() => []), [])
  })
})

function fileHashes(completed: JsonObject): Record<string, string> {
  const files = completed.files as Array<{ path: string; hash: string }>
  return Object.fromEntries(files.map((f) => [f.path, f.hash]))
}

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** The drop hash of a file (SHA-256 over its 256 KiB chunks' hashes), as `completed` reports it. */
async function sha256OfDrop(path: string): Promise<string> {
  const size = (await stat(path)).size
  const hasher = new FileHasher(size)
  const handle = await open(path, 'r')
  try {
    const buffer = new Uint8Array(256 * 1024)
    for (let at = 0; at < size; at += buffer.byteLength) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.byteLength, size - at), at)
      hasher.add(chunkHash(buffer.subarray(0, bytesRead)))
    }
  } finally {
    await handle.close()
  }
  return Buffer.from(hasher.digest()).toString('hex')
}

/** Writes `size` random bytes in 16 MiB pieces (a 1 GiB buffer would be wasteful). */
async function writeRandom(path: string, size: number): Promise<void> {
  const handle = await open(path, 'w')
  try {
    for (let at = 0; at < size; at += 16 * 1024 * 1024)
      await handle.write(randomBytes(Math.min(16 * 1024 * 1024, size - at)))
  } finally {
    await handle.close()
  }
}
