// Runs a machine on a simulated clock and records what it emits, so a test can say "this event, these effects".
import {
  type Actor,
  type AnyStateMachine,
  createActor,
  type EmittedFrom,
  type EventFromLogic,
  type InputFrom,
  type InspectionEvent,
  SimulatedClock,
} from 'xstate'

export type Recorded<TMachine extends AnyStateMachine> = {
  actor: Actor<TMachine>
  clock: SimulatedClock
  /** Sends `event` and returns the effects it caused, in order. */
  send(event: EventFromLogic<TMachine>): Array<EmittedFrom<TMachine>>
  /** Advances the simulated clock by `ms` and returns the effects emitted meanwhile. */
  advance(ms: number): Array<EmittedFrom<TMachine>>
  /** The effects emitted since the last `send`, `advance` or `drain` (e.g. by a settled promise). */
  drain(): Array<EmittedFrom<TMachine>>
}

export function startRecorded<TMachine extends AnyStateMachine>(
  machine: TMachine,
  input: InputFrom<TMachine>,
  inspect?: (event: InspectionEvent) => void,
): Recorded<TMachine> {
  const clock = new SimulatedClock()
  const actor = createActor(machine, { input, clock, inspect }) as Actor<TMachine>
  let effects: Array<EmittedFrom<TMachine>> = []
  actor.on('*', (effect) => effects.push(effect as EmittedFrom<TMachine>))
  actor.start()
  const drain = () => {
    const taken = effects
    effects = []
    return taken
  }
  return {
    actor,
    clock,
    send: (event) => {
      actor.send(event)
      return drain()
    },
    advance: (ms) => {
      clock.increment(ms)
      return drain()
    },
    drain,
  }
}
