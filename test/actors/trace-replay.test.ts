// Traces read back: a scripted pairing of two node machines (the pairing service's events sent by hand, time
// on a SimulatedClock) is recorded by the inspector, formatted, followed while it is written, and replayed
// against the machines with pure transitions, which must reach every recorded state; a doctored trace must not.
import assert from 'node:assert/strict'
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { createActor, fromPromise, SimulatedClock, waitFor } from 'xstate'
import { createInspector, type TraceLine } from '../../actors/inspect/inspect.ts'
import { followTrace, formatState, formatTrace, readTrace, replayTrace } from '../../actors/inspect/trace.ts'
import { machines } from '../../machines/index.ts'
import { type NodeEvent, nodeMachine } from '../../machines/node.machine.ts'
import type { DeviceInfo } from '../../machines/types.ts'
import { NODE_INPUT } from '../machines/harness.ts'

const scratch = mkdtempSync(join(tmpdir(), 'sdnet-trace-'))
after(() => rmSync(scratch, { recursive: true, force: true }))

const input = NODE_INPUT
const codeTtl = 60_000
const pairTimeouts = { codeTtl, step: 10_000, confirm: 30_000 }
const joinTimeouts = { discovery: 30_000, settle: 3_000, dial: 5_000, step: 10_000, confirm: 60_000 }
const alice: DeviceInfo = { id: 'a1', name: 'alice', publicKey: new Uint8Array(32).fill(1) }
const bob: DeviceInfo = { id: 'b2', name: 'bob', publicKey: new Uint8Array(32).fill(2) }

/** A node machine as actors/node.ts runs it, with a transport that starts and stops at once. */
async function startNode(peerId: string, file: string, clock: SimulatedClock) {
  const inspector = await createInspector({ file, now: () => clock.now() })
  const machine = nodeMachine.provide({
    actors: {
      startTransport: fromPromise(async () => ({ peerId, addresses: [] as string[] })),
      stopTransport: fromPromise(async () => {}),
    },
  })
  const actor = createActor(machine, { input, clock, inspect: inspector }).start()
  await waitFor(actor, (s) => s.matches('Running'))
  return {
    send: (event: NodeEvent) => actor.send(event),
    forward: (sessionId: string, event: object) =>
      actor.send({ type: 'session.forward', sessionId, event } as NodeEvent),
    async stop() {
      actor.send({ type: 'cmd.stop' })
      await waitFor(actor, (s) => s.status === 'done')
      await inspector.close()
    },
  }
}

/**
 * Alice generates a code, Bob joins it: the frames and link facts the two pairing services would report,
 * in protocol order. Alice also opens a second session nobody joins, which expires on the clock.
 */
async function recordPairing(files: { alice: string; bob: string }) {
  const clock = new SimulatedClock()
  const a = await startNode('PA', files.alice, clock)
  const b = await startNode('PB', files.bob, clock)
  a.send({ type: 'cmd.pairGenerate', sessionId: 's1', autoAccept: false, timeouts: pairTimeouts })
  a.send({ type: 'cmd.pairGenerate', sessionId: 's3', autoAccept: false, timeouts: pairTimeouts })
  b.send({ type: 'cmd.pairJoin', sessionId: 's2', timeouts: joinTimeouts })
  b.send({ type: 'transport.peerDiscovered', peerId: 'PA' })
  b.forward('s2', { type: 'link.requestSent', peerId: 'PA' })
  a.forward('s1', { type: 'peer.requestReceived', peerId: 'PB', device: bob })
  b.forward('s2', { type: 'peer.challengeReceived', peerId: 'PA', device: alice })
  b.forward('s2', { type: 'link.responseSent', peerId: 'PA' })
  a.forward('s1', { type: 'peer.responseVerified', peerId: 'PB', device: bob })
  a.forward('s1', { type: 'cmd.accept' })
  b.forward('s2', { type: 'peer.completeVerified', peerId: 'PA', device: alice, sas: '123 456' })
  clock.increment(codeTtl)
  a.send({ type: 'session.finished', sessionId: 's1' })
  b.send({ type: 'session.finished', sessionId: 's2' })
  await Promise.all([a.stop(), b.stop()])
}

const files = { alice: join(scratch, 'alice.ndjson'), bob: join(scratch, 'bob.ndjson') }
const recorded = recordPairing(files)

const byActor = (lines: TraceLine[], actor: string) =>
  lines.filter((l) => l.type === 'snapshot' && l.actor === actor).map((l) => l.type === 'snapshot' && l.state)

test('replaying a recorded pairing reaches every recorded state of every machine actor', async () => {
  await recorded
  const expected = {
    alice: [
      [
        'node',
        'node',
        ['Starting', 'Running', 'Running', 'Running', 'Running', 'Running', 'Running', 'Running'],
      ],
      ['pair:s1', 'initiator', ['WaitingForConnection', 'ChallengeSent', 'AwaitingConfirmation', 'Paired']],
      ['pair:s3', 'initiator', ['WaitingForConnection', 'Expired']],
    ],
    bob: [
      [
        'node',
        'node',
        ['Starting', 'Running', 'Running', 'Running', 'Running', 'Running', 'Running', 'Running'],
      ],
      [
        'pair:s2',
        'joiner',
        ['Discovering', 'Connecting', 'RequestSent', 'ChallengeReceived', 'ResponseSent', 'Paired'],
      ],
    ],
  }
  for (const side of ['alice', 'bob'] as const) {
    const { lines, skipped } = await readTrace(files[side])
    assert.equal(skipped, 0)
    const results = await replayTrace(lines, machines)
    for (const result of results) assert.ok(result.matches, JSON.stringify(result))
    // the node's own list ends in Stopping, Stopped: checked apart, since the number of Running snapshots
    // depends on how many children reported back
    const node = results.find((r) => r.actor === 'node')!
    assert.deepEqual(node.states.slice(-2), ['Stopping', 'Stopped'])
    const sessions = results.filter((r) => r.actor !== 'node')
    assert.deepEqual(
      sessions.map((r) => [r.actor, r.machine, r.states]),
      expected[side].slice(1),
    )
    for (const result of results) assert.deepEqual(result.states, byActor(lines, result.actor))
  }
})

