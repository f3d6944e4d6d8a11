// The daemon's RPC over its Unix socket: answers, refusals of bad input, and that it stays up through them.
import assert from 'node:assert/strict'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { after, before, describe, test } from 'node:test'
import { type Daemon, DaemonClient, type DaemonStatus, socketPath, startDaemon } from '../../actors/index.ts'
import { silentLogger } from '../../actors/logger.ts'

/** Sends raw bytes on a fresh connection and returns the first line the daemon answers. */
function rawExchange(dataDir: string, bytes: string | Buffer): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(socketPath(dataDir))
    socket.once('error', reject)
    createInterface({ input: socket }).once('line', (line) => {
      socket.destroy()
      resolve(JSON.parse(line))
    })
    socket.write(bytes)
  })
}

describe('daemon RPC', () => {
  let dataDir: string
  let daemon: Daemon
  let client: DaemonClient

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'sdnet-daemon-'))
    daemon = await startDaemon({
      dataDir,
      name: 'nas',
      listen: ['/ip4/127.0.0.1/tcp/0'],
      mdns: false,
      dht: false,
      logger: silentLogger(),
    })
    client = await DaemonClient.connect(dataDir)
  })
  after(async () => {
    client.close()
    await daemon.close()
    await rm(dataDir, { recursive: true, force: true })
  })

  test('status names the device and its addresses; the socket is private to the user', async () => {
    const status = await client.call<DaemonStatus>('status')
    assert.equal(status.name, 'nas')
    assert.equal(status.pid, process.pid)
    assert.ok(status.addresses.some((a) => a.startsWith('/ip4/127.0.0.1/tcp/')))
    assert.equal((await stat(socketPath(dataDir))).mode & 0o777, 0o600)
  })

  test('an unknown method, bad params and an unknown session are refused with a reason', async () => {
    await assert.rejects(client.call('frobnicate'), {
      remoteName: 'BadRequestError',
      message: /unknown method/,
    })
    await assert.rejects(client.call('pair.accept', { sessionId: 42 }), { remoteName: 'BadRequestError' })
    await assert.rejects(client.call('pair.accept', { sessionId: 'nope' }), {
      remoteName: 'UnknownSessionError',
      message: /No pairing session "nope"/,
    })
    await assert.rejects(client.call('pair.join', { code: 'abandon abandn' }), {
      remoteName: 'InvalidCodeError',
    })
  })

  test('a line that is not JSON, or far too long, gets an error and the daemon stays up', async () => {
    const answer = await rawExchange(dataDir, 'this is not json\n')
    assert.deepEqual(answer.error, {
      name: 'BadRequestError',
      message: 'The daemon refused the request: a request line is not JSON.',
    })
    const flood = await rawExchange(dataDir, Buffer.alloc(3 * 1024 * 1024, 'a'))
    assert.match((flood.error as { message: string }).message, /longer than/)
    const status = await client.call<DaemonStatus>('status')
    assert.equal(status.running, true)
  })

  test('clients that reset their socket mid-stream (a killed CLI) do not take the daemon down', async () => {
    for (let i = 0; i < 5; i++) {
      const socket = createConnection(socketPath(dataDir))
      await new Promise<void>((resolve) => socket.once('connect', resolve))
      // The client stops reading, asks, and is gone with the answers unread: a Unix socket closed with data in
      // its queue gives the daemon ECONNRESET (and EPIPE on its next write), as a CLI killed mid-stream does.
      socket.pause()
      socket.write(`${JSON.stringify({ id: 1, method: 'events', params: {} })}\n`)
      socket.write(`${JSON.stringify({ id: 2, method: 'status', params: {} })}\n`)
      await client.call('status') // answered after the daemon took the lines above
      socket.destroy()
    }
    const status = await client.call<DaemonStatus>('status')
    assert.equal(status.running, true)
  })

  test('a session started by a client that goes away is cancelled', async () => {
    const other = await DaemonClient.connect(dataDir)
    let sessionId = ''
    const started = new Promise<void>((resolve) => {
      other
        .call('pair.generate', {}, (event) => {
          if (event.event === 'code') {
            sessionId = event.sessionId as string
            resolve()
          }
        })
        .catch(() => {})
    })
    await started
    const listed = await client.call<{ sessionId: string }[]>('pair.list')
    assert.ok(listed.some((s) => s.sessionId === sessionId))
    const gone = new Promise<void>((resolve) => other.onClose(resolve))
    other.close()
    await gone
    // The daemon sees the close and cancels; pair.list is answered after that close was processed.
    let remaining = await client.call<{ sessionId: string }[]>('pair.list')
    for (let i = 0; i < 50 && remaining.some((s) => s.sessionId === sessionId); i++) {
      await new Promise((resolve) => setImmediate(resolve))
      remaining = await client.call<{ sessionId: string }[]>('pair.list')
    }
    assert.ok(!remaining.some((s) => s.sessionId === sessionId))
  })

  test('a second daemon for the same data dir is refused', async () => {
    await assert.rejects(
      startDaemon({
        dataDir,
        listen: ['/ip4/127.0.0.1/tcp/0'],
        mdns: false,
        dht: false,
        logger: silentLogger(),
      }),
      { name: 'DaemonRunningError' },
    )
    assert.equal((await client.call<DaemonStatus>('status')).running, true)
  })

  test('stop answers, ends every client connection and removes the socket (no client is left waiting)', async () => {
    const watcher = await DaemonClient.connect(dataDir)
    const watcherGone = new Promise<void>((resolve) => watcher.onClose(resolve))
    const clientGone = new Promise<void>((resolve) => client.onClose(resolve))
    assert.deepEqual(await client.call('stop'), { stopping: true })
    await Promise.all([watcherGone, clientGone, daemon.closed])
    await assert.rejects(stat(socketPath(dataDir)), { code: 'ENOENT' })
  })
})
