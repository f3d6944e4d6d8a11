// Errors of the actors layer. Each class has a literal `name` (tell them apart by `.name`, as libp2p does) and a
// message written for the person at the keyboard: what was wrong and what to do about it.

export class SdnetError extends Error {
  override readonly name: string = 'SdnetError'
}

/** The pairing code typed by the user is not a valid 12-word code. Raised before any network traffic. */
export class InvalidCodeError extends SdnetError {
  override readonly name = 'InvalidCodeError' as const
  /** 1-based position of the first word that is not in the word list, when that is the problem. */
  readonly position?: number
  /** Word-list entries close to the mistyped word (empty when the problem is not a single word). */
  readonly suggestions: string[]

  constructor(message: string, details: { position?: number; suggestions?: string[] } = {}) {
    super(message)
    if (details.position !== undefined) this.position = details.position
    this.suggestions = details.suggestions ?? []
  }
}

export class IdentityExistsError extends SdnetError {
  override readonly name = 'IdentityExistsError' as const
  readonly path: string

  constructor(path: string) {
    super(
      `This data directory already has a device identity (${path}). ` +
        'Use it as it is, or choose another data directory for a new device.',
    )
    this.path = path
  }
}

export class IdentityNotFoundError extends SdnetError {
  override readonly name = 'IdentityNotFoundError' as const
  readonly path: string

  constructor(path: string) {
    super(
      `No device identity was found at ${path}. Create one first (or point sdnet at the right data directory).`,
    )
    this.path = path
  }
}

export class PasswordRequiredError extends SdnetError {
  override readonly name = 'PasswordRequiredError' as const
  readonly path: string

  constructor(path: string) {
    super(`This device's key (${path}) is protected by a password. Provide the password to unlock it.`)
    this.path = path
  }
}

export class WrongPasswordError extends SdnetError {
  override readonly name = 'WrongPasswordError' as const
  readonly path: string

  constructor(path: string) {
    super(
      `The password does not unlock this device's key (${path}). Try again, or if the password is lost, ` +
        'move that file away to start over with a new device identity (your devices will have to pair again).',
    )
    this.path = path
  }
}

export class CorruptIdentityError extends SdnetError {
  override readonly name = 'CorruptIdentityError' as const
  /** The identity file, when the damage was found in one (not for an identity built in memory). */
  readonly path: string | undefined

  constructor(path: string | undefined, detail: string, options?: ErrorOptions) {
    super(
      `${path === undefined ? "This device's identity" : `The device identity file ${path}`} is damaged (${detail}). ` +
        'sdnet will not overwrite it: restore it from a backup, or move it away to start over with a new device ' +
        'identity (your devices will have to pair again).',
      options,
    )
    this.path = path
  }
}

export class InvalidDeviceNameError extends SdnetError {
  override readonly name = 'InvalidDeviceNameError' as const

  constructor(maxLength: number) {
    super(
      `A device name must be 1 to ${maxLength} characters (it is shown on the devices you pair with). Choose another name.`,
    )
  }
}

export class CorruptTrustStoreError extends SdnetError {
  override readonly name = 'CorruptTrustStoreError' as const
  readonly path: string

  constructor(path: string, detail: string, options?: ErrorOptions) {
    super(
      `The list of paired devices ${path} is damaged (${detail}). sdnet will not overwrite it: restore it from a ` +
        'backup, or move it away and pair your devices again.',
      options,
    )
    this.path = path
  }
}

// --- The node, the daemon and its clients ---

export class NodeNotRunningError extends SdnetError {
  override readonly name = 'NodeNotRunningError' as const

  constructor() {
    super('The node is not running. Call start() first (or run `sdnet start`).')
  }
}

export class NodeStartError extends SdnetError {
  override readonly name = 'NodeStartError' as const

  constructor(cause: unknown) {
    const detail = cause instanceof Error ? cause.message : JSON.stringify(cause)
    super(
      `The node could not start: ${detail}. Check the listen addresses and that no other sdnet uses this data directory.`,
      {
        cause,
      },
    )
  }
}

export class UnknownSessionError extends SdnetError {
  override readonly name = 'UnknownSessionError' as const

  constructor(sessionId: string, live: { sessionId: string; state: string }[]) {
    const list =
      live.length === 0
        ? 'There are no sessions in progress.'
        : `Sessions in progress: ${live.map((s) => `${s.sessionId} (${s.state})`).join(', ')}.`
    super(`No pairing session "${sessionId}" is in progress (it may have ended already). ${list}`)
  }
}

export class UnknownTransferError extends SdnetError {
  override readonly name = 'UnknownTransferError' as const

  constructor(transferId: string, live: string[]) {
    const list =
      live.length === 0 ? 'There are no drops in progress.' : `Drops in progress: ${live.join(', ')}.`
    super(`No drop "${transferId}" is in progress here (it may have ended already). ${list}`)
  }
}

