import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterEach, beforeEach, describe, it } from 'node:test'
import { CorruptTrustStoreError } from '../../actors/errors.ts'
import type { WriteStep } from '../../actors/store/atomic-file.ts'
import { type PairedDevice, TrustStore } from '../../actors/store/trust-store.ts'

const STEPS: WriteStep[] = ['open', 'write', 'fsync', 'close', 'rename', 'fsyncDir']
const WRITER = join(import.meta.dirname, 'fixtures', 'trust-store-writer.ts')

function device(n: number, extra: Partial<PairedDevice> = {}): PairedDevice {
  return {
    id: n.toString(16).padStart(32, '0'),
    name: `Device ${n}`,
    peerId: `12D3KooWpeer${n}`,
    publicKey: new Uint8Array(32).fill(n),
    fingerprint: `${n}`.padStart(4, '0').repeat(4).match(/.{4}/g)!.join('-'),
    pairedAt: 1_700_000_000_000 + n,
    addresses: [`/ip4/192.168.1.${n}/tcp/4001`],
    ...extra,
  }
}

const byId = (a: PairedDevice, b: PairedDevice) => (a.id < b.id ? -1 : 1)

class SimulatedCrash extends Error {}

describe('TrustStore', () => {
  let dir: string
  let path: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sdnet-trust-'))
    path = join(dir, 'devices.json')
  })
  afterEach(() => rm(dir, { recursive: true, force: true }))

  const fileDevices = async () => {
    const file = JSON.parse(await readFile(path, 'utf8'))
    assert.equal(file.version, 1)
    return (file.devices as Array<PairedDevice & { publicKey: string }>).map((d) => d.id).sort()
  }

  it('starts empty without creating a file', async () => {
    const store = await TrustStore.open(join(dir, 'not-yet'))
    assert.deepEqual(store.list(), [])
    assert.equal(store.get('x'), undefined)
    assert.deepEqual(await readdir(dir), [])
  })

  it('round-trips devices through the file', async () => {
    const store = await TrustStore.open(join(dir, 'data'))
    await store.add(device(1))
    await store.add(device(2, { addresses: [] }))
    const filePath = join(dir, 'data', 'devices.json')
    assert.equal((await stat(filePath)).mode & 0o777, 0o600)
    assert.equal((await stat(join(dir, 'data'))).mode & 0o777, 0o700)
    const file = JSON.parse(await readFile(filePath, 'utf8'))
    assert.equal(file.version, 1)
    assert.equal(file.devices[0].publicKey, Buffer.from(new Uint8Array(32).fill(1)).toString('base64'))

    const reloaded = await TrustStore.open(join(dir, 'data'))
    assert.deepEqual(reloaded.list().sort(byId), [device(1), device(2, { addresses: [] })])
    assert.deepEqual(reloaded.get(device(2).id), device(2, { addresses: [] }))
    assert.deepEqual(reloaded.getByPeerId('12D3KooWpeer1'), device(1))
    assert.equal(reloaded.getByPeerId('12D3KooWnobody'), undefined)
  })

  it('replaces a device with the same id, removes and updates addresses', async () => {
    const store = await TrustStore.open(dir)
    await store.add(device(1))
    await store.add(device(2))
    await store.add(device(1, { name: 'Renamed', publicKey: new Uint8Array(32).fill(9) }))
    assert.equal(store.list().length, 2)
    await store.updateAddresses(device(2).id, ['/ip4/10.0.0.2/tcp/1', '/ip4/10.0.0.3/tcp/1'])
    assert.equal(await store.remove(device(1).id), true)
    assert.equal(await store.remove(device(1).id), false)

    const reloaded = await TrustStore.open(dir)
    assert.deepEqual(reloaded.list(), [
      device(2, { addresses: ['/ip4/10.0.0.2/tcp/1', '/ip4/10.0.0.3/tcp/1'] }),
    ])
  })

  it('ignores address updates for unknown devices without writing', async () => {
    const store = await TrustStore.open(dir)
    await store.updateAddresses('nobody', ['/ip4/10.0.0.9/tcp/1'])
    assert.deepEqual(await readdir(dir), [])
    assert.deepEqual(store.list(), [])
  })

  it('hands out copies, so callers cannot change its state behind its back', async () => {
    const store = await TrustStore.open(dir)
    const mine = device(1)
    await store.add(mine)
    mine.addresses.push('/ip4/6.6.6.6/tcp/1')
    mine.publicKey[0] = 0
    const listed = store.list()[0]!
    listed.addresses.length = 0
    store.get(mine.id)!.publicKey.fill(0)
    assert.deepEqual(store.get(mine.id), device(1))
  })

  it('keeps every concurrent change', async () => {
    const store = await TrustStore.open(dir)
    await Promise.all(Array.from({ length: 40 }, (_, i) => store.add(device(i))))
    await Promise.all([
      ...Array.from({ length: 10 }, (_, i) => store.remove(device(i).id)),
      ...Array.from({ length: 10 }, (_, i) => store.updateAddresses(device(10 + i).id, [`/updated/${i}`])),
      ...Array.from({ length: 10 }, (_, i) => store.add(device(40 + i))),
    ])
    const expected = [
      ...Array.from({ length: 10 }, (_, i) => device(10 + i, { addresses: [`/updated/${i}`] })),
      ...Array.from({ length: 30 }, (_, i) => device(20 + i)),
    ].sort(byId)
    assert.deepEqual(store.list().sort(byId), expected)
    assert.deepEqual((await TrustStore.open(dir)).list().sort(byId), expected)
  })

  describe('a damaged file is reported, never overwritten', () => {
    const damaged: Record<string, string> = {
      'not JSON': '{"version":1,"devices":[',
      'empty file': '',
      'unknown version': '{"version":2,"devices":[]}',
      'devices not a list': '{"version":1,"devices":{}}',
      'entry missing a field': JSON.stringify({ version: 1, devices: [{ ...device(1), name: undefined }] }),
      'public key of 31 bytes': JSON.stringify({
        version: 1,
        devices: [{ ...device(1), publicKey: Buffer.alloc(31).toString('base64') }],
      }),
    }
    for (const [what, text] of Object.entries(damaged)) {
      it(what, async () => {
        await writeFile(path, text)
        const error = await TrustStore.open(dir).catch((e: unknown) => e)
        assert.ok(error instanceof CorruptTrustStoreError, String(error))
        assert.equal(error.path, path)
        assert.ok(error.message.includes(path))
        assert.equal(await readFile(path, 'utf8'), text)
      })
    }
  })

  it('ignores temp files a crash left behind', async () => {
    const store = await TrustStore.open(dir)
    await store.add(device(1))
    await writeFile(join(dir, `.devices.json.${process.pid}.deadbeef0000.tmp`), '{"version":1,"devi')
    const reloaded = await TrustStore.open(dir)
    assert.deepEqual(reloaded.list(), [device(1)])
    await reloaded.add(device(2))
    assert.deepEqual(await fileDevices(), [device(1).id, device(2).id])
  })

  for (const crashAt of STEPS) {
    it(`a crash after "${crashAt}" leaves the old or the new file, and memory mirrors it`, async () => {
      let armed = false
      const store = await TrustStore.open(dir, {
        afterWriteStep: (step) => {
          if (armed && step === crashAt) throw new SimulatedCrash(step)
        },
      })
      await store.add(device(1))
      armed = true
      await assert.rejects(store.add(device(2)), SimulatedCrash)
      const committed = STEPS.indexOf(crashAt) >= STEPS.indexOf('rename')
      const expected = committed ? [device(1).id, device(2).id] : [device(1).id]
      assert.deepEqual(await fileDevices(), expected)
      assert.deepEqual(
        store.list().map((d) => d.id),
        expected,
      )
      assert.deepEqual(await readdir(dir), ['devices.json'])

      // The chain is not stuck: the next change goes through.
      armed = false
      await store.add(device(3))
      assert.deepEqual(await fileDevices(), [...expected, device(3).id])
      assert.deepEqual((await TrustStore.open(dir)).list().sort(byId), store.list().sort(byId))
    })
  }

  it('survives SIGKILL of a process in the middle of rewriting it', { timeout: 60_000 }, async () => {
    // Filler devices with many addresses make each version ~60 KB, so a kill often lands inside a write.
    const fillers = Array.from({ length: 40 }, (_, i) =>
      device(i, {
        addresses: Array.from({ length: 40 }, (_, a) => `/ip4/10.0.${i}.${a}/tcp/4001/p2p/12D3KooW${a}`),
      }),
    )
    const seed = await TrustStore.open(dir)
    for (const filler of fillers) await seed.add(filler)
    await seed.add(device(999, { id: 'counter', name: '0', addresses: ['/generation/0'] }))

    // Each run is killed as soon as it reports a given step of its n-th write; the child keeps running while the
    // kill is on its way, so the moments spread over the write.
    const kills: Array<[number, WriteStep]> = [
      [1, 'open'],
      [3, 'write'],
      [10, 'fsync'],
      [2, 'close'],
      [5, 'rename'],
      [4, 'fsyncDir'],
    ]
    let lastReported = 0
    for (const [nthWrite, step] of kills) {
      const child = spawn(process.execPath, [WRITER, dir, '5000'], { stdio: ['ignore', 'pipe', 'inherit'] })
      const exited = once(child, 'exit')
      let completed = 0
      for await (const line of createInterface({ input: child.stdout })) {
        const [kind, value] = line.split(' ')
        if (kind === 'wrote') {
          lastReported = Number(value)
          completed++
        } else if (completed === nthWrite - 1 && value === step) {
          break
        }
      }
      child.kill('SIGKILL')
      const [code, signal] = await exited
      assert.ok(signal === 'SIGKILL' || code === 0, `writer exited with code ${code}, signal ${signal}`)

      const store = await TrustStore.open(dir)
      const counter = store.get('counter')!
      const generation = Number(counter.name)
      assert.ok(generation >= lastReported, `generation ${generation} is older than reported ${lastReported}`)
      assert.deepEqual(counter.addresses, [`/generation/${generation}`])
      assert.deepEqual(
        store
          .list()
          .filter((d) => d.id !== 'counter')
          .sort(byId),
        [...fillers].sort(byId),
      )
      lastReported = generation
    }
    // The writers' leftovers (if a kill hit between open and rename) are only ever temp files next to the store.
    for (const name of await readdir(dir)) {
      assert.ok(name === 'devices.json' || /^\.devices\.json\.\d+\.[0-9a-f]+\.tmp$/.test(name), name)
    }
  })

  it('creates its data directory on first write', async () => {
    const nested = join(dir, 'a', 'b')
    const store = await TrustStore.open(nested)
    await store.add(device(1))
    assert.equal((await stat(join(dir, 'a'))).mode & 0o777, 0o700)
    assert.deepEqual((await TrustStore.open(nested)).list(), [device(1)])
  })
})
