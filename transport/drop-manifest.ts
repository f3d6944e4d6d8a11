// The manifest of a file drop (ARCHITECTURE.md "File drop `/sdnet/drop/1.0.0`: frames and manifest"): what a
// transfer holds, as relative paths with sizes, modes and times. Pure: no file system, no clock.
//
// The receiver writes nothing before `validateManifest` accepted the whole manifest: every path must stay inside the
// receive folder and be writable on common file systems, only files and folders travel, every folder is listed
// before what is in it, no two entries may land on one name (also on a case-insensitive receiver), and the sizes
// must add up to what the offer announced and fit the receiver's limits. Each refusal is an UnsafeManifestError or ManifestLimitError naming the entry and saying
// what to do. The sender runs the same checks on the manifest it builds (`buildManifest`), so a name that cannot
// travel is reported where it can be renamed.

import { createHash } from 'node:crypto'
import { cbor } from './cbor.ts'
import type { ManifestPartMessage, OfferMessage } from './drop-codec.ts'
import {
  equalBytes,
  HASH_BYTES,
  MAX_MANIFEST_BYTES,
  MAX_MANIFEST_ENTRIES,
  MAX_MANIFEST_PART_BYTES,
} from './drop-codec.ts'
import type { ManifestProblem } from './errors.ts'
import { describeEntry, ManifestLimitError, UnsafeManifestError } from './errors.ts'

interface EntryCommon {
  /** Relative, '/'-separated, Unicode NFC: `photos/2024/beach.jpg`. */
  path: string
  /** Permission bits only (`mode & 0o777`). */
  mode: number
  /** Last modification, integer milliseconds since the epoch. */
  mtimeMs: number
}

export type ManifestEntry =
  | (EntryCommon & { kind: 'file'; size: number; hash?: Uint8Array })
  | (EntryCommon & { kind: 'dir' })

export interface Manifest {
  entries: ManifestEntry[]
}

export interface ManifestTotals {
  entries: number
  files: number
  dirs: number
  /** The files' sizes added up. */
  bytes: number
}

/** What a receiver accepts. Defaults: DEFAULT_MANIFEST_LIMITS. */
export interface ManifestLimits {
  /** Files and folders together. */
  maxEntries: number
  /** The files' sizes added up. */
  maxBytes: number
  /** The encoded manifest's length. */
  maxManifestBytes: number
  /**
   * Also refuse names that Windows (NTFS, exFAT, FAT) cannot hold: reserved device names such as `CON` or `com1.txt`,
   * a trailing dot or space, and the characters `< > : " | ? *`. On by default: a receive folder may be on such a
   * file system (a USB drive), and a name it cannot hold would fail mid-transfer.
   */
  portableNames: boolean
}

export const DEFAULT_MANIFEST_LIMITS: Readonly<ManifestLimits> = {
  maxEntries: 100_000,
  maxBytes: 2 ** 40, // 1 TiB
  // ~170 bytes per entry at 100,000 entries: a 100-character path with its fields.
  maxManifestBytes: 16 * 1024 * 1024,
  portableNames: true,
}

/** The most the protocol carries, and only the checks that hold everywhere: what a sender checks its manifest by. */
export const PROTOCOL_MANIFEST_LIMITS: Readonly<ManifestLimits> = {
  maxEntries: MAX_MANIFEST_ENTRIES,
  maxBytes: Number.MAX_SAFE_INTEGER,
  maxManifestBytes: MAX_MANIFEST_BYTES,
  portableNames: false,
}

// Linux's NAME_MAX and PATH_MAX, in UTF-8 bytes.
const MAX_NAME_BYTES = 255
const MAX_PATH_BYTES = 4096

export interface ValidManifest {
  /** A fresh copy holding only the known fields. */
  manifest: Manifest
  totals: ManifestTotals
}

export interface ValidateOptions {
  limits?: Partial<ManifestLimits>
  /** What the offer announced: the manifest's files and bytes must add up to it. */
  declared?: { files: number; bytes: number }
}

/**
 * Checks a manifest, decoded from the wire or built locally, and returns a clean copy with its totals; throws
 * UnsafeManifestError or ManifestLimitError naming the first entry at fault and what to do about it.
 *
 * @example
 * const { manifest, totals } = validateManifest(decoded, { declared: offer, limits: { maxBytes: freeBytes } })
 */
