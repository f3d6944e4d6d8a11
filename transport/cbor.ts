// The one CBOR encoder of sdnet: plain RFC 8949 (no records, no tag 64 on byte strings; see PLATFORM.md), so that
// other decoders read our frames and the crypto cores' transcripts hash the same bytes on every device.
import { Encoder } from 'cbor-x'

export const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false })
