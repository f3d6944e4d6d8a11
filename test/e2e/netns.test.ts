// Proves the virtual LAN harness: hosts reach each other over TCP and mDNS multicast, a pulled cable cuts a host
// off, and destroy() leaves no namespace and no process behind.

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import { WatchedProcess } from '../helpers/cli.ts'
import { canCreateNamespaces, createLan, type Host, isAlive, type Lan, runPrefix } from '../helpers/netns.ts'

const capability = canCreateNamespaces()
const TIMEOUT_MS = 30_000

// Tiny programs run with `node -e` inside the namespaces; argv after the script is process.argv[1...].
const ECHO_SERVER = `
const server = require('node:net').createServer((socket) => socket.pipe(socket))
server.listen(0, process.argv[1], () => console.log('listening ' + server.address().port))
`
const ECHO_CLIENT = `
const [host, port, token] = process.argv.slice(1)
const socket = require('node:net').connect({ host, port: Number(port), timeout: 1500 })
socket.on('connect', () => socket.write(token))
socket.on('data', (data) => { console.log('echo ' + data); socket.destroy() })
socket.on('timeout', () => { console.log('timeout'); process.exit(2) })
socket.on('error', (error) => { console.log('error ' + error.code); process.exit(3) })
`
const MDNS_RECEIVER = `
const socket = require('node:dgram').createSocket({ type: 'udp4', reuseAddr: true })
socket.on('message', (message, from) => { console.log('got ' + message + ' from ' + from.address); socket.close() })
socket.bind(5353, () => { socket.addMembership('224.0.0.251'); console.log('ready') })
`
const MDNS_SENDER = `
const socket = require('node:dgram').createSocket('udp4')
const token = Buffer.from(process.argv[1])
let sent = 0
// Three copies without waiting in between: a lost datagram must not decide the test.
const next = () => (sent++ < 3 ? socket.send(token, 5353, '224.0.0.251', next) : socket.close())
socket.bind(next)
`
const IDLE = `console.log('ready'); setInterval(() => {}, 1000)`
// Starts a detached grandchild and exits, as a CLI starting its daemon does.
const DAEMONIZE = `
const child = require('node:child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { detached: true, stdio: 'ignore' })
child.unref()
console.log('daemon ' + child.pid)
`

function node(host: Host, script: string, args: string[] = []): WatchedProcess {
  const child = host.run(process.execPath, ['-e', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  return new WatchedProcess(child, `node -e <script> on host ${host.name}`)
}

async function echoServer(host: Host): Promise<{ server: WatchedProcess; port: string }> {
  const server = node(host, ECHO_SERVER, [host.address])
  const line = await server.waitForLine((text) => text.startsWith('listening '), 'its port', TIMEOUT_MS)
  return { server, port: line.text.split(' ')[1]! }
}

function ipJson(args: string[]): unknown {
  return JSON.parse(execFileSync('ip', ['-j', ...args], { encoding: 'utf8', timeout: 10_000 }))
}

function namespaceNames(): string[] {
  const listed = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 10_000 })
  return listed
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter(Boolean)
}

/** Pids of every process whose network namespace is one of `inodes`. */
function processesIn(inodes: Set<string>): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return inodes.has(readlinkSync(`/proc/${pid}/ns/net`))
      } catch {
        return false // exited while we looked, or a kernel thread
      }
    })
    .map(Number)
}

function processesNaming(prefix: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry) && Number(entry) !== process.pid)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(prefix)
      } catch {
        return false
      }
    })
    .map(Number)
}