export function validateManifest(value: unknown, opts: ValidateOptions = {}): ValidManifest {
  const limits = { ...DEFAULT_MANIFEST_LIMITS, ...opts.limits }
  if (!isPlainObject(value) || !Array.isArray(value.entries) || Object.keys(value).length !== 1) {
    throw new UnsafeManifestError(
      'NotAManifest',
      'the manifest is not a map holding just a list of entries',
      'The sending device may run an incompatible sdnet: update both.',
    )
  }
  const list: unknown[] = value.entries
  if (list.length === 0) {
    throw new UnsafeManifestError(
      'NotAManifest',
      'the manifest lists nothing',
      'Send at least one file or folder.',
    )
  }
  if (list.length > limits.maxEntries) {
    throw new ManifestLimitError('TooManyEntries', 'files and folders', list.length, limits.maxEntries)
  }
  const listed = new ListedPaths()
  const entries: ManifestEntry[] = []
  const totals: ManifestTotals = { entries: list.length, files: 0, dirs: 0, bytes: 0 }
  for (let i = 0; i < list.length; i++) {
    const entry = readEntry(list[i], i)
    checkPath(entry.path, i, limits.portableNames)
    listed.add(entry, i)
    entries.push(entry)
    if (entry.kind === 'dir') {
      totals.dirs++
      continue
    }
    totals.files++
    totals.bytes += entry.size
    if (totals.bytes > limits.maxBytes) {
      throw new ManifestLimitError('TooManyBytes', 'bytes in files', totals.bytes, limits.maxBytes)
    }
  }
  const declared = opts.declared
  if (declared !== undefined && (declared.files !== totals.files || declared.bytes !== totals.bytes)) {
    throw new UnsafeManifestError(
      'TotalsMismatch',
      `the manifest lists ${totals.files} files of ${totals.bytes} bytes in all, but the offer announced ` +
        `${declared.files} files of ${declared.bytes} bytes`,
      'The sending device may run an incompatible or faulty sdnet: update both.',
    )
  }
  return { manifest: { entries }, totals }
}

// --- entries

const ENTRY_FIELDS = new Set(['path', 'kind', 'size', 'mode', 'mtimeMs', 'hash'])

function readEntry(value: unknown, index: number): ManifestEntry {
  const bad = (subject: string, problem: ManifestProblem = 'BadEntry'): UnsafeManifestError =>
    new UnsafeManifestError(
      problem,
      subject,
      'The sending device may run an incompatible or faulty sdnet: update both.',
      index,
    )
  if (!isPlainObject(value)) throw bad(`entry ${index + 1} is not a map`)
  if (typeof value.path !== 'string') throw bad(`entry ${index + 1} has no text "path"`)
  const path = value.path
  const at = describeEntry(index, path)
  for (const key of Object.keys(value)) {
    if (!ENTRY_FIELDS.has(key)) throw bad(`${at} has an unexpected field ${JSON.stringify(key.slice(0, 40))}`)
  }
  const { kind, hash } = value
  const [size, mode, mtimeMs] = [value.size, value.mode, value.mtimeMs].map(integer)
  if (kind !== 'file' && kind !== 'dir') {
    const what = typeof kind === 'string' ? JSON.stringify(kind.slice(0, 40)) : 'of no kind'
    throw new UnsafeManifestError(
      'SpecialFile',
      `${at} is ${what}, not a file or a folder`,
      'Only files and folders can be sent: send what a link points to, not the link.',
      index,
    )
  }
  if (mode === undefined || mode < 0 || mode > 0o777) {
    throw bad(`${at} has a "mode" that is not permission bits (0 to 0o777)`)
  }
  if (mtimeMs === undefined) {
    throw bad(`${at} has an "mtimeMs" that is not a whole number of milliseconds`)
  }
  if (kind === 'dir') {
    if (value.size !== undefined || hash !== undefined) throw bad(`${at} is a folder with a "size" or "hash"`)
    return { path, kind, mode, mtimeMs }
  }
  if (size === undefined || size < 0) {
    throw bad(`${at} has a "size" that is not a whole number of bytes from 0 to 2^53 - 1`, 'BadSize')
  }
  if (hash === undefined) return { path, kind, size, mode, mtimeMs }
  if (!(hash instanceof Uint8Array) || hash.byteLength !== HASH_BYTES) {
    throw bad(`${at} has a "hash" that is not ${HASH_BYTES} bytes`)
  }
  return { path, kind, size, mode, mtimeMs, hash: new Uint8Array(hash) }
}