test('a trace whose states the machines do not reach is reported with the first snapshot that differs', async () => {
  await recorded
  const { lines } = await readTrace(files.alice)
  const doctored = lines.map((line) =>
    line.type === 'snapshot' && line.actor === 'pair:s1' && line.state === 'AwaitingConfirmation'
      ? { ...line, state: 'Paired' }
      : line,
  )
  const session = (await replayTrace(doctored)).find((r) => r.actor === 'pair:s1')!
  assert.equal(session.matches, false)
  assert.equal(session.mismatchAt, 2)
  assert.equal(session.recorded[2], 'Paired')
  assert.equal(session.states[2], 'AwaitingConfirmation')
})

test('replay names a machine it does not know and an actor recorded without its start', async () => {
  await recorded
  const { lines } = await readTrace(files.bob)
  const unknown = await replayTrace(lines, [])
  assert.ok(unknown.length > 0)
  for (const result of unknown) {
    assert.equal(result.matches, false)
    assert.match(result.error ?? '', /no machine with id "(node|joiner)" is registered/)
  }
  const started = lines.findIndex((l) => l.type === 'snapshot' && l.actor === 'pair:s2')
  const headless = lines.filter((_, i) => i !== started)
  const session = (await replayTrace(headless)).find((r) => r.actor === 'pair:s2')!
  assert.equal(session.matches, false)
  assert.match(session.error ?? '', /not recorded from its start/)
})

test('a daemon that restarts and appends to the same trace replays as two runs', async () => {
  await recorded
  const file = join(scratch, 'twice.ndjson')
  const once = readFileSync(files.bob, 'utf8')
  appendFileSync(file, once + once)
  const runs = (await replayTrace((await readTrace(file)).lines)).filter((r) => r.actor === 'node')
  assert.equal(runs.length, 2)
  for (const run of runs) assert.ok(run.matches)
})

test('formatTrace writes one readable line per actor, event and snapshot', async () => {
  await recorded
  const { lines } = await readTrace(files.alice)
  const text = lines.map(formatTrace)
  for (const expected of [
    'node started (node)',
    'startTransport started by node',
    'node [Starting] xstate.done.actor.startTransport -> Running',
    'pair:s1 started (initiator) by node',
    'pair:s1 <- peer.responseVerified from node',
    'pair:s1 [ChallengeSent] peer.responseVerified -> AwaitingConfirmation',
    'pair:s1 [AwaitingConfirmation] cmd.accept -> Paired (paired)',
    'pair:s3 [WaitingForConnection] xstate.after.codeTtl.initiator.WaitingForConnection -> Expired (expired)',
    'node [Stopping] xstate.done.actor.stopTransport -> Stopped (stopped)',
  ]) {
    assert.ok(text.includes(expected), `no line "${expected}" in\n${text.join('\n')}`)
  }
  const at = 0
  const event = { type: 'handshake.done' }
  assert.equal(
    formatTrace({
      at,
      type: 'snapshot',
      actor: 'conn:ab12',
      event,
      from: { Linked: 'Handshaking' },
      state: { Linked: 'Connected' },
      status: 'active',
    }),
    'conn:ab12 [Linked.Handshaking] handshake.done -> Linked.Connected',
  )
  assert.equal(
    formatTrace({
      at,
      type: 'snapshot',
      actor: 'conn:ab12/keys',
      event: { type: 'xstate.stop' },
      state: 'Established',
      status: 'stopped',
    }),
    'conn:ab12/keys [-] xstate.stop -> Established (stopped)',
  )
  assert.equal(
    formatTrace({
      at,
      type: 'snapshot',
      actor: 'pair:9',
      event: { type: 'peer.proofRejected' },
      from: 'ChallengeSent',
      state: 'Failed',
      status: 'done',
      output: { outcome: 'failed', reason: 'WrongCode' },
    }),
    'pair:9 [ChallengeSent] peer.proofRejected -> Failed (failed: WrongCode)',
  )
  assert.equal(
    formatState({ Motor: 'Still', Display: { Lit: 'Bright' } }),
    '(Motor.Still, Display.Lit.Bright)',
  )
})

test('followTrace delivers the lines written after it started, and stops when aborted', async () => {
  await recorded
  const file = join(scratch, 'live.ndjson')
  appendFileSync(file, `${JSON.stringify({ at: 1, type: 'actor', actor: 'old' })}\n`)
  const abort = new AbortController()
  const seen: TraceLine[] = []
  const source = readFileSync(files.alice, 'utf8').split('\n').filter(Boolean)
  const following = (async () => {
    for await (const line of followTrace(file, { signal: abort.signal })) {
      seen.push(line)
      if (seen.length === source.length) abort.abort()
    }
  })()
  // written in two pieces, the first ending mid-line: a line is delivered only once it is whole
  const text = `${source.join('\n')}\n`
  appendFileSync(file, text.slice(0, 100))
  appendFileSync(file, text.slice(100))
  await following
  assert.deepEqual(
    seen,
    source.map((line) => JSON.parse(line)),
  )
})
