// Runs a machine on a simulated clock and records what it emits, so a test can say "this event, these effects".
import {
  type Actor,
  type AnyActorRef,
  type AnyStateMachine,
  createActor,
  type EmittedFrom,
  type EventFromLogic,
  type InputFrom,
  type InspectionEvent,
  SimulatedClock,
} from 'xstate'
import type { NodeInput } from '../../machines/node.machine.ts'

/** `TChildEffect`: what the children passed to `follow` emit, recorded in the same stream. */
export type Recorded<TMachine extends AnyStateMachine, TChildEffect = never> = {
  actor: Actor<TMachine>
  clock: SimulatedClock
  /** Sends `event` and returns the effects it caused, in order. */
  send(event: EventFromLogic<TMachine>): Array<EmittedFrom<TMachine> | TChildEffect>
  /** Advances the simulated clock by `ms` and returns the effects emitted meanwhile. */
  advance(ms: number): Array<EmittedFrom<TMachine> | TChildEffect>
  /** The effects emitted since the last `send`, `advance` or `drain` (e.g. by a settled promise). */
  drain(): Array<EmittedFrom<TMachine> | TChildEffect>
  /** Records what `child` emits from now on into the same stream, in the order the effects happen. */
  follow(child: AnyActorRef): void
}

export function startRecorded<TMachine extends AnyStateMachine, TChildEffect = never>(
  machine: TMachine,
  input: InputFrom<TMachine>,
  inspect?: (event: InspectionEvent) => void,
): Recorded<TMachine, TChildEffect> {
  const clock = new SimulatedClock()
  const actor = createActor(machine, { input, clock, inspect }) as Actor<TMachine>
  let effects: Array<EmittedFrom<TMachine> | TChildEffect> = []
  actor.on('*', (effect) => effects.push(effect as EmittedFrom<TMachine>))
  const follow = (child: AnyActorRef) => {
    child.on('*', (effect: unknown) => effects.push(effect as TChildEffect))
  }
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
    follow,
  }
}

/** The node machine's input in tests: the daemon's defaults, re-keying after 1000 frames. */
export const NODE_INPUT: NodeInput = {
  timeouts: { start: 30_000, stop: 10_000 },
  connection: {
    rekeyAfterFrames: 1_000,
    timeouts: {
      dial: 5_000,
      handshake: 10_000,
      backoffBase: 1_000,
      backoffCap: 60_000,
      rekey: 10_000,
      rekeyInterval: 86_400_000,
    },
  },
}