// A safe integer, or undefined. Other CBOR encoders write integers past 2^32 as such (cbor-x writes floats), which
// cbor-x decodes as bigints.
function integer(value: unknown): number | undefined {
  if (typeof value === 'bigint') {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : undefined
  }
  return typeof value === 'number' && Number.isSafeInteger(value) ? value : undefined
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype
}

// --- paths

const FIX_SENDER = 'The sending device should never list it: it may run a faulty or hostile sdnet.'
const RENAME = 'Rename it on the sending device and send it again.'

// C0 and C1 controls (NUL and escape sequences among them), DEL, and the bidirectional embeddings, overrides and
// isolates, which make a name read as another (`photo<U+202E>gpj.exe`).
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const BAD_CHARACTER = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/
// Windows: device names, with or without an extension and trailing spaces; reserved characters.
const RESERVED_NAME = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$) *(\.|$)/i
const FORBIDDEN_CHARACTER = /[<>:"|?*]/
const DRIVE = /^[A-Za-z]:[\\/]/

function checkPath(path: string, index: number, portable: boolean): void {
  const refuse = (problem: ManifestProblem, what: string, advice: string): never => {
    throw new UnsafeManifestError(problem, `${describeEntry(index, path)} ${what}`, advice, index)
  }
  if (path.length === 0) refuse('EmptySegment', 'has an empty path', FIX_SENDER)
  const bytes = Buffer.byteLength(path)
  if (bytes > MAX_PATH_BYTES) {
    refuse('PathTooLong', `is ${bytes} bytes long, over ${MAX_PATH_BYTES}`, 'Move it to a shallower folder.')
  }
  if (path.startsWith('/') || DRIVE.test(path)) {
    refuse('AbsolutePath', 'is an absolute path, which could point outside the receive folder', FIX_SENDER)
  }
  if (path.includes('\\')) {
    refuse('Backslash', 'has a backslash, which Windows reads as a folder separator', RENAME)
  }
  const bad = BAD_CHARACTER.exec(path)
  if (bad !== null || !path.isWellFormed()) {
    const code = bad === null ? 'a lone surrogate' : `U+${bad[0].charCodeAt(0).toString(16).padStart(4, '0')}`
    refuse('BadCharacter', `has a control character (${code})`, RENAME)
  }
  if (path.normalize('NFC') !== path) {
    refuse('NotNormalized', 'is not in Unicode NFC, as the protocol requires', FIX_SENDER)
  }
  for (const name of path.split('/')) {
    if (name === '') refuse('EmptySegment', 'has an empty name between slashes', FIX_SENDER)
    if (name === '.' || name === '..') {
      refuse(
        'DotSegment',
        `has a "${name}" segment, which could point outside the receive folder`,
        FIX_SENDER,
      )
    }
    const nameBytes = Buffer.byteLength(name)
    if (nameBytes > MAX_NAME_BYTES) {
      refuse(
        'NameTooLong',
        `has a name of ${nameBytes} bytes, over ${MAX_NAME_BYTES}`,
        'Give it a shorter name.',
      )
    }
    if (!portable) continue
    if (RESERVED_NAME.test(name)) {
      refuse(
        'ReservedName',
        `has the name ${JSON.stringify(name)}, which Windows reserves for a device`,
        RENAME,
      )
    }
    if (name.endsWith('.') || name.endsWith(' ')) {
      refuse('TrailingDotOrSpace', 'has a name ending in a dot or a space, which Windows drops', RENAME)
    }
    const forbidden = FORBIDDEN_CHARACTER.exec(name)
    if (forbidden !== null) {
      refuse('ForbiddenCharacter', `has a "${forbidden[0]}", which Windows does not allow in names`, RENAME)
    }
  }
}

// How a receiver that ignores case and Unicode normalisation (macOS, Windows) may see a path: the same key means
// the same file there. Lower case (with the final sigma as any other) folds at least what those file systems fold;
// a rare false match only refuses two names that differ by case alone.
function foldPath(path: string): string {
  return path.toLowerCase().replaceAll('ς', 'σ').normalize('NFC')
}

interface Listed {
  index: number
  path: string
  kind: 'file' | 'dir'
}

/**
 * The entries listed so far, by folded path. Each entry's folder must be listed before it (so the receiver creates
 * folders in order, and the check holds one record per entry whatever the paths' depth): one lookup for the folder
 * and one for the entry find, in time linear in the manifest's length, two entries that land on one name and an
 * entry under a file.
 */
class ListedPaths {
  readonly #byKey = new Map<string, Listed>()

  add(entry: ManifestEntry, index: number): void {
    const at = describeEntry(index, entry.path)
    const slash = entry.path.lastIndexOf('/')
    if (slash !== -1) {
      const folder = entry.path.slice(0, slash)
      const parent = this.#byKey.get(foldPath(folder))
      if (parent === undefined) {
        throw new UnsafeManifestError(
          'FolderNotListed',
          `${at} is in the folder ${JSON.stringify(folder.slice(0, 120))}, which is not listed before it`,
          FIX_SENDER,
          index,
        )
      }
      const other = describeEntry(parent.index, parent.path)
      if (parent.kind === 'file') {
        throw new UnsafeManifestError(
          'NestedUnderFile',
          `${at} is inside ${other}, which is a file`,
          FIX_SENDER,
          index,
        )
      }
      if (parent.path !== folder) this.#sameName(`${at}: its folder`, other, index)
    }
    const key = foldPath(entry.path)
    const listed = this.#byKey.get(key)
    if (listed !== undefined) {
      const other = describeEntry(listed.index, listed.path)
      if (listed.path === entry.path) {
        throw new UnsafeManifestError('Duplicate', `${at} is listed twice (${other})`, FIX_SENDER, index)
      }
      this.#sameName(at, other, index)
    }
    this.#byKey.set(key, { index, path: entry.path, kind: entry.kind })
  }

  #sameName(at: string, other: string, index: number): never {
    throw new UnsafeManifestError(
      'Duplicate',
      `${at} differs only in case or Unicode form from ${other}: on a receiver that ignores case (macOS, ` +
        'Windows) they would be one',
      RENAME,
      index,
    )
  }
}

