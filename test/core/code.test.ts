import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { InvalidCodeError } from '../../actors/errors.ts'
import { completeWord, generateCode, nearestWords, parseCode } from '../../actors/pairing/code.ts'

// BIP39 test vector (trezor/python-mnemonic vectors.json): entropy 7f7f...7f.
const VECTOR_WORDS = 'legal winner thank year wave sausage worth useful legal winner thank yellow'
const VECTOR_ENTROPY = Uint8Array.from(Buffer.from('7f'.repeat(16), 'hex'))

function invalidCode(input: string | string[]): InvalidCodeError {
  try {
    parseCode(input)
  } catch (error) {
    assert.ok(error instanceof InvalidCodeError)
    assert.equal(error.name, 'InvalidCodeError')
    return error
  }
  assert.fail(`parseCode accepted ${JSON.stringify(input)}`)
}

describe('code', () => {
  it('parses a known BIP39 vector', () => {
    assert.deepEqual(parseCode(VECTOR_WORDS), VECTOR_ENTROPY)
  })

  it('round-trips generated codes', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 20; i++) {
      const { words, entropy } = generateCode()
      assert.equal(words.length, 12)
      assert.equal(entropy.length, 16)
      assert.deepEqual(parseCode(words), entropy)
      seen.add(Buffer.from(entropy).toString('hex'))
    }
    assert.equal(seen.size, 20)
  })

  it('accepts any case, any whitespace, and one argument per word', () => {
    assert.deepEqual(
      parseCode(`  LEGAL Winner\tthank\n year  ${VECTOR_WORDS.split(' ').slice(4).join('   ')} `),
      VECTOR_ENTROPY,
    )
    assert.deepEqual(parseCode(VECTOR_WORDS.toUpperCase().split(' ')), VECTOR_ENTROPY)
    assert.deepEqual(
      parseCode(['legal winner', 'thank year wave sausage', ...VECTOR_WORDS.split(' ').slice(6)]),
      VECTOR_ENTROPY,
    )
  })

  it('names a misspelled word by position and suggests corrections', () => {
    const words = VECTOR_WORDS.split(' ')
    words[3] = 'yaer'
    const error = invalidCode(words.join(' '))
    assert.equal(error.position, 4)
    assert.deepEqual(error.suggestions, ['year', 'air', 'bar'])
    assert.equal(
      error.message,
      'Word 4, "yaer", is not in the code word list. Did you mean "year", "air" or "bar"? ' +
        'Check the 12 words shown on the other device.',
    )
  })

  it('mentions further unknown words', () => {
    const words = VECTOR_WORDS.split(' ')
    words[1] = 'winer'
    words[6] = 'wrth'
    words[10] = 'thnk'
    const error = invalidCode(words)
    assert.equal(error.position, 2)
    assert.match(
      error.message,
      /^Word 2, "winer", is not in the code word list\. Did you mean "wine", "winner" or "winter"\? /,
    )
    assert.match(error.message, / Words 7 and 11 are not in the list either\. /)
  })

  it('reports a wrong word count', () => {
    const words = VECTOR_WORDS.split(' ')
    const short = invalidCode(words.slice(0, 11))
    assert.match(short.message, /^The code has 11 words; a pairing code has 12\. /)
    assert.equal(short.position, undefined)
    assert.deepEqual(short.suggestions, [])
    assert.match(invalidCode([...words, 'legal']).message, /^The code has 13 words;/)
    assert.match(invalidCode('legal').message, /^The code has 1 word;/)
    assert.match(invalidCode('   ').message, /^The code has 0 words;/)
  })

  it('reports a checksum mismatch when every word is valid', () => {
    const error = invalidCode(Array(12).fill('abandon'))
    assert.equal(
      error.message,
      'The 12 words are all valid, but they do not form a valid code (checksum mismatch): one of them is probably wrong. Compare them with the other device.',
    )
    assert.equal(error.position, undefined)
  })

  it('orders suggestions by edit distance, ties alphabetically', () => {
    assert.deepEqual(nearestWords('abandn'), ['abandon', 'again', 'bacon'])
    assert.deepEqual(nearestWords('yaer', 1), ['year'])
    // One edit away from "wil": oil, wild, will, win (a tie, so alphabetical); then distance 2.
    assert.deepEqual(nearestWords('wil', 4), ['oil', 'wild', 'will', 'win'])
    // A swap of adjacent letters is one edit (plain Levenshtein would count two and tie "table" with "able").
    assert.deepEqual(nearestWords('tbale', 2), ['table', 'able'])
    assert.deepEqual(nearestWords('Winner', 1), ['winner'])
    assert.equal(nearestWords('zzzzzz', 7).length, 7)
  })

  it('completes prefixes from the word list', () => {
    assert.deepEqual(completeWord('aba'), ['abandon'])
    assert.deepEqual(completeWord('zo'), ['zone', 'zoo'])
    assert.deepEqual(completeWord('ABAN'), ['abandon'])
    assert.deepEqual(completeWord('qx'), [])
    assert.equal(completeWord('').length, 2048)
  })
})
