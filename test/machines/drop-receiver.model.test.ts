// Model-based tests of the receiving end of a drop, from the catalog's scenarios (machines/index.ts): a new
// transfer and one resumed after a restart. Besides the rules both sides keep (drop-model.ts), the receiver
// removes its temp files exactly when it gives up (Cancelled, Failed), and fetches a file again only once.
import assert from 'node:assert/strict'
import { dropReceiverMachine } from '../../machines/drop-receiver.machine.ts'
import { dropReceiverScenarios } from '../../machines/index.ts'
import { dropModelTests, phaseOf } from './drop-model.ts'

dropModelTests({
  machine: dropReceiverMachine,
  scenarios: dropReceiverScenarios,
  offer: 'Offered',
  check: ({ before, after, effects }) => {
    const types = effects.map((effect) => effect.type)
    const givesUp = before.status === 'active' && ['Cancelled', 'Failed'].includes(phaseOf(after))
    assert.deepEqual(
      types.filter((type) => type === 'removeTemp'),
      givesUp ? ['removeTemp'] : [],
    )
    if (givesUp) assert.equal(types.at(-1), 'removeTemp')
    // A file that failed a check once is fetched again; the second failure ends the transfer instead.
    const refetched = effects.filter((effect) => effect.type === 'sendRefetch')
    for (const effect of refetched) {
      assert.equal(before.context.failedFiles.includes(effect.file), false)
      assert.deepEqual(after.context.failedFiles, [...before.context.failedFiles, effect.file])
    }
  },
})