// --- on the wire

/**
 * The manifest as CBOR, `{ entries: [{ path, kind, size?, mode, mtimeMs, hash? }] }`, after checking it as any
 * receiver would at most (PROTOCOL_MANIFEST_LIMITS, or `limits`); throws what validateManifest throws, or
 * ManifestLimitError when the encoding is over `maxManifestBytes`.
 */
export function encodeManifest(
  manifest: Manifest,
  limits: Partial<ManifestLimits> = PROTOCOL_MANIFEST_LIMITS,
): Uint8Array {
  return encodeValid(validateManifest(manifest, { limits }).manifest, limits)
}

function encodeValid(manifest: Manifest, limits: Partial<ManifestLimits>): Uint8Array {
  const encoded: Uint8Array = cbor.encode(manifest)
  // A plain Uint8Array (cbor-x hands out Buffers, whose `slice` does not copy).
  const bytes = new Uint8Array(encoded.buffer, encoded.byteOffset, encoded.byteLength)
  const max = Math.min(limits.maxManifestBytes ?? MAX_MANIFEST_BYTES, MAX_MANIFEST_BYTES)
  if (bytes.byteLength > max)
    throw new ManifestLimitError('ManifestTooLarge', 'bytes of manifest', bytes.byteLength, max)
  return bytes
}

/** Decodes and validates an encoded manifest; throws UnsafeManifestError or ManifestLimitError. */
export function decodeManifest(bytes: Uint8Array, opts: ValidateOptions = {}): ValidManifest {
  const max = Math.min(
    opts.limits?.maxManifestBytes ?? DEFAULT_MANIFEST_LIMITS.maxManifestBytes,
    MAX_MANIFEST_BYTES,
  )
  if (bytes.byteLength > max)
    throw new ManifestLimitError('ManifestTooLarge', 'bytes of manifest', bytes.byteLength, max)
  let value: unknown
  try {
    value = cbor.decode(bytes)
  } catch (err) {
    throw new UnsafeManifestError(
      'NotAManifest',
      `the manifest is not CBOR (${(err as Error).message})`,
      'The sending device may run an incompatible sdnet: update both.',
    )
  }
  return validateManifest(value, opts)
}

