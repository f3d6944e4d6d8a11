// Crash-safe file replacement: after a crash at any moment, the path holds either the complete old content or the
// complete new content, never a mix. The new content goes to a temp file in the same directory (rename is atomic
// only within one file system), is fsynced before the rename (or a crash could expose an empty file under the real
// name), and the directory is fsynced after it (or the rename itself could be lost).

import { randomBytes } from 'node:crypto'
import { open, rename, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

export type WriteStep = 'open' | 'write' | 'fsync' | 'close' | 'rename' | 'fsyncDir'

/**
 * Replaces `path` with `data` atomically. `mode` is applied exactly (not filtered by the umask). `afterStep` runs
 * after each step; tests make it throw to simulate a crash there. On failure the temp file is removed and the error
 * rethrown; once `rename` has happened the new content is in place even if a later step fails.
 *
 * @example await writeFileAtomic(join(dataDir, 'devices.json'), json, { mode: 0o600 })
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  opts: { mode?: number; afterStep?: (step: WriteStep) => void } = {},
): Promise<void> {
  const { mode, afterStep = () => {} } = opts
  const dir = dirname(path)
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  let renamed = false
  let file: Awaited<ReturnType<typeof open>> | undefined
  try {
    file = await open(temp, 'wx', mode ?? 0o666)
    if (mode !== undefined) await file.chmod(mode)
    afterStep('open')
    await file.writeFile(data)
    afterStep('write')
    await file.sync()
    afterStep('fsync')
    await file.close()
    file = undefined
    afterStep('close')
    await rename(temp, path)
    renamed = true
    afterStep('rename')
    const dirHandle = await open(dir, 'r')
    try {
      await dirHandle.sync()
    } finally {
      await dirHandle.close()
    }
    afterStep('fsyncDir')
  } catch (error) {
    await file?.close().catch(() => {})
    if (!renamed) await rm(temp, { force: true }).catch(() => {})
    throw error
  }
}
