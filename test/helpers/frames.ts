// Assertions shared by the codec tests.
import assert from 'node:assert/strict'
import { FrameError } from '../../transport/errors.ts'

/** `action` throws a FrameError of class `name` whose message matches `mentions`. */
export function assertFrameError(action: () => unknown, name: string, mentions?: string): void {
  assert.throws(action, (err: unknown) => {
    assert.ok(err instanceof FrameError, `expected a FrameError, got ${String(err)}`)
    assert.equal(err.name, name)
    if (mentions !== undefined) assert.match(err.message, new RegExp(mentions))
    return true
  })
}
