// Enforces the import rules of ARCHITECTURE.md "Layers" and "Rooms of actors/": cli -> actors (public API) ->
// machines, transport; machines import only xstate and machines/; transport never imports machines/ or actors/.
// Inside actors/, each capability room imports only its own files, the shared top-level modules, and the
// index.ts of the rooms it is declared to use; rooms meet in the composition root. No import cycles anywhere.
// `node scripts/check-layers.ts [ROOT]` prints every problem and exits 1; `npm test` runs it.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'

/** The rooms of actors/ and the rooms each may use (through their index.ts). Keep the graph acyclic. */
export const ROOMS: Readonly<Record<string, readonly string[]>> = {
  store: [],
  inspect: [],
  pairing: ['store'],
  connections: ['store'],
  drop: ['store', 'connections'],
  daemon: ['store', 'pairing', 'connections', 'drop'],
}

/** Top-level modules of actors/ that every room may import; they import no room. */
const SHARED = new Set(['actors/events.ts', 'actors/errors.ts', 'actors/logger.ts'])
/** The composition root and the public API: they may import any file of actors/. */
const ROOT = new Set(['actors/node.ts', 'actors/index.ts', 'actors/client.ts'])
/** Rooms that host the composition root (the daemon runs a node) and so may import actors/node.ts. */
const HOSTS = new Set(['daemon'])
/** Folders whose files join the cycle check; the layer rules apply to the first four. */
const FOLDERS = ['machines', 'transport', 'actors', 'cli', 'scripts', 'test', 'bench', 'demo']

const importPattern =
  /(?:^|\n)\s*(?:import|export)[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g

function* sourceFiles(dir: string): Generator<string> {
  if (!existsSync(dir)) return
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry)
    if (statSync(path).isDirectory()) yield* sourceFiles(path)
    else if (path.endsWith('.ts')) yield path
  }
}

interface Import {
  /** Repository-relative path of a local target, or the package name. */
  target: string
  local: boolean
}

function importsOf(root: string, file: string): Import[] {
  const text = readFileSync(file, 'utf8')
  const found: Import[] = []
  for (const match of text.matchAll(importPattern)) {
    const spec = match[1] ?? match[2]
    if (spec === undefined) continue
    if (spec.startsWith('.')) found.push({ target: relative(root, resolve(file, '..', spec)), local: true })
    else found.push({ target: spec, local: false })
  }
  return found
}

/** The room of an actors/ file (`actors/pairing/code.ts` -> `pairing`), or undefined for a top-level file. */
function roomOf(path: string): string | undefined {
  const parts = path.split('/')
  return parts[0] === 'actors' && parts.length > 2 ? parts[1] : undefined
}

/** Why `file` may not import the local `target`, or undefined when it may. */
function localProblem(file: string, target: string): string | undefined {
  const layer = file.split('/')[0]
  const targetLayer = target.split('/')[0]
  switch (layer) {
    case 'machines':
      return targetLayer === 'machines' ? undefined : 'machines/ may import only machines/'
    case 'transport':
      return targetLayer === 'transport' ? undefined : 'transport/ may import only transport/'
    case 'cli':
      return targetLayer === 'cli' || target === 'actors/index.ts' || target === 'actors/client.ts'
        ? undefined
        : 'cli/ may import only cli/ and the public API (actors/index.ts, actors/client.ts)'
    case 'actors':
      return actorsProblem(file, target)
    default:
      return undefined
  }
}

function actorsProblem(file: string, target: string): string | undefined {
  const targetLayer = target.split('/')[0]
  if (targetLayer === 'machines' || targetLayer === 'transport') return undefined
  if (targetLayer !== 'actors') return 'actors/ may import only actors/, machines/ and transport/'
  if (ROOT.has(file)) return undefined
  const room = roomOf(file)
  const targetRoom = roomOf(target)
  if (room === undefined) {
    // A shared top-level module.
    return SHARED.has(target)
      ? undefined
      : `${file} is shared by the rooms and may import only ${[...SHARED].join(', ')}`
  }
  if (targetRoom === room || SHARED.has(target)) return undefined
  if (target === 'actors/node.ts' && HOSTS.has(room)) return undefined
  if (targetRoom === undefined)
    return `room ${room}/ may not import ${target}: rooms meet in the composition root`
  if (!(ROOMS[room] ?? []).includes(targetRoom)) {
    return `room ${room}/ is not declared to use room ${targetRoom}/ (ROOMS in scripts/check-layers.ts)`
  }
  return target === `actors/${targetRoom}/index.ts`
    ? undefined
    : `${target} is inside room ${targetRoom}/: import actors/${targetRoom}/index.ts instead`
}