/** SHA-256 of the encoded manifest, as `offer.manifestHash` carries it. */
export function manifestHash(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest())
}

/**
 * The messages that offer `manifest`, to send in order over the link: the offer (with the manifest's first part),
 * then a `manifestPart` for each further MAX_MANIFEST_PART_BYTES. `transferId` (16 random bytes, hex) and `token`
 * (32 random bytes) come from the caller, which keeps them with the transfer. Throws what encodeManifest throws.
 */
export function offerMessages(init: {
  transferId: string
  token: Uint8Array
  manifest: Manifest
}): [OfferMessage, ...ManifestPartMessage[]] {
  const { manifest, totals } = validateManifest(init.manifest, { limits: PROTOCOL_MANIFEST_LIMITS })
  const bytes = encodeValid(manifest, PROTOCOL_MANIFEST_LIMITS)
  const { transferId, token } = init
  const offer: OfferMessage = {
    t: 'offer',
    v: 1,
    transferId,
    token,
    files: totals.files,
    bytes: totals.bytes,
    manifestBytes: bytes.byteLength,
    manifestHash: manifestHash(bytes),
    part: bytes.subarray(0, MAX_MANIFEST_PART_BYTES),
  }
  const parts: ManifestPartMessage[] = []
  for (let offset = MAX_MANIFEST_PART_BYTES; offset < bytes.byteLength; offset += MAX_MANIFEST_PART_BYTES) {
    parts.push({
      t: 'manifestPart',
      transferId,
      offset,
      part: bytes.subarray(offset, offset + MAX_MANIFEST_PART_BYTES),
    })
  }
  return [offer, ...parts]
}

/** Throws ManifestLimitError when what an offer announces is over `limits`: before its manifest is even complete. */
export function checkOfferLimits(offer: OfferMessage, limits: Partial<ManifestLimits> = {}): void {
  const { maxEntries, maxBytes, maxManifestBytes } = { ...DEFAULT_MANIFEST_LIMITS, ...limits }
  if (offer.files > maxEntries)
    throw new ManifestLimitError('TooManyEntries', 'files', offer.files, maxEntries)
  if (offer.bytes > maxBytes)
    throw new ManifestLimitError('TooManyBytes', 'bytes in files', offer.bytes, maxBytes)
  if (offer.manifestBytes > maxManifestBytes) {
    throw new ManifestLimitError(
      'ManifestTooLarge',
      'bytes of manifest',
      offer.manifestBytes,
      maxManifestBytes,
    )
  }
}

/**
 * The receiver's side of `offerMessages`: collects the manifest's parts as they arrive and, once all have, checks
 * its hash and validates it against the offer. Holds at most `offer.manifestBytes`, which the limits bound.
 *
 * @example
 * const assembly = new ManifestAssembly(offer, limits) // throws ManifestLimitError
 * // ... assembly.add(part) for each manifestPart of offer.transferId, then:
 * if (assembly.complete) startConsent(assembly.finish())
 */
export class ManifestAssembly {
  readonly offer: OfferMessage
  readonly #limits: Partial<ManifestLimits>
  readonly #bytes: Uint8Array
  #filled = 0

  constructor(offer: OfferMessage, limits: Partial<ManifestLimits> = {}) {
    checkOfferLimits(offer, limits)
    this.offer = offer
    this.#limits = limits
    this.#bytes = new Uint8Array(offer.manifestBytes)
    this.#append(0, offer.part)
  }

  /** Whether every byte of the manifest has arrived. */
  get complete(): boolean {
    return this.#filled === this.#bytes.byteLength
  }

  /** Adds the next part; throws UnsafeManifestError for a part of another transfer, out of order or past the end. */
  add(part: ManifestPartMessage): void {
    if (part.transferId !== this.offer.transferId) {
      throw this.#broken(`a part of transfer ${part.transferId} came for transfer ${this.offer.transferId}`)
    }
    this.#append(part.offset, part.part)
  }

