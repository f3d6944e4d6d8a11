// Runs a machine on a simulated clock and records what it emits, so a test can say "this event, these effects".
import assert from 'node:assert/strict'
import {
  type Actor,
  type AnyActorRef,
  type AnyMachineSnapshot,
  type AnyStateMachine,
  createActor,
  type EmittedFrom,
  type EventFromLogic,
  type InputFrom,
  type InspectionEvent,
  SimulatedClock,
} from 'xstate'
import type { DropInput, TransferEffect } from '../../machines/drop.ts'
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

/** Lets exactly `ms` pass: nothing before it, `effects` at it, and then the machine is done with `output`. */
export function endsAfter<TMachine extends AnyStateMachine, TChildEffect>(
  run: Recorded<TMachine, TChildEffect>,
  ms: number,
  effects: Array<EmittedFrom<TMachine> | TChildEffect>,
  output: unknown,
): void {
  const snapshot = () => run.actor.getSnapshot() as AnyMachineSnapshot
  assert.deepEqual(run.advance(ms - 1), [], `not before ${ms} ms`)
  assert.equal(snapshot().status, 'active')
  assert.deepEqual(run.advance(1), effects, `at ${ms} ms`)
  assert.deepEqual(snapshot().output, output)
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

/** A drop's input in tests: one transfer with the laptop, on the daemon's defaults (reconnect outlasts verify). */
export const DROP_INPUT: DropInput = {
  transferId: 't1',
  deviceId: 'laptop',
  timeouts: { offer: 30_000, consent: 300_000, stall: 30_000, verify: 60_000, reconnect: 600_000 },
}

/** An effect of the transfer DROP_INPUT describes: `dropEffect('persist', { phase: 'Sending' })`. */
export const dropEffect = <const T extends string, const P extends object = Record<never, never>>(
  type: T,
  params?: P,
) =>
  ({ type, transferId: DROP_INPUT.transferId, deviceId: DROP_INPUT.deviceId, ...params }) as {
    type: T
  } & TransferEffect &
    P
