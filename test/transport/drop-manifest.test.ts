// The file drop manifest: every way a hostile or careless sender can list a path, a kind or a size that must not
// be written is refused by validateManifest, naming the entry; offers reassemble from their parts; and a folder
// walk becomes a manifest that the same checks accept.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { cbor } from '../../transport/cbor.ts'
import type { OfferMessage } from '../../transport/drop-codec.ts'
import { decodeDropMessage, encodeDropMessage, MAX_MANIFEST_PART_BYTES } from '../../transport/drop-codec.ts'
import type { LocalEntry, LocalStats, ManifestEntry, ManifestLimits } from '../../transport/drop-manifest.ts'
import {
  buildManifest,
  checkOfferLimits,
  DEFAULT_MANIFEST_LIMITS,
  decodeManifest,
  encodeManifest,
  ManifestAssembly,
  offerMessages,
  validateManifest,
} from '../../transport/drop-manifest.ts'
import type { ManifestLimit, ManifestProblem } from '../../transport/errors.ts'

const file = (path: string, size = 10): ManifestEntry => ({
  path,
  kind: 'file',
  size,
  mode: 0o644,
  mtimeMs: 1e12,
})
const dir = (path: string): ManifestEntry => ({ path, kind: 'dir', mode: 0o755, mtimeMs: 1e12 })

const transferId = 'fedcba9876543210fedcba9876543210'
const token = new Uint8Array(randomBytes(32))

// A raw entry as a hostile sender may write it: any fields, any values.
type RawEntry = Record<string, unknown>
const raw = (path: unknown, fields: RawEntry = {}): RawEntry => ({
  path,
  kind: 'file',
  size: 1,
  mode: 0o644,
  mtimeMs: 0,
  ...fields,
})

function assertRefused(
  entries: unknown[],
  problem: ManifestProblem,
  opts: { entry?: number; mentions?: string | RegExp; limits?: Partial<ManifestLimits> } = {},
): void {
  assert.throws(
    () => validateManifest({ entries }, { limits: opts.limits }),
    (err: unknown) => {
      assert.ok(err instanceof Error)
      assert.equal(err.name, 'UnsafeManifestError', err.message)
      const { problem: got, entry } = err as Error & { problem: string; entry: number | undefined }
      assert.equal(got, problem, err.message)
      if (opts.entry !== undefined) assert.equal(entry, opts.entry, err.message)
      assert.match(err.message, /^File drop refused: /)
      if (opts.mentions !== undefined) assert.match(err.message, new RegExp(opts.mentions))
      // Whatever the sender wrote, the message is safe to print.
      // biome-ignore lint/suspicious/noControlCharactersInRegex: what must not be there
      assert.doesNotMatch(err.message, /[\u0000-\u001f\u007f-\u009f\u202a-\u202e]/)
      return true
    },
  )
}

function assertOverLimit(action: () => unknown, limit: ManifestLimit): void {
  assert.throws(action, (err: unknown) => {
    assert.ok(err instanceof Error)
    assert.equal(err.name, 'ManifestLimitError', err.message)
    assert.equal((err as Error & { limit: string }).limit, limit)
    assert.match(err.message, /limit of/)
    return true
  })
}

describe('validateManifest accepts', () => {
  it('a tree of folders, files, empty files, empty folders and non-ASCII names, with its totals', () => {
    const entries = [
      dir('Fotos'),
      dir('Fotos/Sommer 2024'),
      file('Fotos/Sommer 2024/Strand.jpg', 3_000_000),
      file('Fotos/Sommer 2024/leer.txt', 0),
      dir('Fotos/leer'),
      dir('Noten'),
      file('Noten/Für Elise – Beethoven.pdf', 512),
      dir('日本語'),
      file('日本語/ファイル.txt', 7),
      file('emoji 🎉.txt', 1),
      file('.hidden', 2),
      { ...file('hashed.bin', 4), hash: new Uint8Array(32) },
    ]
    const { manifest, totals } = validateManifest({ entries })
    assert.deepEqual(manifest, { entries })
    assert.deepEqual(totals, { entries: 12, files: 7, dirs: 5, bytes: 3_000_000 + 512 + 7 + 1 + 2 + 4 })
  })

  it('names Windows cannot hold, when the receiver does not ask for portable names', () => {
    const entries = [file('CON'), file('a:b'), file('what?.txt'), file('trailing.'), file('space ')]
    validateManifest({ entries }, { limits: { portableNames: false } })
  })

  it('names that look reserved but are not', () => {
    validateManifest({ entries: [file('CONSOLE.txt'), file('com10'), file('nul-thing'), file('lpt')] })
  })

  it('sizes that add up to what the offer declared', () => {
    validateManifest(
      { entries: [file('a', 3), file('b', 4), dir('c')] },
      { declared: { files: 2, bytes: 7 } },
    )
  })
})

