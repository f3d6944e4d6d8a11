// Where a received drop lands, and the only code that writes into the receive folder (ARCHITECTURE.md "File
// drop"). A file is written under a temporary name in `<folder>/.sdnet-partial/<transferId>/`, and reaches its
// final name only once its whole-file hash has been checked, by a hard link that fails rather than replace an
// existing file. Every path is a validated manifest path (no `..`, no absolute path), and every folder on the way
// is checked not to be a symbolic link, so nothing is ever written outside the receive folder. A top-level name
// that already exists gets a suffix (`photos (1)`); the names chosen are kept in the transfer's state so that a
// resumed transfer goes on in the same place.
import { constants } from 'node:fs'
import { link, lstat, mkdir, open, realpath, rm, rmdir, statfs, unlink, utimes } from 'node:fs/promises'
import { join, sep } from 'node:path'
import type { ManifestEntry } from '../../transport/drop-manifest.ts'
import { UnsafeReceivePathError } from '../errors.ts'
import { hashFile } from './file-hash.ts'

export const PARTIAL_DIR = '.sdnet-partial'
/** Room left free on the receive folder's file system beyond the drop itself. */
const FREE_SPACE_MARGIN = 16 * 1024 * 1024

export class ReceiveFolder {
  readonly root: string
  readonly #transferId: string
  /** Top-level manifest names -> the names they land under (the same, or with a suffix). */
  readonly #names: Map<string, string>
  /** Folders made (or found) and checked not to be links, in this run of the transfer. */
  readonly #checked = new Set<string>()

  constructor(root: string, transferId: string, names: Record<string, string> = {}) {
    this.root = root
    this.#transferId = transferId
    this.#names = new Map(Object.entries(names))
  }

  /** What the transfer state keeps, so that a resumed transfer lands under the same names. */
  names(): Record<string, string> {
    return Object.fromEntries(this.#names)
  }

  get partialDir(): string {
    return join(this.root, PARTIAL_DIR, this.#transferId)
  }

  /** The temporary file of entry `index`. */
  partialPath(index: number): string {
    return join(this.partialDir, `${index}.part`)
  }

  /** Creates the receive folder and this transfer's temporary folder. */
  async prepare(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o755 })
    await this.#checkFolder(this.root, this.root)
    await mkdir(this.partialDir, { recursive: true, mode: 0o700 })
  }

  /** Bytes free to this user on the receive folder's file system. */
  async freeBytes(): Promise<number> {
    await mkdir(this.root, { recursive: true, mode: 0o755 })
    const stats = await statfs(this.root)
    return stats.bavail * stats.bsize
  }

  /** Whether `bytes` more fit, with a margin. */
  async fits(bytes: number): Promise<{ fits: boolean; free: number }> {
    const free = await this.freeBytes()
    return { fits: bytes + FREE_SPACE_MARGIN <= free, free }
  }

  /**
   * Picks the name a top-level manifest name lands under: itself when free, else the first free `name (N)`
   * (before the extension of a file: `notes (1).txt`). Chosen once per transfer.
   */
  async #topName(top: string, isFile: boolean): Promise<string> {
    const chosen = this.#names.get(top)
    if (chosen !== undefined) return chosen
    const taken = new Set(this.#names.values())
    const dot = isFile ? top.lastIndexOf('.') : -1
    const [stem, ext] = dot > 0 ? [top.slice(0, dot), top.slice(dot)] : [top, '']
    for (let n = 0; ; n++) {
      const candidate = n === 0 ? top : `${stem} (${n})${ext}`
      if (!taken.has(candidate) && !(await exists(join(this.root, candidate)))) {
        this.#names.set(top, candidate)
        return candidate
      }
    }
  }

  /** The final path of a manifest path, its top-level name resolved. */
  async finalPath(path: string, isFile: boolean): Promise<string> {
    const [top, ...rest] = path.split('/')
    const name = await this.#topName(top!, isFile && rest.length === 0)
    return join(this.root, name, ...rest)
  }