export class SessionNotWaitingError extends SdnetError {
  override readonly name = 'SessionNotWaitingError' as const

  constructor(sessionId: string, state: string) {
    super(
      `Pairing session ${sessionId} is not waiting for your answer (it is ${state}). Only a session that shows a ` +
        'pairing request can be accepted or rejected; see `sdnet pair list`.',
    )
  }
}

export class BadRequestError extends SdnetError {
  override readonly name = 'BadRequestError' as const

  constructor(detail: string) {
    super(`The daemon refused the request: ${detail}.`)
  }
}

export class DaemonRunningError extends SdnetError {
  override readonly name = 'DaemonRunningError' as const

  constructor(socket: string) {
    super(
      `A daemon is already running for this data directory (${socket}). Use it, or stop it with \`sdnet stop\`.`,
    )
  }
}

export class DaemonUnavailableError extends SdnetError {
  override readonly name = 'DaemonUnavailableError' as const
}

export class DaemonStartError extends SdnetError {
  override readonly name = 'DaemonStartError' as const
}

/** An error the daemon answered with; `remoteName` is the name of the error class on the daemon's side. */
export class DaemonError extends SdnetError {
  override readonly name = 'DaemonError' as const
  readonly remoteName: string

  constructor(remoteName: string, message: string) {
    super(message)
    this.remoteName = remoteName
  }
}

// --- Paired devices and messaging ---

export class UnknownDeviceError extends SdnetError {
  override readonly name = 'UnknownDeviceError' as const

  constructor(query: string, paired: string[]) {
    super(
      `No paired device matches "${query}". ` +
        (paired.length === 0
          ? 'No device is paired yet: pair one with `sdnet pair generate`.'
          : `Name one by id, id prefix (4+ characters) or name: ${paired.join(', ')}.`),
    )
  }
}

export class AmbiguousDeviceError extends SdnetError {
  override readonly name = 'AmbiguousDeviceError' as const

  constructor(query: string, candidates: string[]) {
    super(
      `"${query}" matches ${candidates.length} paired devices: ${candidates.join(', ')}. Use a longer id prefix.`,
    )
  }
}

export class DeviceNotConnectedError extends SdnetError {
  override readonly name = 'DeviceNotConnectedError' as const

  constructor(name: string, state: string) {
    super(
      `${name} is not connected right now (${state}). sdnet reconnects by itself when the device is reachable; ` +
        'check `sdnet devices` and try again.',
    )
  }
}

export class InvalidProtocolNameError extends SdnetError {
  override readonly name = 'InvalidProtocolNameError' as const

  constructor(protocol: string) {
    super(
      `"${protocol.slice(0, 80)}" is not a protocol name: use 1 to 64 of A-Z a-z 0-9 . _ / - (for example chat/1).`,
    )
  }
}

export class MessageTooLargeError extends SdnetError {
  override readonly name = 'MessageTooLargeError' as const

  constructor(size: number, limit: number) {
    super(
      `The message is ${size} bytes; one message carries at most ${limit} bytes. Split it, or send a file.`,
    )
  }
}

export class RequestTimeoutError extends SdnetError {
  override readonly name = 'RequestTimeoutError' as const

  constructor(device: string, what: string, ms: number) {
    super(`${device} did not answer ${what} within ${ms} ms. It may be busy or the network slow; try again.`)
  }
}

/** The peer answered a request with an error (`UnknownProtocol`, `HandlerFailed`, `Timeout`, `TooLarge`). */
export class RemoteError extends SdnetError {
  override readonly name = 'RemoteError' as const
  readonly code: string

  constructor(device: string, code: string, message: string) {
    super(
      code === 'UnknownProtocol'
        ? `${device} has no handler for that protocol (${message}). Start \`sdnet listen <protocol>\` there, or check the name.`
        : `${device} answered ${code}: ${message}`,
    )
    this.code = code
  }
}

/** A dropped path that does not exist or cannot be read. */
export class DropPathError extends SdnetError {
  override readonly name = 'DropPathError' as const
  constructor(path: string, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException).code
    const why =
      code === 'ENOENT' ? 'it does not exist' : code === 'EACCES' ? 'permission denied' : String(cause)
    super(`Cannot send "${path}": ${why}. Check the path and try again.`)
  }
}

/** A folder on the way to a received file was a symbolic link or not a folder: the drop stops there. */
export class UnsafeReceivePathError extends SdnetError {
  override readonly name = 'UnsafeReceivePathError' as const
  constructor(path: string, what: string) {
    super(
      `Refused to write "${path}": ${what}. Nothing was written outside the receive folder; remove it and retry.`,
    )
  }
}
