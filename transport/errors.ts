// Errors of the transport layer. Each has a literal `name` so callers tell them apart without `instanceof`
// (they may cross module copies), and a message written for the person reading the log or the CLI.

/** A frame that cannot be accepted. The stream it came from should be answered or closed, not trusted. */
export abstract class FrameError extends Error {}

/** Which protocol a frame belongs to, as its errors' messages name it. */
export type FrameProtocol = 'pairing' | 'file drop'

/** The bytes are not a valid frame: not CBOR, not a map, a field missing or of the wrong type or size. */
export class MalformedFrameError extends FrameError {
  override readonly name = 'MalformedFrameError'
  constructor(problem: string, protocol: FrameProtocol = 'pairing') {
    super(`Malformed ${protocol} message: ${problem}. The device that sent it may run an incompatible sdnet.`)
  }
}

/** The frame, or its announced length, is over the protocol's cap. */
export class OversizedFrameError extends FrameError {
  override readonly name = 'OversizedFrameError'
  /** `bytes` is undefined when only the length prefix was seen (lpStream does not expose the value). */
  constructor(bytes: number | undefined, limit: number) {
    const size = bytes === undefined ? '' : ` of ${bytes} bytes`
    super(`A frame${size} is over the limit of ${limit} bytes and was dropped.`)
  }
}

/** A well-formed frame whose `t` this version does not know. */
export class UnknownFrameError extends FrameError {
  override readonly name = 'UnknownFrameError'
  constructor(type: string, protocol: FrameProtocol = 'pairing') {
    // The type came off the wire: quote and shorten it before it reaches a terminal or a log.
    super(
      `Unknown ${protocol} message type ${quoted(type, 40)}. The other device may run a newer sdnet: update both.`,
    )
  }
}

/** A frame whose `v` is not 1. */
export class UnsupportedVersionError extends FrameError {
  override readonly name = 'UnsupportedVersionError'
  constructor(version: number, protocol: FrameProtocol = 'pairing') {
    const name = protocol === 'pairing' ? 'Pairing' : 'File drop'
    super(
      `${name} protocol version ${version} is not supported (this sdnet speaks version 1). Update both devices.`,
    )
  }
}

/** No frame arrived before the read deadline. The channel is still usable. */
export class ReadTimeoutError extends Error {
  override readonly name = 'ReadTimeoutError'
  constructor(timeoutMs: number) {
    super(
      `The other device sent nothing for ${timeoutMs} ms. Check that it is still running and on this network.`,
    )
  }
}

/** The stream ended (closed by the other side, reset, or the connection dropped). */
export class StreamClosedError extends Error {
  override readonly name = 'StreamClosedError'
  constructor(cause?: unknown) {
    super('The connection to the other device closed during pairing. Try again.', { cause })
  }
}

/** The pairing stream could not be opened within its deadline. */
export class DialTimeoutError extends Error {
  override readonly name = 'DialTimeoutError'
  constructor(timeoutMs: number) {
    super(`Could not reach the other device within ${timeoutMs} ms. Check that it is on the same network.`)
  }
}

/** The pairing stream could not be opened: no route, connection refused, protocol not supported. */
export class DialFailedError extends Error {
  override readonly name = 'DialFailedError'
  constructor(target: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause)
    super(`Could not open a pairing connection to ${target}: ${reason}`, { cause })
  }
}

/** The remote peer id does not carry an Ed25519 key, which the pairing transcript requires. */
export class UnsupportedPeerKeyError extends Error {
  override readonly name = 'UnsupportedPeerKeyError'
  constructor(peerId: string, keyType: string) {
    super(`Device ${peerId} uses a ${keyType} key; sdnet pairs only with Ed25519 keys.`)
  }
}

/** mDNS was asked to stay on an interface address that no local interface has. */
export class MdnsInterfaceNotFoundError extends Error {
  override readonly name = 'MdnsInterfaceNotFoundError'
  constructor(address: string, available: string[]) {
    super(
      `No network interface has the IPv4 address ${address}, so mDNS cannot be confined to it. ` +
        `Use one of: ${available.join(', ') || '(none)'}.`,
    )
  }
}

/** The link to a paired device ended: closed by either side, reset, or its connection dropped. */
export class LinkClosedError extends Error {
  override readonly name = 'LinkClosedError'
  constructor(cause?: unknown) {
    super(
      'The link to the paired device closed. Check that the device is still running and on this network.',
      {
        cause,
      },
    )
  }
}

/** A link to a paired device could not be opened: no route, connection refused, protocol not supported. */
export class LinkOpenFailedError extends Error {
  override readonly name = 'LinkOpenFailedError'
  constructor(target: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause)
    super(`Could not open a link to the paired device at ${target}: ${reason}`, { cause })
  }
}

/** What is wrong with a file drop's manifest, for code that reacts to it (tests, the reason of a refusal). */
export type ManifestProblem =
  | 'NotAManifest'
  | 'BadEntry'
  | 'SpecialFile'
  | 'AbsolutePath'
  | 'DotSegment'
  | 'EmptySegment'
  | 'Backslash'
  | 'BadCharacter'
  | 'NotNormalized'
  | 'NameTooLong'
  | 'PathTooLong'
  | 'ReservedName'
  | 'TrailingDotOrSpace'
  | 'ForbiddenCharacter'
  | 'Duplicate'
  | 'FolderNotListed'
  | 'NestedUnderFile'
  | 'BadSize'
  | 'TotalsMismatch'
  | 'IncompleteManifest'
  | 'ManifestHashMismatch'

/** What a file drop is over, of the receiving device's limits. */
export type ManifestLimit = 'TooManyEntries' | 'TooManyBytes' | 'ManifestTooLarge'

/**
 * A file drop's manifest that is refused before any byte is written: a path that could leave the receive folder or
 * that the receiving file system cannot hold, something that is not a file or a folder, duplicates, sizes that do
 * not add up. `entry` is the index of the entry at fault in the manifest, when one is.
 */
export class UnsafeManifestError extends Error {
  override readonly name = 'UnsafeManifestError'
  readonly problem: ManifestProblem
  readonly entry: number | undefined

  /** `subject` names what is wrong (see `describeEntry`), `advice` says what to do about it. */
  constructor(problem: ManifestProblem, subject: string, advice: string, entry?: number) {
    super(`File drop refused: ${subject}. ${advice}`)
    this.problem = problem
    this.entry = entry
  }
}

/** A file drop that is larger than the receiving device accepts: too many entries, too many bytes, too long a manifest. */
export class ManifestLimitError extends Error {
  override readonly name = 'ManifestLimitError'
  readonly limit: ManifestLimit

  constructor(limit: ManifestLimit, what: string, value: number, max: number) {
    super(
      `File drop refused: it has ${value.toLocaleString('en-US')} ${what}, over the receiving device's limit of ` +
        `${max.toLocaleString('en-US')}. Send fewer files at a time, or raise the receiver's drop limits.`,
    )
    this.limit = limit
  }
}

/** `entry N "path"` for a message: 1-based, the path quoted, shortened and with anything unprintable escaped. */
export function describeEntry(index: number, path: string): string {
  return `entry ${index + 1} ${quoted(path, 120)}`
}

// Text from the wire, quoted for a terminal or a log: JSON escapes C0 controls and lone surrogates; C1 controls,
// line separators and bidirectional overrides (which can make a name read as another) are escaped too.
function quoted(text: string, max: number): string {
  const short = text.length > max ? `${text.slice(0, max / 2)}...${text.slice(-max / 2)}` : text
  return JSON.stringify(short).replace(
    /[\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
}
