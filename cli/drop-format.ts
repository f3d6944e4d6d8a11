// What the drop commands say to a person: sizes, rates, times, the consent question and the outcome. Pure
// functions of the daemon's lines (ARCHITECTURE.md "Daemon RPC"), so tests pin the wording.
import type { DropResult, DropSummary } from '../actors/client.ts'

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']
/** At most this many files are listed in an outcome; `--json` lists them all. */
export const MAX_LISTED_FILES = 20

/** `512 B`, `1.5 KiB`, `12 MiB`, `1.0 GiB`: three significant digits at most, binary units. */
export function formatBytes(bytes: number): string {
  let value = bytes
  let unit = 0
  // 1023.5 and up would round to "1024": show it in the next unit instead.
  while (value >= 1023.5 && unit < UNITS.length - 1) {
    value /= 1024
    unit++
  }
  if (unit === 0) return `${Math.round(value)} B`
  return `${value < 9.95 ? value.toFixed(1) : value.toFixed(0)} ${UNITS[unit]}`
}

export const formatRate = (bytesPerSecond: number): string => `${formatBytes(bytesPerSecond)}/s`

/** `0:42`, `12:05`, `1:02:05`; `--:--` while it is not known. */
export function formatDuration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms) || ms < 0) return '--:--'
  const total = Math.round(ms / 1000)
  const [h, m, s] = [Math.floor(total / 3600), Math.floor(total / 60) % 60, total % 60]
  const pad = (n: number) => String(n).padStart(2, '0')
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`
}

const plural = (n: number, word: string) => `${n.toLocaleString('en')} ${word}${n === 1 ? '' : 's'}`

/** What a drop holds: `3 files (1.2 MiB)`. */
export const contents = (t: Pick<DropSummary, 'files' | 'bytes'>): string =>
  `${plural(t.files, 'file')} (${formatBytes(t.bytes)})`

/** The short form of a transfer id that the commands accept (a unique prefix). */
export const shortId = (transferId: string): string => transferId.slice(0, 8)

/** The first paths of a drop, for a person to recognise it. */
function firstPaths(paths: readonly string[], files: number): string {
  const shown = paths.slice(0, 3).join(', ')
  return paths.length > 3 || files > paths.length ? `${shown}, …` : shown
}

type Offer = Pick<DropSummary, 'name' | 'fingerprint' | 'files' | 'bytes' | 'paths'>

/** The consent question `sdnet drop wait` asks. */
export const offerQuestion = (offer: Offer): string =>
  `${offer.name} [${offer.fingerprint}] wants to send you ${contents(offer)}: ${firstPaths(offer.paths, offer.files)}. Accept?`

/** How to answer an offer from another shell. */
export const answerHint = (transferId: string): string =>
  `  accept with: sdnet drop accept ${shortId(transferId)}   (or: sdnet drop reject ${shortId(transferId)})`

/** An offer as `sdnet drop` (sender) or `sdnet drop wait` without a terminal (receiver) shows it. */
export function offerLine(offer: Offer & Pick<DropSummary, 'transferId' | 'direction'>): string {
  if (offer.direction === 'send') {
    return `Offered ${contents(offer)} to ${offer.name} [${offer.fingerprint}]; waiting for it to accept… (drop ${shortId(offer.transferId)})`
  }
  return `${offer.name} [${offer.fingerprint}] offers ${contents(offer)}: ${firstPaths(offer.paths, offer.files)}\n${answerHint(offer.transferId)}`
}

/** The outcome of a transfer in a few lines; `peer` is the other device's name when it is known. */
export function outcomeText(
  result: DropResult,
  direction: DropSummary['direction'] | undefined,
  peer?: string,
): string {
  const who = peer ?? 'the other device'
  switch (result.outcome) {
    case 'completed': {
      const head =
        direction === 'receive'
          ? `Saved ${contents({ files: result.files.length, bytes: result.bytes })} from ${who}:`
          : `Sent ${contents({ files: result.files.length, bytes: result.bytes })} to ${who}, verified on arrival:`
      const rows = result.files.slice(0, MAX_LISTED_FILES).map((f) => `  ${f.hash}  ${f.savedAs ?? f.path}`)
      const more = result.files.length - rows.length
      return [
        head,
        ...rows,
        ...(more > 0 ? [`  … and ${plural(more, 'more file')} (--json lists them all)`] : []),
      ].join('\n')
    }
    case 'rejected':
      return `${who} did not accept the drop (${result.reason}): ${result.message}`
    case 'cancelled':
      return `The drop was cancelled ${result.by === 'local' ? 'on this device' : `by ${who}`}: ${result.message}`
    case 'failed':
      return `The drop failed (${result.reason}${result.file === undefined ? '' : `, ${result.file}`}): ${result.message}`
  }
}

/** `drop list` as a table. */
export function transferRows(transfers: readonly DropSummary[]): string {
  if (transfers.length === 0) return 'No drops in progress or waiting for an answer.'
  return transfers
    .map((t) => {
      const done = t.bytes === 0 ? 100 : Math.floor((100 * t.bytesDone) / t.bytes)
      const way = t.direction === 'send' ? 'to  ' : 'from'
      return `  ${shortId(t.transferId)}  ${way} ${t.name.padEnd(16)} ${t.state.padEnd(16)} ${contents(t).padEnd(22)} ${done}%`
    })
    .join('\n')
}
