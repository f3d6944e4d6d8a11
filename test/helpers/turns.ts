// Counts turns of the event loop: a setImmediate chain that runs once per turn until stopped.

/**
 * @example
 * const turns = countTurns()
 * for (const chunk of chunks) await link.write(chunk)
 * assert.ok(turns.stop() >= 2)
 */
export function countTurns(): { stop(): number } {
  let turns = 0
  let counting = true
  const tick = (): void => {
    if (!counting) return
    turns++
    setImmediate(tick)
  }
  setImmediate(tick)
  return {
    stop() {
      counting = false
      return turns
    },
  }
}
