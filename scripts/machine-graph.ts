// What a machine definition contains, read from `machine.root`: every state and every transition, with guards,
// delays and actions named the way a person reads them. Pure (xstate only): the diagram script, the coverage
// gate and the liveness proof all describe a machine through this one module, so they agree on what a
// "transition" is. Knows nothing about sdnet's machines.
import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate'

export type TransitionInfo = {
  /** Stable identity of the transition: `<source> <event> #<index among the source's transitions on event>`. */
  key: string
  /** State node id, e.g. `initiator.ChallengeSent`; the machine id for transitions declared on the root. */
  source: string
  /** Event type; `xstate.after.<delay>.<state id>` for `after`, `(always)` for eventless transitions. */
  event: string
  /** State node ids; empty for a transition that stays put (actions only, or an explicit no-op). */
  targets: string[]
  guard?: string
  /** True for `reenter: true`: the source state is exited and entered again. */
  reenter: boolean
  /** For `after` transitions: the delay's name in `setup({ delays })`, or its milliseconds. */
  delay?: string | number
  /** Names of the actions the transition runs, in order. */
  actions: string[]
}

export const ALWAYS = '(always)'

/** Every state node below `node`, depth first in document order. */
export function stateNodes(node: AnyStateNode): AnyStateNode[] {
  return Object.values(node.states).flatMap((child) => [child, ...stateNodes(child)])
}

/** Every state node id of the machine below the root, in document order (final states included). */
export function listStates(machine: AnyStateMachine): string[] {
  return stateNodes(machine.root).map((node) => node.id)
}

/** A readable name for a guard: `isAutoAccept`, `not(isBoundPeer)`, `and(a, b)`, `inline` for an anonymous one. */
export function describeGuard(guard: unknown): string | undefined {
  if (guard === undefined) return undefined
  if (typeof guard === 'string') return guard
  if (typeof guard === 'function') {
    // `not` / `and` / `or` are functions that carry their operands in `.guards`
    const operands = (guard as { guards?: unknown[] }).guards
    if (operands !== undefined) return `${guard.name}(${operands.map(describeGuard).join(', ')})`
    return guard.name || 'inline'
  }
  return (guard as { type: string }).type
}

/**
 * A readable name for an action: its name in `setup({ actions })`, or the built-in it is (`xstate.raise`), or
 * `inline`. Undefined for the timer actions xstate adds by itself for `after`.
 */
export function describeAction(action: unknown): string | undefined {
  if (typeof action === 'string') return action
  const { type, id, sendId } = action as { type?: unknown; id?: unknown; sendId?: unknown }
  // the raise that starts an `after` timer on entry, and the cancel that stops it on exit
  for (const ref of [id, sendId])
    if (typeof ref === 'string' && ref.startsWith('xstate.after.')) return undefined
  if (typeof type === 'string') return type
  if (typeof action === 'function') return action.name || 'inline'
  return 'inline'
}

function namedActions(actions: readonly unknown[]): string[] {
  return actions.map(describeAction).filter((name) => name !== undefined)
}

/** The named entry actions of a state (the timers and invocations xstate starts on entry are left out). */
export function entryActions(node: AnyStateNode): string[] {
  return namedActions(node.entry).filter((name) => name !== 'xstate.spawnChild')
}

/** The named exit actions of a state (stopping its invoked actors is left out). */
export function exitActions(node: AnyStateNode): string[] {
  return namedActions(node.exit).filter((name) => name !== 'xstate.stopChild')
}

function ownTransitions(node: AnyStateNode): Array<[event: string, transitions: AnyTransitionDefinition[]]> {
  const byEvent: Array<[string, AnyTransitionDefinition[]]> = [...node.transitions.entries()]
  if (node.always !== undefined && node.always.length > 0) byEvent.push([ALWAYS, node.always])
  return byEvent
}

/** The key of a transition definition, as `listTransitions` names it (works on `.provide()` copies too). */
export function transitionKey(transition: AnyTransitionDefinition): string {
  const source = transition.source
  const event =
    transition.eventType === '' || transition.eventType === undefined ? ALWAYS : transition.eventType
  const siblings = event === ALWAYS ? (source.always ?? []) : (source.transitions.get(event) ?? [])
  const index = siblings.indexOf(transition)
  if (index < 0) throw new Error(`transition ${source.id} ${event} is not part of its source state`)
  return `${source.id} ${event} #${index}`
}

/** The transitions one state node declares (not its ancestors' or descendants'), in document order. */
export function transitionsOf(node: AnyStateNode): TransitionInfo[] {
  const delays = new Map(node.after.map((t) => [t.eventType, (t as { delay?: string | number }).delay]))
  return ownTransitions(node).flatMap(([event, transitions]) =>
    transitions.map((transition, index) => {
      const delay = delays.get(event)
      return {
        key: `${node.id} ${event} #${index}`,
        source: node.id,
        event,
        targets: (transition.target ?? []).map((target: AnyStateNode) => target.id),
        guard: describeGuard(transition.guard),
        reenter: transition.reenter,
        ...(delay !== undefined && { delay }),
        actions: namedActions(transition.actions),
      }
    }),
  )
}

/** Every transition the machine declares, root included, in document order. */
export function listTransitions(machine: AnyStateMachine): TransitionInfo[] {
  return [machine.root, ...stateNodes(machine.root)].flatMap(transitionsOf)
}

/**
 * The event as a person names it: `after codeTtl`, `after 100ms`, `always`, `done(startTransport)` for an
 * invoked actor's output, `error(startTransport)` for its failure; other events as they are.
 */
export function describeEvent(t: Pick<TransitionInfo, 'event' | 'delay'>): string {
  if (t.delay !== undefined) return typeof t.delay === 'number' ? `after ${t.delay}ms` : `after ${t.delay}`
  if (t.event === ALWAYS) return 'always'
  for (const [prefix, name] of [
    ['xstate.done.actor.', 'done'],
    ['xstate.error.actor.', 'error'],
    ['xstate.done.state.', 'done'],
  ] as const) {
    if (t.event.startsWith(prefix)) return `${name}(${t.event.slice(prefix.length)})`
  }
  return t.event
}

/** One line per transition, for assertion messages: `source --event [guard]--> targets`. */
export function formatTransition(t: TransitionInfo): string {
  const guard = t.guard === undefined ? '' : ` [${t.guard}]`
  return `${t.source} --${t.event}${guard}--> ${t.targets.join(', ') || '(stays)'}`
}
