// The README's library example, runnable: two devices in one process pair, talk over their sealed link, and the
// laptop drops a folder on the NAS.
// `node demo/library.ts` — everything stays on 127.0.0.1 (mDNS confined to loopback), data dirs are thrown away.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createNode, type NodeOptions } from '../actors/index.ts'

const dirs = [await mkdtemp(join(tmpdir(), 'sdnet-nas-')), await mkdtemp(join(tmpdir(), 'sdnet-laptop-'))]
const inbox = join(dirs[0]!, 'inbox')
const local: Partial<NodeOptions> = {
  listen: ['/ip4/127.0.0.1/tcp/0'],
  mdns: { interface: '127.0.0.1' },
  dht: false,
}
const nas = await createNode({ dataDir: dirs[0]!, name: 'nas', ...local, drop: { dir: inbox } })
const laptop = await createNode({ dataDir: dirs[1]!, name: 'laptop', ...local })
try {
  await Promise.all([nas.start(), laptop.start()])
  const connected = new Promise((resolve) => laptop.on('ConnectionEstablished', resolve))

  // Pair: the NAS shows a code, the laptop types it.
  const session = nas.pair.generate({ autoAccept: true })
  console.log('code shown on the nas:', session.code)
  const [paired] = await Promise.all([session.result, laptop.pair.join(session.code).result])
  if (paired.outcome !== 'paired') throw new Error(`pairing failed: ${paired.message}`)
  console.log(
    `paired with ${paired.device.name} [${paired.device.fingerprint}], both screens showed ${paired.sas}`,
  )
  await connected

  // Talk: the NAS serves a protocol; the laptop sends, asks and pings.
  nas.handle('thumbs/1', ({ name, body }) => `got ${body.length} bytes from ${name}`)
  const chat = new Promise<string>((resolve) =>
    nas.handle('chat/1', ({ body }) => void resolve(new TextDecoder().decode(body))),
  )
  await laptop.send('nas', 'chat/1', 'hello')
  console.log('nas received:', await chat)
  const answer = await laptop.request('nas', 'thumbs/1', new Uint8Array(1024))
  console.log('laptop got the answer:', new TextDecoder().decode(answer))
  console.log(`round trip: ${(await laptop.ping('nas')).toFixed(2)} ms`)

  // Drop: the NAS accepts what the laptop offers; the laptop sends a folder.
  const photos = join(dirs[1]!, 'photos')
  await mkdir(photos)
  await writeFile(join(photos, 'beach.jpg'), 'not really a jpeg')
  nas.drop.on('offer', (offer) => {
    console.log(`nas was offered ${offer.files} file(s) by ${offer.name} [${offer.fingerprint}]`)
    offer.accept()
  })
  const transfer = await laptop.drop.send('nas', [photos])
  transfer.on(
    (event) => event.type === 'progress' && console.log(`${event.bytesDone}/${event.bytesTotal} bytes`),
  )
  const dropped = await transfer.result
  if (dropped.outcome !== 'completed') throw new Error(`the drop did not complete: ${dropped.message}`)
  for (const file of dropped.files)
    console.log(`dropped ${file.path} (${file.size} bytes, hash ${file.hash.slice(0, 16)}…)`)
  console.log('nas has:', await readFile(join(inbox, 'photos', 'beach.jpg'), 'utf8'))
  console.log(
    'laptop sees:',
    laptop
      .devices()
      .map((d) => `${d.name} ${d.state}`)
      .join(', '),
  )
} finally {
  await Promise.all([nas.stop(), laptop.stop()])
  for (const dir of dirs) await rm(dir, { recursive: true, force: true })
}
