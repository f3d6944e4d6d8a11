// Reading a request's `params`: each reader returns the typed value or throws BadRequestError naming the field.
import { BadRequestError } from '../errors.ts'

export type Params = Record<string, unknown>

export function stringParam(params: Params, key: string): string {
  const value = params[key]
  if (typeof value !== 'string' || value.length === 0)
    throw new BadRequestError(`"${key}" must be a non-empty string`)
  return value
}

export function intParam(params: Params, key: string, min: number, max: number, fallback: number): number {
  const value = params[key] ?? fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new BadRequestError(`"${key}" must be a whole number from ${min} to ${max}`)
  }
  return value
}

/** A message body: `text` (UTF-8) or `base64`. */
export function bodyParam(params: Params): Uint8Array {
  if (typeof params.text === 'string') return new TextEncoder().encode(params.text)
  if (typeof params.base64 === 'string') return Buffer.from(params.base64, 'base64')
  throw new BadRequestError('a message needs "text" or "base64"')
}
