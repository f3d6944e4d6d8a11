// Model-based tests of the sending end of a drop, from the catalog's scenarios (machines/index.ts): a new
// transfer and one resumed after a restart. Besides the rules both sides keep (drop-model.ts), the sender opens
// a data stream exactly when it starts streaming, and offers exactly once, on leaving Offering.
import assert from 'node:assert/strict'
import { dropSenderMachine } from '../../machines/drop-sender.machine.ts'
import { dropSenderScenarios } from '../../machines/index.ts'
import { dropModelTests, phaseOf } from './drop-model.ts'

dropModelTests({
  machine: dropSenderMachine,
  scenarios: dropSenderScenarios,
  offer: 'Offering',
  check: ({ before, event, after, effects }) => {
    const types = effects.map((effect) => effect.type)
    // The data stream opens on the receiver's consent or resume, and only then.
    const opens = after.matches('Sending') && ['peer.accepted', 'peer.resumed'].includes(event.type)
    assert.deepEqual(
      types.filter((type) => type === 'openDataStream'),
      opens ? ['openDataStream'] : [],
    )
    if (opens) assert.equal(types.at(-1), 'openDataStream')
    const offered = phaseOf(before) === 'Offering' && phaseOf(after) === 'AwaitingConsent'
    assert.deepEqual(
      types.filter((type) => type === 'sendOffer'),
      offered ? ['sendOffer'] : [],
    )
  },
})
