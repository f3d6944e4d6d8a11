// A file's drop hash (FileHasher, ARCHITECTURE.md "File drop") from the bytes on disk: the sender's verified part
// after a resume, the receiver's partial file after a restart, a whole file whose hash was not kept.
import type { FileHandle } from 'node:fs/promises'
import { CHUNK_BYTES, chunkHash, chunkLength, FileHasher } from '../../transport/drop-codec.ts'

/** Feeds `hasher` the hashes of the chunks of `handle` below `upTo` (a multiple of the chunk size, or `size`). */
export async function hashChunks(
  handle: FileHandle,
  size: number,
  upTo: number,
  hasher: FileHasher,
): Promise<void> {
  if (upTo <= 0) return
  const buffer = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, upTo))
  for (let at = 0; at < upTo; at += CHUNK_BYTES) {
    const length = chunkLength(size, at)
    const { bytesRead } = await handle.read(buffer, 0, length, at)
    if (bytesRead !== length) throw new Error(`the file is shorter than the ${upTo} bytes already verified`)
    hasher.add(chunkHash(buffer.subarray(0, length)))
  }
}

/** The whole file's drop hash. */
export async function hashFile(handle: FileHandle, size: number): Promise<Uint8Array> {
  const hasher = new FileHasher(size)
  await hashChunks(handle, size, size, hasher)
  return hasher.digest()
}
