// Pairing codes: 12 BIP39 English words carrying 128 bits of entropy plus a 4-bit checksum. Parsing happens before
// any network traffic, so a typo is caught here, with the word's position and likely corrections.

import { randomBytes } from 'node:crypto'
import { entropyToMnemonic, mnemonicToEntropy, validateMnemonic, wordlists } from 'bip39'
import { InvalidCodeError } from '../errors.ts'

const CODE_WORDS = 12
const ENTROPY_BYTES = 16
const WORDS: string[] = wordlists.english!
const WORD_SET = new Set(WORDS)

/** A fresh random code, as the words to show and the entropy the secrets are derived from. */
export function generateCode(): { words: string[]; entropy: Uint8Array } {
  const entropy = Uint8Array.from(randomBytes(ENTROPY_BYTES))
  return { words: entropyToMnemonic(Buffer.from(entropy), WORDS).split(' '), entropy }
}

/**
 * Parses a typed code into its entropy. Takes one string or one argument per word (as a shell passes them), in any
 * case, separated by any whitespace or commas. Throws `InvalidCodeError` with a message for the user.
 *
 * @example parseCode('Abandon ability able ...') // -> Uint8Array(16)
 */
const MAX_CODE_CHARS = 256

export function parseCode(input: string | readonly string[]): Uint8Array {
  const text = typeof input === 'string' ? input : input.join(' ')
  // Twelve of the longest code words (8 letters) and their separators fit easily; anything far longer is not a code,
  // and refusing it up front keeps the edit-distance search below cheap.
  if (text.length > MAX_CODE_CHARS) {
    throw new InvalidCodeError(
      `That is ${text.length} characters long; a pairing code is ${CODE_WORDS} short words. Type the words shown on the other device.`,
    )
  }
  const words = text
    .normalize('NFKD')
    .toLowerCase()
    .split(/[\s,]+/)
    .filter((w) => w !== '')

  if (words.length !== CODE_WORDS) {
    throw new InvalidCodeError(
      `The code has ${words.length} word${words.length === 1 ? '' : 's'}; a pairing code has ${CODE_WORDS}. ` +
        `Type the ${CODE_WORDS} words shown on the other device.`,
    )
  }

  const unknown = words.flatMap((word, i) => (WORD_SET.has(word) ? [] : [i + 1]))
  const [first, ...others] = unknown
  if (first !== undefined) {
    const word = words[first - 1]!
    const suggestions = nearestWords(word)
    const didYouMean = listOf(
      suggestions.map((s) => `"${s}"`),
      'or',
    )
    const also =
      others.length === 0
        ? ''
        : ` ${others.length === 1 ? 'Word' : 'Words'} ${listOf(others.map(String), 'and')} ` +
          `${others.length === 1 ? 'is' : 'are'} not in the list either.`
    throw new InvalidCodeError(
      `Word ${first}, "${word}", is not in the code word list. ` +
        `Did you mean ${didYouMean}?${also} Check the ${CODE_WORDS} words shown on the other device.`,
      { position: first, suggestions },
    )
  }

  const mnemonic = words.join(' ')
  if (!validateMnemonic(mnemonic, WORDS)) {
    throw new InvalidCodeError(
      `The ${CODE_WORDS} words are all valid, but they do not form a valid code (checksum mismatch): ` +
        'one of them is probably wrong. Compare them with the other device.',
    )
  }
  return Uint8Array.from(Buffer.from(mnemonicToEntropy(mnemonic, WORDS), 'hex'))
}

/**
 * The `count` code words closest to `word` by edit distance (insertions, deletions, substitutions and swaps of two
 * adjacent letters each count 1), ties in alphabetical order.
 */
export function nearestWords(word: string, count = 3): string[] {
  const typed = word.normalize('NFKD').toLowerCase().slice(0, 32)
  return WORDS.map((candidate) => ({ candidate, distance: editDistance(typed, candidate) }))
    .sort((a, b) => a.distance - b.distance || (a.candidate < b.candidate ? -1 : 1))
    .slice(0, count)
    .map((x) => x.candidate)
}

/** The code words that start with `prefix` (for shell and prompt completion), in word-list (alphabetical) order. */
export function completeWord(prefix: string): string[] {
  const typed = prefix.normalize('NFKD').trim().toLowerCase()
  return WORDS.filter((w) => w.startsWith(typed))
}

// Optimal string alignment distance: Levenshtein plus adjacent transpositions, the commonest typing slip.
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  )
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d = Math.min(d, rows[i - 2]![j - 2]! + 1)
      rows[i]![j] = d
    }
  }
  return rows[a.length]![b.length]!
}

// "a", "a or b", "a, b or c"
function listOf(items: string[], conjunction: 'and' | 'or'): string {
  if (items.length <= 1) return items.join('')
  return `${items.slice(0, -1).join(', ')} ${conjunction} ${items.at(-1)}`
}
