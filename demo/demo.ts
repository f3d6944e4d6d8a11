// `npm start`: two real daemons, alice and bob, in separate processes with throwaway data dirs, pair through the
// same CLI a person would use. Everything stays on this host: TCP on 127.0.0.1, mDNS confined to loopback.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

const cli = join(import.meta.dirname, '..', 'cli', 'sdnet.ts')
const started = performance.now()
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(3)}s`.padStart(8)

type Line = Record<string, unknown>

function run(
  dataDir: string,
  args: string[],
  onLine: (line: Line) => void = () => {},
): { child: ChildProcess; done: Promise<number> } {
  const child = spawn(process.execPath, [cli, '--data-dir', dataDir, '--json', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  createInterface({ input: child.stdout! }).on('line', (text) => {
    try {
      onLine(JSON.parse(text) as Line)
    } catch {
      process.stdout.write(`${text}\n`)
    }
  })
  const done = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? 1)))
  return { child, done }
}

async function runOk(dataDir: string, args: string[]): Promise<Line[]> {
  const lines: Line[] = []
  const { done } = run(dataDir, args, (line) => lines.push(line))
  const code = await done
  if (code !== 0) throw new Error(`sdnet ${args.join(' ')} exited with ${code}: ${JSON.stringify(lines)}`)
  return lines
}

/** `sdnet stop`, and if that does not end the daemon within 10 s, the pid it recorded gets SIGKILL. */
async function stopDaemon(dataDir: string): Promise<void> {
  const { child, done } = run(dataDir, ['stop'])
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  const code = await done
  clearTimeout(timer)
  if (code === 0) return
  const pid = Number((await readFile(join(dataDir, 'sdnet.pid'), 'utf8').catch(() => '')).trim())
  if (pid > 0) process.kill(pid, 'SIGKILL')
}

const say = (who: string, text: string) => console.log(`${elapsed()}  ${who.padEnd(5)}  ${text}`)

const dirs = {
  alice: await mkdtemp(join(tmpdir(), 'sdnet-alice-')),
  bob: await mkdtemp(join(tmpdir(), 'sdnet-bob-')),
}
let exitCode = 1
try {
  for (const [name, dir] of Object.entries(dirs)) {
    const [identity] = await runOk(dir, ['init', '--name', name])
    say(name, `identity ${identity?.fingerprint}`)
    const [daemon] = await runOk(dir, [
      'start',
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '--mdns-interface',
      '127.0.0.1',
    ])
    say(name, `daemon pid ${daemon?.pid} on ${((daemon?.addresses as string[] | undefined) ?? []).join(' ')}`)
  }

  const pairStart = performance.now()
  const results: Record<string, Line> = {}
  let announce: (code: string) => void = () => {}
  const code = new Promise<string>((resolve) => {
    announce = resolve
  })
  const generate = run(dirs.alice, ['pair', 'generate', '--auto-accept'], (line) => {
    if (line.event === 'code') {
      say('alice', `code: ${line.code}`)
      announce(line.code as string)
    } else if (line.event === 'state') say('alice', `[pair:${line.sessionId}] -> ${line.state}`)
    else if (line.event === 'paired' || line.event === 'failed') {
      results.alice = line
      say('alice', `${line.event} ${JSON.stringify(line.device ?? line.reason)} sas ${line.sas ?? '-'}`)
    }
  })
  const words = await Promise.race([
    code,
    generate.done.then((c) => {
      throw new Error(`alice's pair generate exited with ${c} before showing a code`)
    }),
  ])
  const joinStart = performance.now()
  const join = run(dirs.bob, ['pair', 'join', words], (line) => {
    if (line.event === 'state') say('bob', `[join] -> ${line.state}`)
    else if (line.event === 'paired' || line.event === 'failed') {
      results.bob = line
      say('bob', `${line.event} ${JSON.stringify(line.device ?? line.reason)} sas ${line.sas ?? '-'}`)
    }
  })
  const [aliceCode, bobCode] = await Promise.all([generate.done, join.done])
  const pairedIn = performance.now() - joinStart
  console.log(
    `\npairing took ${pairedIn.toFixed(0)} ms from \`pair join\` to both sides paired (${(performance.now() - pairStart).toFixed(0)} ms with code generation)`,
  )

  for (const [name, dir] of Object.entries(dirs)) {
    const [devices] = await runOk(dir, ['devices'])
    const list = devices as unknown as { name: string; fingerprint: string }[]
    say(name, `paired devices: ${list.map((d) => `${d.name} [${d.fingerprint}]`).join(', ') || 'none'}`)
  }
  const ok = aliceCode === 0 && bobCode === 0 && results.alice?.sas === results.bob?.sas
  exitCode = ok ? 0 : 1
  console.log(ok ? '\nalice and bob are paired.' : '\nthe demo FAILED: see the lines above.')
} finally {
  for (const dir of Object.values(dirs)) await stopDaemon(dir)
  for (const dir of Object.values(dirs)) await rm(dir, { recursive: true, force: true })
}
process.exit(exitCode)