describe('validateManifest refuses a hostile sender', () => {
  const pathCases: Array<[string, string, ManifestProblem, string?]> = [
    ['a parent segment: ../x', '../x', 'DotSegment', '".."'],
    ['an absolute path: /etc/passwd', '/etc/passwd', 'AbsolutePath', 'absolute'],
    ['a climb out of a folder: a/../../b', 'a/../../b', 'DotSegment', 'outside the receive folder'],
    ['a current-folder segment: ./a', './a', 'DotSegment', '"\\."'],
    ['a Windows drive path: C:\\x', 'C:\\x', 'AbsolutePath'],
    ['a Windows drive path: C:/x', 'C:/x', 'AbsolutePath'],
    ['a backslash: a\\b', 'a\\b', 'Backslash', 'backslash'],
    ['a reserved device name: CON', 'CON', 'ReservedName', 'CON'],
    ['a reserved name with an extension: folder/nul.tar.gz', 'folder/nul.tar.gz', 'ReservedName'],
    ['a reserved name in any case: Com1', 'Com1', 'ReservedName'],
    ['a reserved name before spaces: "aux .txt"', 'aux .txt', 'ReservedName'],
    ['a NUL byte: a\\u0000b', 'a\u0000b', 'BadCharacter', 'U\\+0000'],
    ['an escape sequence', 'a\u001b[2Jb', 'BadCharacter', 'U\\+001b'],
    ['a C1 control', 'a\u0085b', 'BadCharacter'],
    ['a right-to-left override: photo\\u202egpj.exe', 'photo\u202egpj.exe', 'BadCharacter', 'U\\+202e'],
    ['a lone surrogate', 'a\ud800b', 'BadCharacter', 'surrogate'],
    ['an NFD name', 'Cafe\u0301.txt', 'NotNormalized', 'NFC'],
    ['an empty path', '', 'EmptySegment'],
    ['an empty segment: a//b', 'a//b', 'EmptySegment'],
    ['a trailing slash: a/', 'a/', 'EmptySegment'],
    ['a trailing dot: notes.', 'notes.', 'TrailingDotOrSpace'],
    ['a trailing space in a folder: "dir /x"', 'dir /x', 'TrailingDotOrSpace'],
    ['a character Windows forbids: a:b', 'a:b', 'ForbiddenCharacter', '":"'],
    ['a question mark: what?', 'what?', 'ForbiddenCharacter'],
    ['a name over 255 bytes', `a/${'é'.repeat(128)}`, 'NameTooLong', '256 bytes'],
    ['a path over 4096 bytes', `${'abcdefgh/'.repeat(455)}x1`, 'PathTooLong', '4097 bytes'],
  ]
  for (const [what, path, problem, mentions] of pathCases) {
    it(what, () => assertRefused([file('ok.txt'), file(path)], problem, { entry: 1, mentions }))
  }

  it('quotes the path in the message with unprintable characters escaped', () => {
    assertRefused([file('x\u001b[31mred')], 'BadCharacter', { mentions: /entry 1 "x\\u001b\[31mred"/ })
    assertRefused([file('a/../b')], 'DotSegment', { mentions: 'entry 1 "a/../b"' })
  })

  it('duplicates: A.txt and a.txt (a case-insensitive receiver holds one)', () => {
    assertRefused([file('A.txt'), file('a.txt')], 'Duplicate', { entry: 1, mentions: 'case' })
  })

  it('duplicates: non-ASCII names that differ in case only', () => {
    assertRefused([dir('Été'), file('Été/x'), file('été/y')], 'Duplicate', {
      entry: 2,
      mentions: 'entry 1 "Été"',
    })
    assertRefused([file('ΑΣ'), file('ας')], 'Duplicate', { entry: 1 })
    assertRefused([file('Ασ'), file('ας')], 'Duplicate', { entry: 1 })
  })

  it('duplicates: the same name in NFC and NFD', () => {
    // The NFD one is refused as such: a manifest is NFC, so the two can never both arrive.
    assertRefused([file('caf\u00e9.txt'), file('cafe\u0301.txt')], 'NotNormalized', { entry: 1 })
  })

  it('duplicates: one path listed twice, as files or as a file and a folder', () => {
    assertRefused([dir('a'), file('a/b'), file('a/b')], 'Duplicate', { entry: 2, mentions: 'listed twice' })
    assertRefused([dir('a'), file('a')], 'Duplicate', { entry: 1 })
    assertRefused([dir('a'), dir('a')], 'Duplicate', { entry: 1 })
  })

  it('duplicates: a path through a folder spelled in another case', () => {
    const entries = [dir('Photos'), file('Photos/a.jpg'), file('photos/b.jpg')]
    assertRefused(entries, 'Duplicate', {
      entry: 2,
      mentions: 'its folder differs only in case .* entry 1 "Photos"',
    })
  })

  it('a file nested under a file', () => {
    assertRefused([file('a'), file('a/b')], 'NestedUnderFile', { entry: 1, mentions: 'which is a file' })
    assertRefused([dir('a'), file('a/b'), dir('a/b/c')], 'NestedUnderFile', { entry: 2, mentions: '"a/b"' })
  })

  it('an entry whose folder is not listed before it', () => {
    assertRefused([file('a/b')], 'FolderNotListed', { entry: 0, mentions: 'folder "a"' })
    assertRefused([file('a/b'), dir('a')], 'FolderNotListed', { entry: 0 })
    assertRefused([dir('a'), file('a/b/c')], 'FolderNotListed', { entry: 1, mentions: 'folder "a/b"' })
  })

  it('a symlink entry, and other special files', () => {
    for (const kind of ['symlink', 'blockDevice', 'characterDevice', 'fifo', 'socket']) {
      assertRefused([file('x'), raw('link', { kind })], 'SpecialFile', { entry: 1, mentions: kind })
    }
    assertRefused([raw('thing', { kind: undefined })], 'SpecialFile', { entry: 0 })
    assertRefused([raw('thing', { kind: 2 })], 'SpecialFile', { entry: 0 })
  })

  it('sizes that are not safe non-negative integers', () => {
    for (const size of [-1, 1.5, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY, '10', undefined, 2n ** 53n]) {
      assertRefused([raw('f', { size })], 'BadSize', { entry: 0 })
    }
  })

  it('sizes that do not add up to the declared total', () => {
    const entries = [file('a', 3), file('b', 4)]
    for (const declared of [
      { files: 2, bytes: 8 },
      { files: 3, bytes: 7 },
      { files: 1, bytes: 7 },
    ]) {
      assert.throws(() => validateManifest({ entries }, { declared }), {
        name: 'UnsafeManifestError',
        problem: 'TotalsMismatch',
      })
    }
  })

  it('entries with fields of the wrong type, or extra ones', () => {
    const cases: RawEntry[] = [
      raw('f', { mode: 0o4755 }), // setuid: permission bits only
      raw('f', { mode: -1 }),
      raw('f', { mode: '644' }),
      raw('f', { mtimeMs: 1.5 }),
      raw('f', { mtimeMs: undefined }),
      raw('f', { hash: new Uint8Array(31) }),
      raw('f', { hash: 'abc' }),
      raw('f', { owner: 'root' }),
      raw('d', { kind: 'dir', size: 0 }),
      raw('d', { kind: 'dir', size: undefined, hash: new Uint8Array(32) }),
    ]
    for (const entry of cases) assertRefused([entry], 'BadEntry', { entry: 0 })
    assertRefused([raw(7)], 'BadEntry', { entry: 0 })
    assertRefused(['a/b'], 'BadEntry', { entry: 0 })
    assertRefused([null], 'BadEntry', { entry: 0 })
  })

  it('something that is not a manifest', () => {
    for (const value of [
      null,
      [],
      'x',
      { entries: 'x' },
      { entries: [file('a')], extra: 1 },
      { entries: [] },
    ]) {
      assert.throws(() => validateManifest(value), { name: 'UnsafeManifestError', problem: 'NotAManifest' })
    }
  })

  it('too many entries, before looking at any', () => {
    const entries = new Array(DEFAULT_MANIFEST_LIMITS.maxEntries + 1).fill(null)
    assertOverLimit(() => validateManifest({ entries }), 'TooManyEntries')
    assertOverLimit(
      () => validateManifest({ entries: [file('a'), file('b')] }, { limits: { maxEntries: 1 } }),
      'TooManyEntries',
    )
  })

  it('too many bytes', () => {
    const entries = [file('a', 2 ** 39), file('b', 2 ** 39), file('c', 1)]
    assertOverLimit(() => validateManifest({ entries }), 'TooManyBytes')
    assertOverLimit(
      () =>
        validateManifest({
          entries: [file('a', Number.MAX_SAFE_INTEGER), file('b', Number.MAX_SAFE_INTEGER)],
        }),
      'TooManyBytes',
    )
  })

  it('an oversized manifest, before decoding it', () => {
    const bytes = encodeManifest({ entries: [file('a'.repeat(200))] })
    assertOverLimit(
      () => decodeManifest(bytes, { limits: { maxManifestBytes: bytes.byteLength - 1 } }),
      'ManifestTooLarge',
    )
    assertOverLimit(
      () => encodeManifest({ entries: [file('a'.repeat(200))] }, { maxManifestBytes: 100 }),
      'ManifestTooLarge',
    )
  })

  it('checks in time linear in the manifest: a chain of 2,000 folders, and 100,000 entries', () => {
    const chain = Array.from({ length: 2000 }, (_, i) => dir(`a${'/a'.repeat(i)}`))
    const wide = [dir('d'), ...Array.from({ length: 99_999 }, (_, i) => file(`d/file number ${i}.txt`))]
    for (const entries of [chain, wide]) {
      const started = performance.now()
      validateManifest({ entries })
      // Generous for a shared machine: each takes well under a second.
      assert.ok(performance.now() - started < 5_000)
    }
  })
})

