// Enforces the import direction of ARCHITECTURE.md: cli -> actors (public API) -> machines, transport.
// machines import only xstate and machines/; transport never imports machines/ or actors/.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '..')

interface Rule {
  layer: string
  allowPackages: (name: string) => boolean
  allowLocal: (target: string, file: string) => boolean
}

const rules: Rule[] = [
  {
    layer: 'machines',
    allowPackages: (name) => name === 'xstate' || name.startsWith('xstate/'),
    allowLocal: (target) => target.startsWith('machines/'),
  },
  {
    layer: 'transport',
    allowPackages: () => true,
    allowLocal: (target) => target.startsWith('transport/'),
  },
  {
    layer: 'actors',
    allowPackages: () => true,
    allowLocal: (target) => ['actors/', 'machines/', 'transport/'].some((p) => target.startsWith(p)),
  },
  {
    layer: 'cli',
    allowPackages: () => true,
    allowLocal: (target) =>
      target.startsWith('cli/') || target === 'actors/index.ts' || target === 'actors/client.ts',
  },
]

function* sourceFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry)
    if (statSync(path).isDirectory()) yield* sourceFiles(path)
    else if (path.endsWith('.ts')) yield path
  }
}

const importPattern =
  /(?:^|\n)\s*(?:import|export)[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g
const problems: string[] = []
for (const rule of rules) {
  const dir = join(root, rule.layer)
  for (const file of sourceFiles(dir)) {
    const text = readFileSync(file, 'utf8')
    for (const match of text.matchAll(importPattern)) {
      const spec = match[1] ?? match[2]
      if (spec === undefined) continue
      const rel = relative(root, file)
      if (spec.startsWith('.')) {
        const target = relative(root, resolve(file, '..', spec))
        if (!rule.allowLocal(target, rel))
          problems.push(`${rel}: imports ${target}, which ${rule.layer}/ may not use`)
      } else if (!spec.startsWith('node:') && !rule.allowPackages(spec)) {
        problems.push(
          `${rel}: imports package ${spec}; ${rule.layer}/ may import only xstate and its own files`,
        )
      } else if (rule.layer === 'machines' && spec.startsWith('node:')) {
        problems.push(`${rel}: imports ${spec}; machines are pure (no I/O, clock or randomness)`)
      }
    }
  }
}
if (problems.length > 0) {
  console.error(`Layer rules broken (see ARCHITECTURE.md):\n${problems.map((p) => `  ${p}`).join('\n')}`)
  process.exit(1)
}
console.log('layers: ok')