  /** Creates the folders of `entry` (itself, for a folder) under the receive folder, following no link. */
  async makeFolders(entry: ManifestEntry): Promise<string> {
    const target = await this.finalPath(entry.path, entry.kind === 'file')
    const relative = target.slice(this.root.length + 1).split(sep)
    const folders = entry.kind === 'dir' ? relative : relative.slice(0, -1)
    let at = this.root
    for (const segment of folders) {
      at = join(at, segment)
      // Checked once per transfer: a drop of 10,000 files in one folder checks that folder once.
      if (this.#checked.has(at)) continue
      try {
        await mkdir(at, { mode: 0o755 })
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      await this.#checkFolder(at, target)
      this.#checked.add(at)
    }
    if (entry.kind === 'dir') await applyTimes(at, entry)
    return target
  }

  /**
   * Moves a verified temporary file to its final name. The hard link fails if the name was taken meanwhile; the
   * name then gets the next free suffix (top level) or the transfer fails (inside a folder it made).
   */
  async place(index: number, entry: Extract<ManifestEntry, { kind: 'file' }>): Promise<string> {
    const target = await this.makeFolders(entry)
    const partial = this.partialPath(index)
    await applyTimes(partial, entry, entry.mode & 0o666)
    try {
      await link(partial, target)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      throw new UnsafeReceivePathError(target, 'a file of that name appeared while the drop was running')
    }
    await unlink(partial)
    return target
  }

  /**
   * The hash of entry `index` when it is already under its final name and its temporary file is gone (or is the
   * same file): placed just before a restart that the record did not see. Undefined when it still has to come.
   */
  async placed(
    index: number,
    entry: Extract<ManifestEntry, { kind: 'file' }>,
  ): Promise<Uint8Array | undefined> {
    const target = await this.finalPath(entry.path, true)
    const [final, partial] = await Promise.all([
      lstat(target).catch(() => undefined),
      lstat(this.partialPath(index)).catch(() => undefined),
    ])
    if (final === undefined || !final.isFile() || final.size !== entry.size) return undefined
    if (partial !== undefined && (partial.ino !== final.ino || partial.dev !== final.dev)) return undefined
    if (partial !== undefined) await unlink(this.partialPath(index))
    const handle = await open(target, constants.O_RDONLY | constants.O_NOFOLLOW)
    try {
      return await hashFile(handle, entry.size)
    } finally {
      await handle.close()
    }
  }

  /** Removes this transfer's temporary files (finished, cancelled or failed). */
  async removePartial(): Promise<void> {
    await rm(this.partialDir, { recursive: true, force: true })
    // The shared temporary folder goes with the last transfer that used it.
    await rmdir(join(this.root, PARTIAL_DIR)).catch(() => {})
  }

  /** `path` must be a real folder (not a link) inside the receive folder. */
  async #checkFolder(path: string, target: string): Promise<void> {
    const stats = await lstat(path)
    if (stats.isSymbolicLink()) throw new UnsafeReceivePathError(target, `${path} is a symbolic link`)
    if (!stats.isDirectory()) throw new UnsafeReceivePathError(target, `${path} is not a folder`)
    if (path === this.root) return
    const real = await realpath(path)
    const root = await realpath(this.root)
    if (!real.startsWith(root + sep))
      throw new UnsafeReceivePathError(target, `${path} leads outside ${root}`)
  }
}

/** Opens entry `index`'s temporary file for writing at `offset`, cutting off anything past it (not verified). */
export async function openPartial(path: string, offset: number) {
  const handle = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600)
  await handle.truncate(offset)
  return handle
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

async function applyTimes(path: string, entry: ManifestEntry, mode?: number): Promise<void> {
  const seconds = entry.mtimeMs / 1000
  if (mode === undefined) return utimes(path, seconds, seconds)
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW)
  try {
    await handle.chmod(mode)
    await handle.utimes(seconds, seconds)
  } finally {
    await handle.close()
  }
}
