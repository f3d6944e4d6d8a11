// The diagrams in diagrams/ are generated from the machines and must not drift: this runs the same check as
// `node scripts/diagrams.ts --check`, and shows on a small machine what the renderer draws (nesting, parallel
// regions, guards, timers, invoked actors, finals) and on a scratch copy of diagrams/ that the check can fail.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { promisify } from 'node:util'
import { fromPromise, setup } from 'xstate'
import {
  diagramsDir,
  machinesDir,
  renderMermaid,
  staleDiagrams,
  writeDiagrams,
} from '../../scripts/diagrams.ts'

const run = promisify(execFile)
const script = new URL('../../scripts/diagrams.ts', import.meta.url).pathname

test('every diagram in diagrams/ matches its machine (run `npm run diagrams` when this fails)', async () => {
  assert.deepEqual(await staleDiagrams(), [])
})

test('`node scripts/diagrams.ts --check` exits 0 when the diagrams are current', async () => {
  const { stdout } = await run(process.execPath, [script, '--check'])
  assert.match(stdout, /up to date/)
})

const scratch = mkdtempSync(join(tmpdir(), 'sdnet-diagrams-'))
after(() => rmSync(scratch, { recursive: true, force: true }))

test('the check names a stale, a missing and an orphaned diagram, and writing fixes all three', async () => {
  const dirs = { machines: machinesDir, diagrams: scratch }
  cpSync(diagramsDir, scratch, { recursive: true })
  const node = join(scratch, 'node.md')
  writeFileSync(node, readFileSync(node, 'utf8').replace('Running', 'Runing'))
  rmSync(join(scratch, 'pair-joiner.md'))
  const generated = readFileSync(join(scratch, 'session-key.md'), 'utf8')
  writeFileSync(join(scratch, 'retired.md'), generated)
  const names = (lines: string[]) => lines.map((line) => line.replace(/^.*\//, '')).sort()
  assert.deepEqual(names(await staleDiagrams(dirs)), [
    'node.md is stale',
    'pair-joiner.md is missing',
    'retired.md has no machine any more',
  ])
  assert.equal((await writeDiagrams(dirs)).length, 3)
  assert.deepEqual(await staleDiagrams(dirs), [])
  // actors.md is written by hand: never generated, never removed
  assert.equal(
    readFileSync(join(scratch, 'actors.md'), 'utf8'),
    readFileSync(join(diagramsDir, 'actors.md'), 'utf8'),
  )
})

test('the renderer draws nesting, parallel regions, guards, timers, invoked actors and finals', () => {
  const player = setup({
    types: { events: {} as { type: 'play' } | { type: 'stop' } | { type: 'eject' } },
    guards: { hasDisc: () => true },
    actors: { loadDisc: fromPromise(async () => 'disc') },
    actions: { spin: () => {}, log: () => {} },
    delays: { idle: 60_000 },
  }).createMachine({
    id: 'player',
    initial: 'Loading',
    on: { eject: '.Ejected' },
    states: {
      Loading: {
        invoke: { src: 'loadDisc', onDone: 'Ready', onError: 'Ejected' },
        after: { 5000: 'Ejected' },
      },
      Ready: {
        type: 'parallel',
        states: {
          Motor: {
            initial: 'Still',
            states: {
              Still: { on: { play: { guard: 'hasDisc', target: 'Spinning' } } },
              Spinning: { entry: 'spin', on: { stop: 'Still' } },
            },
          },
          Display: { initial: 'Dark', states: { Dark: { on: { play: { actions: 'log' } } } } },
        },
        after: { idle: 'Ejected' },
      },
      Ejected: { type: 'final' },
    },
  })
  assert.equal(
    renderMermaid(player),
    [
      'stateDiagram-v2',
      '  state "(any state)" as AnyState',
      '  [*] --> Loading',
      '  Loading : invoke loadDisc',
      '  state Ready {',
      '    state "Motor" as Ready_Motor',
      '    state Ready_Motor {',
      '      [*] --> Ready_Motor_Still',
      '      state "Still" as Ready_Motor_Still',
      '      state "Spinning" as Ready_Motor_Spinning',
      '      Ready_Motor_Spinning : entry / spin',
      '      Ready_Motor_Still --> Ready_Motor_Spinning: play [hasDisc]',
      '      Ready_Motor_Spinning --> Ready_Motor_Still: stop',
      '    }',
      '    --',
      '    state "Display" as Ready_Display',
      '    state Ready_Display {',
      '      [*] --> Ready_Display_Dark',
      '      state "Dark" as Ready_Display_Dark',
      '      Ready_Display_Dark : play / log',
      '    }',
      '  }',
      '  Ejected --> [*]',
      '  AnyState --> Ejected: eject',
      '  Loading --> Ready: done(0.player.Loading)',
      '  Loading --> Ejected: error(0.player.Loading)',
      '  Loading --> Ejected: after 5000ms',
      '  Ready --> Ejected: after idle',
    ].join('\n'),
  )
})
