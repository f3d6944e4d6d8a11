// Errors of the transport layer. Each has a literal `name` so callers tell them apart without `instanceof`
// (they may cross module copies), and a message written for the person reading the log or the CLI.

/** A pairing frame that cannot be accepted. The stream it came from should be answered or closed, not trusted. */
export abstract class FrameError extends Error {}

/** The bytes are not a valid pairing frame: not CBOR, not a map, a field missing or of the wrong type or size. */
export class MalformedFrameError extends FrameError {
  override readonly name = 'MalformedFrameError'
  constructor(problem: string) {
    super(`Malformed pairing message: ${problem}. The device that sent it may run an incompatible sdnet.`)
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
  constructor(type: string) {
    // The type came off the wire: quote and shorten it before it reaches a terminal or a log.
    const shown = JSON.stringify(type.length > 40 ? `${type.slice(0, 40)}...` : type)
    super(`Unknown pairing message type ${shown}. The other device may run a newer sdnet: update both.`)
  }
}

/** A frame whose `v` is not 1. */
export class UnsupportedVersionError extends FrameError {
  override readonly name = 'UnsupportedVersionError'
  constructor(version: number) {
    super(
      `Pairing protocol version ${version} is not supported (this sdnet speaks version 1). Update both devices.`,
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
