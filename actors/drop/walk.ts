// The sender's side of the file system: what a drop of some paths holds. Every dropped path and, for a folder,
// everything below it, by `lstat` (a symbolic link shows as one and does not travel), each folder listed before
// what is in it, as the manifest requires.
import { lstat, readdir } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'
import type { LocalEntry } from '../../transport/drop-manifest.ts'
import { DropPathError } from '../errors.ts'

/** Walks the dropped paths; `source` of each entry is its absolute path. Two dropped paths with one name clash. */
export async function walk(paths: readonly string[]): Promise<Array<LocalEntry & { source: string }>> {
  const found: Array<LocalEntry & { source: string }> = []
  const visit = async (source: string, path: string): Promise<void> => {
    let stats: Awaited<ReturnType<typeof lstat>>
    try {
      stats = await lstat(source)
    } catch (err) {
      throw new DropPathError(source, err)
    }
    found.push({ path, stats, source })
    if (!stats.isDirectory()) return
    let names: string[]
    try {
      names = await readdir(source)
    } catch (err) {
      throw new DropPathError(source, err)
    }
    for (const name of names.sort()) await visit(join(source, name), `${path}/${name}`)
  }
  for (const path of paths) {
    const absolute = resolve(path)
    await visit(absolute, basename(absolute))
  }
  return found
}