describe('manifests on the wire', () => {
  const entries = [dir('a'), file('a/b.txt', 5), { ...file('c', 0), hash: new Uint8Array(32).fill(1) }]

  it('round-trip as plain CBOR', () => {
    const bytes = encodeManifest({ entries })
    assert.deepEqual(decodeManifest(bytes).manifest, { entries })
    assert.deepEqual(cbor.decode(bytes).entries[0], { path: 'a', kind: 'dir', mode: 0o755, mtimeMs: 1e12 })
  })

  it('reads integers that another encoder wrote as 64-bit integers (cbor-x gives bigints for them)', () => {
    const big = {
      path: 'big.iso',
      kind: 'file',
      size: BigInt(5 * 2 ** 30),
      mode: 0o600,
      mtimeMs: BigInt(1.7e12),
    }
    assert.deepEqual(decodeManifest(cbor.encode({ entries: [big] })).manifest.entries, [
      { path: 'big.iso', kind: 'file', size: 5 * 2 ** 30, mode: 0o600, mtimeMs: 1.7e12 },
    ])
    const tooBig = { ...big, size: 2n ** 53n }
    assert.throws(() => decodeManifest(cbor.encode({ entries: [tooBig] })), { problem: 'BadSize' })
  })

  it('refuses bytes that are not CBOR, and a manifest the sender could not have built', () => {
    assert.throws(() => decodeManifest(Uint8Array.of(0xff)), {
      name: 'UnsafeManifestError',
      problem: 'NotAManifest',
    })
    assert.throws(() => decodeManifest(cbor.encode({ entries: [raw('../../.bashrc')] })), {
      name: 'UnsafeManifestError',
      problem: 'DotSegment',
    })
    assert.throws(() => encodeManifest({ entries: [file('/abs')] }), { name: 'UnsafeManifestError' })
  })

  it('never throws anything but a manifest error on mangled manifests', () => {
    const valid = encodeManifest({ entries: [dir('a'), file('a/b.txt', 5), file('c', 0), dir('a/d')] })
    let seed = 7
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
      return seed / 2 ** 31
    }
    for (let i = 0; i < 3000; i++) {
      const input = valid.slice()
      for (let flips = 1 + Math.floor(random() * 3); flips > 0; flips--) {
        input[Math.floor(random() * input.byteLength)] = Math.floor(random() * 256)
      }
      try {
        decodeManifest(input)
      } catch (err) {
        assert.ok(
          err instanceof Error && ['UnsafeManifestError', 'ManifestLimitError'].includes(err.name),
          String(err),
        )
      }
    }
  })

  it('a small manifest travels in the offer alone, and reassembles', () => {
    const messages = offerMessages({ transferId, token, manifest: { entries } })
    assert.equal(messages.length, 1)
    const offer = decodeDropMessage(encodeDropMessage(messages[0])) as OfferMessage
    assert.deepEqual([offer.files, offer.bytes], [2, 5])
    const assembly = new ManifestAssembly(offer)
    assert.equal(assembly.complete, true)
    assert.deepEqual(assembly.finish(), {
      manifest: { entries },
      totals: { entries: 3, files: 2, dirs: 1, bytes: 5 },
    })
  })

  // ~1.3 MB of manifest: three messages.
  const many = [
    ...Array.from({ length: 50 }, (_, i) => dir(`folder ${i}`)),
    ...Array.from({ length: 8000 }, (_, i) => file(`folder ${i % 50}/${'long name '.repeat(12)}${i}.txt`, i)),
  ]

  it('a large manifest travels in parts that each fit a sealed message, and reassembles', () => {
    const [offer, ...parts] = offerMessages({ transferId, token, manifest: { entries: many } })
    assert.ok(parts.length >= 2)
    const wire = (m: object) => decodeDropMessage(encodeDropMessage(m as OfferMessage))
    const assembly = new ManifestAssembly(wire(offer) as OfferMessage)
    for (const part of parts) {
      assert.equal(assembly.complete, false)
      assert.ok(part.part.byteLength <= MAX_MANIFEST_PART_BYTES)
      assembly.add(wire(part) as (typeof parts)[number])
    }
    assert.equal(assembly.complete, true)
    const { manifest, totals } = assembly.finish()
    assert.equal(manifest.entries.length, 8050)
    assert.equal(totals.bytes, (7999 * 8000) / 2)
  })

  it('refuses parts out of order, past the end, of another transfer, or missing', () => {
    const [offer, first, second] = offerMessages({ transferId, token, manifest: { entries: many } })
    assert.ok(first !== undefined && second !== undefined)
    const refused = (action: () => unknown) =>
      assert.throws(action, { name: 'UnsafeManifestError', problem: 'IncompleteManifest' })
    refused(() => new ManifestAssembly(offer).add(second))
    refused(() => new ManifestAssembly(offer).add({ ...first, transferId: transferId.replace('f', '0') }))
    refused(() => new ManifestAssembly(offer).finish())
    const assembly = new ManifestAssembly(offer)
    assembly.add(first)
    assembly.add(second)
    refused(() => assembly.add({ ...second, offset: offer.manifestBytes - 1 }))
    refused(() => new ManifestAssembly({ ...offer, manifestBytes: offer.part.byteLength - 1 }))
  })

  it('refuses a manifest that does not match its hash or its offer', () => {
    const [offer] = offerMessages({ transferId, token, manifest: { entries } })
    const tampered = { ...offer, part: offer.part.slice() }
    const last = tampered.part.byteLength - 1
    tampered.part[last] = (tampered.part[last] as number) ^ 1
    assert.throws(() => new ManifestAssembly(tampered).finish(), { problem: 'ManifestHashMismatch' })
    assert.throws(() => new ManifestAssembly({ ...offer, bytes: 4 }).finish(), { problem: 'TotalsMismatch' })
    assert.throws(() => new ManifestAssembly({ ...offer, files: 3 }).finish(), { problem: 'TotalsMismatch' })
  })

  it('refuses an offer over the limits before any part of its manifest is kept', () => {
    const [offer] = offerMessages({ transferId, token, manifest: { entries } })
    assertOverLimit(() => new ManifestAssembly({ ...offer, files: 100_001 }), 'TooManyEntries')
    assertOverLimit(() => new ManifestAssembly({ ...offer, bytes: 2 ** 40 + 1 }), 'TooManyBytes')
    assertOverLimit(
      () => new ManifestAssembly({ ...offer, manifestBytes: 16 * 1024 * 1024 + 1 }),
      'ManifestTooLarge',
    )
    assertOverLimit(() => checkOfferLimits(offer, { maxBytes: 4 }), 'TooManyBytes')
  })
})

