// The daemon's file drop methods over its socket, between two real daemons on loopback: send and wait, accept by
// a short id, reject, follow, refusals of bad input, and a transfer that goes on when its client goes away.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, sep } from 'node:path'
import { after, before, describe, test } from 'node:test'
import {
  type Daemon,
  DaemonClient,
  type DeviceStatus,
  type DropResult,
  type DropSummary,
  startDaemon,
} from '../../actors/index.ts'
import { silentLogger } from '../../actors/logger.ts'

type Line = Record<string, unknown>

interface Side {
  dataDir: string
  daemon: Daemon
  client: DaemonClient
}

async function side(root: string, name: string, dropDir: string): Promise<Side> {
  const dataDir = join(root, name)
  const daemon = await startDaemon({
    dataDir,
    name,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    mdns: { interface: '127.0.0.1' },
    dht: false,
    drop: { dir: dropDir },
    logger: silentLogger(),
  })
  return { dataDir, daemon, client: await DaemonClient.connect(dataDir) }
}

/** A streaming call: its lines as they come, and its answer. */
function streamed<T>(client: DaemonClient, method: string, params: object = {}) {
  const lines: Line[] = []
  const waiters = new Set<() => void>()
  const result = client.call<T>(method, params, (line) => {
    lines.push(line)
    for (const wake of waiters) wake()
  })
  result.catch(() => {})
  /** The first line with this `event` (already received or still to come). */
  const line = (event: string) =>
    new Promise<Line>((resolve) => {
      const look = () => {
        const found = lines.find((l) => l.event === event)
        if (found === undefined) return
        waiters.delete(look)
        resolve(found)
      }
      waiters.add(look)
      look()
    })
  return { lines, result, line }
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex')

describe('daemon file drop RPC', () => {
  let root: string
  let alice: Side
  let bob: Side
  let bobDrops: string
  let tree: string

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sdnet-daemon-drop-'))
    bobDrops = join(root, 'bob-drops')
    ;[alice, bob] = await Promise.all([
      side(root, 'alice', join(root, 'alice-drops')),
      side(root, 'bob', bobDrops),
    ])
    const code = new Promise<string>((resolve, reject) => {
      alice.client
        .call('pair.generate', { autoAccept: true }, (line) => {
          if (line.event === 'code') resolve(line.code as string)
        })
        .catch(reject)
    })
    const joined = await bob.client.call<{ outcome: string }>('pair.join', { code: await code })
    assert.equal(joined.outcome, 'paired')
    for (const { client } of [alice, bob]) {
      for (let i = 0; ; i++) {
        const devices = await client.call<DeviceStatus[]>('devices')
        if (devices[0]?.state === 'connected') break
        assert.ok(i < 200, `no connection: ${JSON.stringify(devices)}`)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
    tree = join(root, 'holiday')
    await mkdir(join(tree, 'empty folder'), { recursive: true })
    await writeFile(join(tree, 'notes.txt'), 'sunny\n')
    await writeFile(join(tree, 'ünïcödé.txt'), 'ß'.repeat(1000))
  })

  after(async () => {
    for (const { client } of [alice, bob]) client?.close()
    await Promise.all([alice?.daemon.close(), bob?.daemon.close()])
    await rm(root, { recursive: true, force: true })
  })

  test('a folder offered with drop.send, seen by drop.wait, accepted by a short id, arrives with the same hashes', async () => {
    const waiting = streamed(bob.client, 'drop.wait')
    const sending = streamed<DropResult>(alice.client, 'drop.send', { device: 'bob', paths: [tree] })
    const offered = (await sending.line('offer')) as unknown as DropSummary
    assert.equal(offered.direction, 'send')
    assert.equal(offered.name, 'bob')
    const offer = (await waiting.line('offer')) as unknown as DropSummary
    assert.equal(offer.transferId, offered.transferId)
    assert.equal(offer.direction, 'receive')
    assert.equal(offer.name, 'alice')
    assert.equal(offer.files, 2)
    assert.equal(offer.bytes, 6 + 2000)
    assert.ok(offer.paths.includes('holiday/notes.txt'), JSON.stringify(offer.paths))

    const listed = await bob.client.call<DropSummary[]>('drop.list')
    assert.deepEqual(
      listed.map((t) => [t.transferId, t.direction, t.state]),
      [[offer.transferId, 'receive', 'Offered']],
    )

    const accepting = streamed<DropResult>(bob.client, 'drop.accept', { id: offer.transferId.slice(0, 8) })
    const [sent, received] = await Promise.all([sending.result, accepting.result])
    assert.equal(sent.outcome, 'completed', JSON.stringify(sent))
    assert.equal(received.outcome, 'completed', JSON.stringify(received))
    if (sent.outcome !== 'completed' || received.outcome !== 'completed') return
    assert.equal(accepting.lines[0]?.event, 'accepted')
    assert.equal(accepting.lines[0]?.transferId, offer.transferId)
    assert.ok(
      sending.lines.some((l) => l.event === 'accepted'),
      `the sender hears that its offer was accepted: ${JSON.stringify(sending.lines.map((l) => l.event))}`,
    )
    assert.ok(
      accepting.lines.every((l) => l.event !== 'accepted' || l === accepting.lines[0]),
      'accepted once',
    )

    const byPath = (r: typeof sent) => Object.fromEntries(r.files.map((f) => [f.path, f.hash]))
    assert.deepEqual(byPath(received), byPath(sent))
    for (const file of received.files) {
      assert.ok(file.savedAs?.startsWith(bobDrops + sep), `${file.savedAs} is in the receive folder`)
      const original = await readFile(join(root, file.path))
      assert.equal(sha256(await readFile(file.savedAs!)), sha256(original))
    }
  })

  test('a rejected offer ends the sender with the reason; drop.reject answers with the full id', async () => {
    const waiting = streamed(bob.client, 'drop.wait')
    const sending = streamed<DropResult>(alice.client, 'drop.send', {
      device: 'bob',
      paths: [join(tree, 'notes.txt')],
    })
    const { transferId } = await sending.line('offer')
    await waiting.line('offer')
    const answer = await bob.client.call<{ transferId: string }>('drop.reject', {
      id: (transferId as string).slice(0, 6),
    })
    assert.equal(answer.transferId, transferId)
    const result = await sending.result
    assert.equal(result.outcome, 'rejected')
    if (result.outcome === 'rejected') assert.ok(result.reason.length > 0 && result.message.length > 0)
  })

  test('a sender whose client goes away goes on; drop.follow from another client sees it end', async () => {
    const leaving = await DaemonClient.connect(alice.dataDir)
    const sending = streamed<DropResult>(leaving, 'drop.send', {
      device: 'bob',
      paths: [join(tree, 'notes.txt')],
    })
    const { transferId } = await sending.line('offer')
    const gone = new Promise<void>((resolve) => leaving.onClose(resolve))
    leaving.close()
    await gone

    const waiting = streamed(bob.client, 'drop.wait')
    const following = streamed<DropResult>(alice.client, 'drop.follow', { id: transferId })
    const first = await following.line('transfer')
    assert.equal(first.transferId, transferId)
    assert.equal(first.direction, 'send')
    await waiting.line('offer')
    const received = await bob.client.call<DropResult>('drop.accept', { id: transferId })
    assert.equal(received.outcome, 'completed', JSON.stringify(received))
    assert.equal((await following.result).outcome, 'completed')
  })

  test('bad input is refused with a reason, and the daemon stays up', async () => {
    await assert.rejects(alice.client.call('drop.send', { device: 'bob', paths: ['holiday'] }), {
      remoteName: 'BadRequestError',
      message: /absolute paths/,
    })
    await assert.rejects(alice.client.call('drop.send', { device: 'bob', paths: [] }), {
      remoteName: 'BadRequestError',
    })
    for (const method of ['drop.accept', 'drop.reject', 'drop.cancel', 'drop.follow']) {
      await assert.rejects(alice.client.call(method, { id: 'feedbeef' }), {
        remoteName: 'UnknownTransferError',
      })
    }
    await assert.rejects(alice.client.call('drop.frobnicate'), {
      remoteName: 'BadRequestError',
      message: /unknown method "drop.frobnicate"/,
    })
    assert.deepEqual(await alice.client.call('drop.list'), [])
  })
})
