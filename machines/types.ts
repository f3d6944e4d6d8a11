// Pure data shared by the machines and by the layers that feed them. No behaviour lives here.

/** A device as the pairing protocol carries it: `publicKey` is the 32-byte Ed25519 key of its libp2p peer id. */
export type DeviceInfo = { id: string; name: string; publicKey: Uint8Array }

/** The `code` of an `error` frame (ARCHITECTURE.md, "Pairing protocol"). */
export type ErrorCode =
  | 'UnknownSession'
  | 'SessionBusy'
  | 'WrongCode'
  | 'Rejected'
  | 'Expired'
  | 'Cancelled'
  | 'Timeout'
  | 'RateLimited'
  | 'ProtocolError'

/**
 * The codes a `peer.failed` event can carry once a session is bound to a peer. `UnknownSession` never gets here:
 * it is only an answer to a request, decoded as `peer.sessionUnknown`.
 */
export type PeerFailureCode = Exclude<ErrorCode, 'UnknownSession'>

/** Why a pairing session ended in `Failed`, from either side. */
export type FailureReason =
  | 'WrongCode'
  | 'Timeout'
  | 'PeerLost'
  | 'NotFound'
  | 'Rejected'
  | 'Expired'
  | 'Cancelled'
  | 'SessionBusy'
  | 'RateLimited'
  | 'ProtocolError'