describe('buildManifest', () => {
  const stats = (
    kind: 'file' | 'dir' | 'symlink' | 'fifo',
    size = 0,
    mode = 0o100644,
    mtimeMs = 1.7e12 + 0.75,
  ) =>
    ({
      isFile: () => kind === 'file',
      isDirectory: () => kind === 'dir',
      isSymbolicLink: () => kind === 'symlink',
      size,
      mode,
      mtimeMs,
    }) satisfies LocalStats
  const at = (path: string, s: LocalStats): LocalEntry => ({ path, stats: s })

  it('lists files and folders in path order, in NFC, with modes masked and whole milliseconds', () => {
    const built = buildManifest([
      at('photos/cafe\u0301.jpg', stats('file', 1234, 0o104755)),
      at('photos', stats('dir', 4096, 0o40700)),
      at('photos/empty', stats('dir')),
      at('notes.txt', stats('file', 0)),
      at('photos/link', stats('symlink')),
      at('photos/pipe', stats('fifo')),
    ])
    assert.deepEqual(built.manifest.entries, [
      { path: 'notes.txt', kind: 'file', size: 0, mode: 0o644, mtimeMs: 1.7e12 },
      { path: 'photos', kind: 'dir', mode: 0o700, mtimeMs: 1.7e12 },
      { path: 'photos/caf\u00e9.jpg', kind: 'file', size: 1234, mode: 0o755, mtimeMs: 1.7e12 },
      { path: 'photos/empty', kind: 'dir', mode: 0o644, mtimeMs: 1.7e12 },
    ])
    assert.deepEqual(built.sources, ['notes.txt', 'photos', 'photos/cafe\u0301.jpg', 'photos/empty'])
    assert.deepEqual(built.skipped, [
      { path: 'photos/link', kind: 'symlink' },
      { path: 'photos/pipe', kind: 'special' },
    ])
    assert.deepEqual(built.totals, { entries: 4, files: 2, dirs: 2, bytes: 1234 })
  })

  it('refuses on the sender what no receiver could take, naming it', () => {
    assert.throws(() => buildManifest([at('a\\b', stats('file'))]), { problem: 'Backslash' })
    // Two local names that NFC makes one.
    assert.throws(() => buildManifest([at('caf\u00e9', stats('file')), at('cafe\u0301', stats('file'))]), {
      problem: 'Duplicate',
    })
  })

  it('leaves portable names to the receiver unless asked', () => {
    assert.equal(buildManifest([at('CON', stats('file'))]).manifest.entries.length, 1)
    assert.throws(() => buildManifest([at('CON', stats('file'))], { limits: { portableNames: true } }), {
      problem: 'ReservedName',
    })
  })
})
