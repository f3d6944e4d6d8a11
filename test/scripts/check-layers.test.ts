import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, describe, it } from 'node:test'
import { checkLayers } from '../../scripts/check-layers.ts'

const repo = join(import.meta.dirname, '..', '..')
const trees: string[] = []
after(() => {
  for (const tree of trees) rmSync(tree, { recursive: true, force: true })
})

/** A tree of source files, each given as path -> the files it imports (relative specifiers or packages). */
function tree(files: Record<string, string[]>): string {
  const root = mkdtempSync(join(tmpdir(), 'sdnet-layers-'))
  trees.push(root)
  for (const [file, imports] of Object.entries(files)) {
    mkdirSync(join(root, dirname(file)), { recursive: true })
    const lines = imports.map((spec, i) => `import { x${i} } from '${spec}'`)
    writeFileSync(join(root, file), `${lines.join('\n')}\nexport const x = 1\n`)
  }
  return root
}

/** The problems a tree has, each matched against one pattern in order. */
function assertProblems(files: Record<string, string[]>, expected: RegExp[]): void {
  const problems = checkLayers(tree(files))
  assert.equal(problems.length, expected.length, problems.join('\n'))
  for (const [i, pattern] of expected.entries()) assert.match(problems[i]!, pattern)
}

describe('layer and room rules', () => {
  it('hold for this repository', () => {
    assert.deepEqual(checkLayers(repo), [])
  })

  it('find an import cycle anywhere, also through type imports and tests', () => {
    assertProblems(
      {
        'transport/a.ts': ['./b.ts'],
        'transport/b.ts': ['./c.ts'],
        'transport/c.ts': ['./a.ts'],
        'test/helpers/x.ts': ['./y.ts'],
        'test/helpers/y.ts': ['./x.ts'],
        'transport/ok.ts': ['./a.ts'],
      },
      [
        /import cycle: test\/helpers\/x\.ts <-> test\/helpers\/y\.ts/,
        /import cycle: transport\/a\.ts <-> transport\/b\.ts <-> transport\/c\.ts/,
      ].sort(() => 0),
    )
  })

  it("refuse a room that reaches into another room's internals", () => {
    assertProblems(
      {
        'actors/store/index.ts': ['./identity.ts'],
        'actors/store/identity.ts': [],
        'actors/pairing/service.ts': ['../store/identity.ts', '../store/index.ts'],
      },
      [
        /actors\/pairing\/service\.ts: imports actors\/store\/identity\.ts: .*import actors\/store\/index\.ts instead/,
      ],
    )
  })

  it('refuse a room that uses a room it is not declared to use, or the composition root', () => {
    assertProblems(
      {
        'actors/pairing/index.ts': [],
        'actors/connections/index.ts': [],
        'actors/node.ts': ['./pairing/index.ts', './connections/index.ts'],
        'actors/store/trust.ts': ['../pairing/index.ts'],
        'actors/connections/service.ts': ['../node.ts'],
        'actors/daemon/daemon.ts': ['../node.ts', '../pairing/index.ts'],
      },
      [
        /actors\/connections\/service\.ts: imports actors\/node\.ts: .*rooms meet in the composition root/,
        /actors\/store\/trust\.ts: imports actors\/pairing\/index\.ts: room store\/ is not declared to use room pairing\//,
      ],
    )
  })

  it('keep the shared modules free of rooms, and the top of actors/ free of anything else', () => {
    assertProblems(
      {
        'actors/events.ts': ['./pairing/index.ts'],
        'actors/pairing/index.ts': ['../errors.ts'],
        'actors/errors.ts': [],
        'actors/helper.ts': [],
        'actors/sync/index.ts': [],
      },
      [
        /actors\/events\.ts: imports actors\/pairing\/index\.ts: .*shared by the rooms/,
        /actors\/helper\.ts: the top of actors\/ holds only the root and shared modules/,
        /actors\/sync\/index\.ts: actors\/sync\/ is not a room/,
      ],
    )
  })

  it('keep machines pure, transport below actors, and the CLI on the public API', () => {
    assertProblems(
      {
        'machines/a.machine.ts': ['xstate', 'node:fs', 'pino', '../transport/x.ts'],
        'transport/x.ts': ['../machines/a.machine.ts', 'cbor-x'],
        'cli/sdnet.ts': ['../actors/client.ts', '../actors/node.ts'],
        'actors/client.ts': [],
        'actors/node.ts': [],
      },
      [
        /cli\/sdnet\.ts: imports actors\/node\.ts: cli\/ may import only cli\/ and the public API/,
        /machines\/a\.machine\.ts: imports node:fs: machines are pure/,
        /machines\/a\.machine\.ts: imports pino: machines\/ may import only xstate/,
        /machines\/a\.machine\.ts: imports transport\/x\.ts: machines\/ may import only machines\//,
        /transport\/x\.ts: imports machines\/a\.machine\.ts: transport\/ may import only transport\//,
        /import cycle: machines\/a\.machine\.ts <-> transport\/x\.ts/,
      ],
    )
  })

  it('make the script (and so npm test) fail on a broken tree and pass on this one', () => {
    const script = join(repo, 'scripts', 'check-layers.ts')
    const broken = tree({ 'transport/a.ts': ['./b.ts'], 'transport/b.ts': ['./a.ts'] })
    const failed = spawnSync(process.execPath, [script, broken], { encoding: 'utf8' })
    assert.equal(failed.status, 1)
    assert.match(failed.stderr, /import cycle: transport\/a\.ts <-> transport\/b\.ts/)
    const passed = spawnSync(process.execPath, [script], { encoding: 'utf8' })
    assert.equal(passed.status, 0, passed.stderr)
  })
})
