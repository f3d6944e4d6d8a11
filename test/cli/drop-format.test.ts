// What the drop commands say: sizes, times, the consent question, outcomes and the list.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { DropResult, DropSummary } from '../../actors/client.ts'
import {
  formatBytes,
  formatDuration,
  formatRate,
  MAX_LISTED_FILES,
  offerLine,
  offerQuestion,
  outcomeText,
  transferRows,
} from '../../cli/drop-format.ts'

const offer: DropSummary = {
  transferId: '3f2a91bc04de77a13f2a91bc04de77a1',
  direction: 'receive',
  deviceId: 'dev-alice',
  name: 'alice',
  fingerprint: '3F2A-91BC-04DE-77A1',
  files: 3,
  bytes: 1_258_291,
  bytesDone: 0,
  state: 'Offered',
  paths: ['holiday', 'holiday/notes.txt', 'holiday/photos', 'holiday/photos/a.jpg'],
  createdAt: 0,
}

describe('sizes, rates and times', () => {
  test('bytes in binary units, at most three significant digits, never "1024 KiB"', () => {
    const cases: [number, string][] = [
      [0, '0 B'],
      [1, '1 B'],
      [1023, '1023 B'],
      [1024, '1.0 KiB'],
      [1536, '1.5 KiB'],
      [10_188, '9.9 KiB'],
      [10_189, '10 KiB'],
      [1024 * 1023.4, '1023 KiB'],
      [1024 * 1023.6, '1.0 MiB'],
      [1_258_291, '1.2 MiB'],
      [1024 ** 3, '1.0 GiB'],
      [5 * 1024 ** 4, '5.0 TiB'],
      [3 * 1024 ** 6, '3072 PiB'],
    ]
    for (const [bytes, text] of cases) assert.equal(formatBytes(bytes), text, `${bytes} bytes`)
  })

  test('a rate is bytes a second', () => {
    assert.equal(formatRate(250 * 1024 * 1024), '250 MiB/s')
    assert.equal(formatRate(0), '0 B/s')
  })

  test('times as m:ss or h:mm:ss, and --:-- while unknown', () => {
    assert.equal(formatDuration(0), '0:00')
    assert.equal(formatDuration(42_400), '0:42')
    assert.equal(formatDuration(725_000), '12:05')
    assert.equal(formatDuration(3_725_000), '1:02:05')
    assert.equal(formatDuration(null), '--:--')
    assert.equal(formatDuration(Number.POSITIVE_INFINITY), '--:--')
  })
})

describe('offers', () => {
  test('the consent question names the sender, its fingerprint, the file count, the size and the first paths', () => {
    assert.equal(
      offerQuestion(offer),
      'alice [3F2A-91BC-04DE-77A1] wants to send you 3 files (1.2 MiB): holiday, holiday/notes.txt, holiday/photos, …. Accept?',
    )
    assert.equal(
      offerQuestion({ ...offer, files: 1, bytes: 6, paths: ['notes.txt'] }),
      'alice [3F2A-91BC-04DE-77A1] wants to send you 1 file (6 B): notes.txt. Accept?',
    )
  })

  test('an offer seen without a terminal says how to answer it by a short id', () => {
    assert.equal(
      offerLine(offer),
      'alice [3F2A-91BC-04DE-77A1] offers 3 files (1.2 MiB): holiday, holiday/notes.txt, holiday/photos, …\n' +
        '  accept with: sdnet drop accept 3f2a91bc   (or: sdnet drop reject 3f2a91bc)',
    )
    assert.equal(
      offerLine({ ...offer, direction: 'send', name: 'desktop' }),
      'Offered 3 files (1.2 MiB) to desktop [3F2A-91BC-04DE-77A1]; waiting for it to accept… (drop 3f2a91bc)',
    )
  })
})

describe('outcomes', () => {
  const transferId = offer.transferId
  const file = (i: number) => ({ path: `f${i}`, size: 1, hash: 'ab'.repeat(32), savedAs: `/dl/sdnet/f${i}` })

  test('a completed drop lists where each file landed, with its hash', () => {
    const result: DropResult = {
      outcome: 'completed',
      transferId,
      files: [file(1), file(2)],
      bytes: 2,
      bytesMoved: 2,
    }
    assert.equal(
      outcomeText(result, 'receive', 'alice'),
      `Saved 2 files (2 B) from alice:\n  ${'ab'.repeat(32)}  /dl/sdnet/f1\n  ${'ab'.repeat(32)}  /dl/sdnet/f2`,
    )
    const sent = {
      ...result,
      files: [{ path: 'f1', size: 1, hash: 'cd'.repeat(32) }],
      bytes: 1,
      bytesMoved: 1,
    }
    assert.equal(
      outcomeText(sent, 'send', 'desktop'),
      `Sent 1 file (1 B) to desktop, verified on arrival:\n  ${'cd'.repeat(32)}  f1`,
    )
  })

  test(`past ${MAX_LISTED_FILES} files the rest is counted, not listed`, () => {
    const files = Array.from({ length: MAX_LISTED_FILES + 5 }, (_, i) => file(i))
    const lines = outcomeText(
      { outcome: 'completed', transferId, files, bytes: files.length, bytesMoved: files.length },
      'receive',
    ).split('\n')
    assert.equal(lines.length, 1 + MAX_LISTED_FILES + 1)
    assert.equal(lines.at(-1), '  … and 5 more files (--json lists them all)')
  })

  test('a drop that did not complete says why', () => {
    assert.equal(
      outcomeText(
        { outcome: 'rejected', transferId, reason: 'Declined', message: 'no thanks' },
        'send',
        'desktop',
      ),
      'desktop did not accept the drop (Declined): no thanks',
    )
    assert.equal(
      outcomeText({ outcome: 'cancelled', transferId, by: 'peer', message: 'stopped' }, 'receive', 'alice'),
      'The drop was cancelled by alice: stopped',
    )
    assert.equal(
      outcomeText({ outcome: 'cancelled', transferId, by: 'local', message: 'stopped' }, 'send', 'alice'),
      'The drop was cancelled on this device: stopped',
    )
    assert.equal(
      outcomeText(
        { outcome: 'failed', transferId, reason: 'SourceChanged', message: 'it changed', file: 'a/b.txt' },
        'send',
      ),
      'The drop failed (SourceChanged, a/b.txt): it changed',
    )
  })
})

test('drop list shows each transfer by short id, way, device, state, contents and how far it is', () => {
  assert.equal(transferRows([]), 'No drops in progress or waiting for an answer.')
  const rows = transferRows([
    { ...offer, state: 'Receiving', bytesDone: 629_146 },
    { ...offer, direction: 'send', name: 'nas', files: 0, bytes: 0, state: 'AwaitingConsent' },
  ]).split('\n')
  assert.match(rows[0]!, /^ {2}3f2a91bc {2}from alice +Receiving +3 files \(1\.2 MiB\) +50%$/)
  assert.match(rows[1]!, /^ {2}3f2a91bc {2}to {3}nas +AwaitingConsent +0 files \(0 B\) +100%$/)
})
