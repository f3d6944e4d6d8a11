// The benchmarks' result table: a figure, the floor it is measured against, their ratio, the target and whether it
// was met.
import { round } from './stats.ts'

export interface Row {
  label: string
  value: number
  floor?: number
  /**
   * 'ratio>=' compares value/floor (higher is better), 'ratio<=' value/floor, 'below' and 'atLeast' the value
   * itself; `unit` is shown beside the limit of those two ('ms' unless told).
   */
  target?: { kind: 'ratio<=' | 'ratio>=' | 'below' | 'atLeast'; limit: number; unit?: string }
}

export function met(row: Row): boolean | undefined {
  if (!row.target) return undefined
  if (row.target.kind === 'below') return row.value < row.target.limit
  if (row.target.kind === 'atLeast') return row.value >= row.target.limit
  const ratio = row.value / (row.floor ?? Number.NaN)
  return row.target.kind === 'ratio<=' ? ratio <= row.target.limit : ratio >= row.target.limit
}

export const TABLE_HEADER = `${'measurement'.padEnd(38)}${'sdnet'.padStart(11)}${'floor'.padStart(11)}${'ratio'.padStart(9)}  ${'target'.padEnd(12)}`

export function formatRow(row: Row): string {
  const number = (value: number | undefined) =>
    value === undefined || Number.isNaN(value)
      ? '-'
      : value >= 1000
        ? String(Math.round(value))
        : round(value).toFixed(2)
  const ratio =
    row.floor === undefined
      ? ''
      : Number.isNaN(row.value / row.floor)
        ? '-'
        : `${(row.value / row.floor).toFixed(2)}x`
  const unit = row.target?.unit ?? 'ms'
  const target = !row.target
    ? ''
    : row.target.kind === 'below'
      ? `< ${row.target.limit} ${unit}`
      : row.target.kind === 'atLeast'
        ? `>= ${row.target.limit} ${unit}`
        : `${row.target.kind === 'ratio<=' ? '<=' : '>='} ${row.target.limit}x`
  const verdict = met(row)
  return `${row.label.padEnd(38)}${number(row.value).padStart(11)}${number(row.floor).padStart(11)}${ratio.padStart(9)}  ${target.padEnd(12)}${verdict === undefined ? '' : verdict ? 'met' : 'MISSED'}`
}

/** The table, then each note once. */
export function printTable(rows: Row[], notes: Iterable<string>): void {
  console.log(TABLE_HEADER)
  for (const row of rows) console.log(formatRow(row))
  for (const note of new Set(notes)) console.log(`note: ${note}`)
}