describe('virtual LAN harness', { skip: capability.ok ? false : capability.reason }, () => {
  let lan: Lan

  before(async () => {
    lan = await createLan(2)
  })

  after(async () => {
    await lan?.destroy()
  })

  test('every namespace has lo up and every host its own address and a multicast route', () => {
    for (const ns of lan.namespaces) {
      const [lo] = ipJson(['-n', ns, 'link', 'show', 'lo']) as Array<{ flags: string[] }>
      assert.ok(lo?.flags.includes('UP'), `lo is up in ${ns}`)
    }
    const addresses = lan.hosts.map((host) => host.address)
    assert.equal(new Set(addresses).size, lan.hosts.length, 'hosts have distinct addresses')
    for (const host of lan.hosts) {
      assert.ok(host.ns.startsWith(runPrefix), `${host.ns} carries the run's prefix`)
      const [eth0] = ipJson(['-n', host.ns, 'addr', 'show', 'eth0']) as Array<{
        addr_info: Array<{ family: string; local: string }>
      }>
      assert.deepEqual(
        eth0?.addr_info.filter((info) => info.family === 'inet').map((info) => info.local),
        [host.address],
      )
      const routes = ipJson(['-n', host.ns, 'route', 'show', '224.0.0.0/4']) as Array<{ dev: string }>
      assert.deepEqual(
        routes.map((route) => route.dev),
        ['eth0'],
      )
    }
  })

  test('TCP from host a reaches host b', { timeout: TIMEOUT_MS }, async () => {
    const [a, b] = lan.hosts as [Host, Host]
    const { server, port } = await echoServer(b)
    const token = randomBytes(8).toString('hex')
    const client = node(a, ECHO_CLIENT, [b.address, port, token])
    const result = await client.finished(TIMEOUT_MS)
    assert.equal(result.code, 0, client.transcript())
    assert.equal(result.stdout.trim(), `echo ${token}`)
    server.kill()
    await server.finished(TIMEOUT_MS)
  })

  test('mDNS multicast from host a reaches host b', { timeout: TIMEOUT_MS }, async () => {
    const [a, b] = lan.hosts as [Host, Host]
    const receiver = node(b, MDNS_RECEIVER)
    await receiver.waitForLine((text) => text === 'ready', 'ready', TIMEOUT_MS)
    const token = randomBytes(8).toString('hex')
    const sender = node(a, MDNS_SENDER, [token])
    assert.equal((await sender.finished(TIMEOUT_MS)).code, 0, sender.transcript())
    const result = await receiver.finished(TIMEOUT_MS)
    assert.equal(result.code, 0, receiver.transcript())
    assert.equal(result.stdout.trim().split('\n').at(-1), `got ${token} from ${a.address}`)
  })

  test('a host whose link is down is cut off until the link is up again', {
    timeout: TIMEOUT_MS,
  }, async () => {
    const [a, b] = lan.hosts as [Host, Host]
    const { server, port } = await echoServer(b)
    try {
      await a.linkDown()
      const cutOff = node(a, ECHO_CLIENT, [b.address, port, 'down'])
      const down = await cutOff.finished(TIMEOUT_MS)
      assert.notEqual(down.code, 0, `no connection while the link is down.\n${cutOff.transcript()}`)
      assert.match(down.stdout, /^(timeout|error \w+)$/m)
    } finally {
      await a.linkUp()
    }
    const reconnected = node(a, ECHO_CLIENT, [b.address, port, 'up'])
    const up = await reconnected.finished(TIMEOUT_MS)
    assert.equal(up.code, 0, reconnected.transcript())
    assert.equal(up.stdout.trim(), 'echo up')
    server.kill()
    await server.finished(TIMEOUT_MS)
  })

  test('destroy() kills every process in the LAN and deletes every namespace', {
    timeout: TIMEOUT_MS,
  }, async () => {
    const doomed = await createLan(2)
    const [a, b] = doomed.hosts as [Host, Host]
    const idle = node(a, IDLE)
    await idle.waitForLine((text) => text === 'ready', 'ready', TIMEOUT_MS)
    const launcher = node(b, DAEMONIZE)
    const line = await launcher.waitForLine(
      (text) => text.startsWith('daemon '),
      'its daemon pid',
      TIMEOUT_MS,
    )
    await launcher.finished(TIMEOUT_MS)
    const daemonPid = Number(line.text.split(' ')[1])
    assert.ok(isAlive(daemonPid), 'the detached daemon runs before destroy()')
    const inodes = new Set(doomed.namespaces.map((ns) => `net:[${statSync(`/run/netns/${ns}`).ino}]`))
    assert.ok(processesIn(inodes).length >= 2, 'the idle process and the daemon live in the LAN')

    await doomed.destroy()

    assert.deepEqual(
      namespaceNames().filter((name) => name.startsWith(doomed.prefix)),
      [],
    )
    assert.deepEqual(processesIn(inodes), [])
    assert.equal(isAlive(idle.child.pid!), false)
    assert.equal(isAlive(daemonPid), false)
    await doomed.destroy() // idempotent
    assert.throws(() => a.run(process.execPath, ['-e', '0']), /destroyed/)

    await lan.destroy()
    assert.deepEqual(
      namespaceNames().filter((name) => name.startsWith(runPrefix)),
      [],
    )
    assert.deepEqual(processesNaming(runPrefix), [])
  })
})
