// The one CBOR encoder of sdnet: plain RFC 8949 (no records, no tag 64 on byte strings; see PLATFORM.md), so that
// other decoders read our frames and the crypto cores' transcripts hash the same bytes on every device. Also the
// bounded encode and decode that the frame codecs share.
import { Encoder } from 'cbor-x'
import type { FrameProtocol } from './errors.ts'
import { MalformedFrameError, OversizedFrameError } from './errors.ts'

export const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false })

/** Encodes a frame the caller has checked; throws OversizedFrameError when it comes out over `limit` bytes. */
export function encodeChecked(value: unknown, limit: number): Uint8Array {
  const bytes: Uint8Array = cbor.encode(value)
  if (bytes.byteLength > limit) throw new OversizedFrameError(bytes.byteLength, limit)
  return bytes
}

/** Decodes one CBOR item of at most `limit` bytes; throws OversizedFrameError, or MalformedFrameError if not CBOR. */
export function decodeChecked(bytes: Uint8Array, limit: number, protocol?: FrameProtocol): unknown {
  if (bytes.byteLength > limit) throw new OversizedFrameError(bytes.byteLength, limit)
  try {
    return cbor.decode(bytes)
  } catch (err) {
    throw new MalformedFrameError(`not CBOR: ${(err as Error).message}`, protocol)
  }
}