  /** The validated manifest; throws UnsafeManifestError (incomplete, hash mismatch, invalid) or ManifestLimitError. */
  finish(): ValidManifest {
    if (!this.complete) {
      throw this.#broken(`only ${this.#filled} of the manifest's ${this.#bytes.byteLength} bytes arrived`)
    }
    if (!equalBytes(manifestHash(this.#bytes), this.offer.manifestHash)) {
      throw new UnsafeManifestError(
        'ManifestHashMismatch',
        'the manifest does not match the hash its offer announced',
        'The sending device may run a faulty sdnet: update both.',
      )
    }
    return decodeManifest(this.#bytes, { limits: this.#limits, declared: this.offer })
  }

  #append(offset: number, part: Uint8Array): void {
    if (offset !== this.#filled) throw this.#broken(`a part starts at byte ${offset}, not ${this.#filled}`)
    if (offset + part.byteLength > this.#bytes.byteLength) {
      throw this.#broken(`its parts run past the ${this.#bytes.byteLength} bytes the offer announced`)
    }
    this.#bytes.set(part, offset)
    this.#filled += part.byteLength
  }

  #broken(what: string): UnsafeManifestError {
    return new UnsafeManifestError('IncompleteManifest', `the manifest arrived broken: ${what}`, FIX_SENDER)
  }
}

// --- the sender's side

/** What the sender's folder walk found at one path: `lstat` (not `stat`: a link must show as one). */
export interface LocalStats {
  isFile(): boolean
  isDirectory(): boolean
  isSymbolicLink(): boolean
  size: number
  mode: number
  mtimeMs: number
}

/** One path of the walk, which lists every folder (a dropped folder itself too) as well as every file. */
export interface LocalEntry {
  /** Relative to the folder the dropped paths are in, '/'-separated: `holiday/beach.jpg` for a dropped `holiday/`. */
  path: string
  stats: LocalStats
}

export interface BuiltManifest extends ValidManifest {
  /** `sources[i]` is the walk's path of `manifest.entries[i]` (before NFC), to read the file from. */
  sources: string[]
  /** What the walk found that does not travel, for the sender to report. */
  skipped: Array<{ path: string; kind: 'symlink' | 'special' }>
}

/**
 * Builds the manifest of a folder walk that the caller did (the file system stays in actors/): files and folders
 * in path order (a folder before what is in it), paths in NFC, modes masked to permission bits, times in whole
 * milliseconds. Symbolic links, devices, sockets and pipes are skipped and listed. Then validates it, by
 * PROTOCOL_MANIFEST_LIMITS or `limits`, so a name that cannot travel is refused here, naming the entry.
 *
 * @example
 * const { manifest, sources, skipped } = buildManifest(await walk(paths))
 */
export function buildManifest(
  walk: Iterable<LocalEntry>,
  opts: { limits?: Partial<ManifestLimits> } = {},
): BuiltManifest {
  const found: Array<{ entry: ManifestEntry; source: string }> = []
  const skipped: BuiltManifest['skipped'] = []
  for (const { path: source, stats } of walk) {
    const path = source.normalize('NFC')
    const mode = stats.mode & 0o777
    const mtimeMs = Math.trunc(stats.mtimeMs)
    if (stats.isSymbolicLink()) skipped.push({ path: source, kind: 'symlink' })
    else if (stats.isFile())
      found.push({ entry: { path, kind: 'file', size: stats.size, mode, mtimeMs }, source })
    else if (stats.isDirectory()) found.push({ entry: { path, kind: 'dir', mode, mtimeMs }, source })
    else skipped.push({ path: source, kind: 'special' })
  }
  // A prefix sorts first, so every folder comes before what is in it.
  found.sort((a, b) => (a.entry.path < b.entry.path ? -1 : a.entry.path > b.entry.path ? 1 : 0))
  const valid = validateManifest(
    { entries: found.map((f) => f.entry) },
    { limits: opts.limits ?? PROTOCOL_MANIFEST_LIMITS },
  )
  return { ...valid, sources: found.map((f) => f.source), skipped }
}