function packageProblem(file: string, name: string): string | undefined {
  if (!file.startsWith('machines/')) return undefined
  if (name.startsWith('node:')) return 'machines are pure (no I/O, clock or randomness)'
  if (name === 'xstate' || name.startsWith('xstate/')) return undefined
  return 'machines/ may import only xstate and their own files'
}

/** Every import cycle among `graph`'s files, each as the files of one strongly connected component. */
function cycles(graph: Map<string, Set<string>>): string[][] {
  // Tarjan's algorithm, iterative so that a deep import chain cannot overflow the stack.
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const onStack = new Set<string>()
  const stack: string[] = []
  const found: string[][] = []
  let next = 0
  for (const start of graph.keys()) {
    if (index.has(start)) continue
    const work: Array<{ node: string; edges: Iterator<string> }> = []
    const visit = (node: string) => {
      index.set(node, next)
      low.set(node, next)
      next++
      stack.push(node)
      onStack.add(node)
      work.push({ node, edges: (graph.get(node) ?? new Set()).values() })
    }
    visit(start)
    while (work.length > 0) {
      const top = work[work.length - 1]!
      const edge = top.edges.next()
      if (!edge.done) {
        const to = edge.value
        if (!graph.has(to)) continue
        if (!index.has(to)) visit(to)
        else if (onStack.has(to)) low.set(top.node, Math.min(low.get(top.node)!, index.get(to)!))
        continue
      }
      work.pop()
      const parent = work[work.length - 1]
      if (parent !== undefined) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(top.node)!))
      if (low.get(top.node) !== index.get(top.node)) continue
      const component: string[] = []
      let member: string
      do {
        member = stack.pop()!
        onStack.delete(member)
        component.push(member)
      } while (member !== top.node)
      const selfImport = graph.get(top.node)?.has(top.node) === true
      if (component.length > 1 || selfImport) found.push(component.sort())
    }
  }
  return found
}

/** Every broken rule under `root`, as lines for a person; empty when the tree keeps them all. */
export function checkLayers(root: string): string[] {
  const problems: string[] = []
  const graph = new Map<string, Set<string>>()
  for (const folder of FOLDERS) {
    for (const path of sourceFiles(join(root, folder))) {
      const file = relative(root, path)
      const edges = new Set<string>()
      graph.set(file, edges)
      const room = roomOf(file)
      if (room !== undefined && !(room in ROOMS)) {
        problems.push(`${file}: actors/${room}/ is not a room: add it to ROOMS in scripts/check-layers.ts`)
      } else if (file.startsWith('actors/') && room === undefined && !SHARED.has(file) && !ROOT.has(file)) {
        problems.push(
          `${file}: the top of actors/ holds only the root and shared modules: move it into a room`,
        )
      }
      for (const { target, local } of importsOf(root, path)) {
        if (local) edges.add(target)
        const problem = local ? localProblem(file, target) : packageProblem(file, target)
        if (problem !== undefined) problems.push(`${file}: imports ${target}: ${problem}`)
      }
    }
  }
  const loops = cycles(graph).map((component) => `import cycle: ${component.join(' <-> ')}`)
  return [...problems.sort(), ...loops.sort()]
}

if (import.meta.main) {
  const root = resolve(process.argv[2] ?? join(import.meta.dirname, '..'))
  const problems = checkLayers(root)
  if (problems.length > 0) {
    console.error(`Layer rules broken (see ARCHITECTURE.md):\n${problems.map((p) => `  ${p}`).join('\n')}`)
    process.exit(1)
  }
  console.log('layers: ok (no crossings, no import cycles)')
}
