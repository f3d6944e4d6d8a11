// "Every wait ends" (STYLE.md), proven from the definitions of every registered machine, not from runs.
// For each non-final state that waits (one left at once by an eventless transition does not):
// - timeout: an `after` on it or an ancestor that always does something when it fires (its last branch has no
//   guard and a target), or an invoked machine whose end it handles (`xstate.done/error.actor.<id>`) and which
//   ends on time alone from every state (its own timers, followed with no other event, reach a final state);
// - failure: an event that leads to a failure state (Failed, Cancelled, Rejected, ...), or a failure event
//   (`cmd.cancel`, `link.lost`, `peer.failed`, `xstate.error.actor.*`, ...) that leads somewhere a final state
//   can be reached from;
// - end: a final state of the machine is reachable from it (any events, guards ignored).
// States that wait by design are listed below with their reason; a listed state that no longer needs it fails.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type AnyStateMachine, type AnyStateNode, StateMachine, setup } from 'xstate'
import { machines } from '../../machines/index.ts'
import { ALWAYS, stateNodes, type TransitionInfo, transitionsOf } from '../../scripts/machine-graph.ts'

type Rule = 'timeout' | 'failure'

/** States that are idle by design: each waives the rules it names, for the reason given. Keyed by registry name. */
const idleByDesign: Record<string, Array<{ state: string; waives: Rule[]; reason: string }>> = {
  node: [
    {
      state: 'Running',
      waives: ['timeout'],
      reason: 'a daemon runs until it is told to stop (cmd.stop) or its transport fails (transport.failed)',
    },
  ],
  connection: [
    {
      state: 'Disconnected',
      waives: ['timeout'],
      reason: 'waits for discovery, cmd.connect or an inbound link: idle, not stuck; cmd.revoke ends it',
    },
  ],
}

/** Names of states that are a failed (or abandoned) outcome. */
const FAILURE_STATE = /Fail|Cancel|Reject|Expire|Revoke|Closed|Lost|Error|Abort/
/** Events that report a failure or abandon the work: `cmd.cancel`, `cmd.stop`, `link.lost`, `peer.failed`, ... */
const FAILURE_EVENT =
  /^xstate\.error\.|(?:^|\.)(?:cancel|stop|revoke|reject|abort|badSignature|proofRejected)$|(?:failed|Failed|lost|Lost|closed|revoked|rejected)$/

const lineage = (node: AnyStateNode): AnyStateNode[] =>
  node.parent === undefined ? [node] : [node, ...lineage(node.parent)]

/** The transitions that can be taken while `leaf` is active: its own and its ancestors', the root's included. */
const transitionsFrom = (leaf: AnyStateNode): TransitionInfo[] => lineage(leaf).flatMap(transitionsOf)

/** The atomic states entering `node` ends up in (initial children, every region of a parallel state). */
function entered(node: AnyStateNode): AnyStateNode[] {
  if (node.type === 'parallel') return Object.values(node.states).flatMap(entered)
  if (node.type === 'compound') return (node.initial?.target ?? []).flatMap(entered)
  if (node.type === 'history') return entered(node.parent!)
  return [node]
}

const isDone = (node: AnyStateNode) => node.type === 'final' && node.parent === node.machine.root
const isTime = (t: TransitionInfo) => t.delay !== undefined || t.event === ALWAYS

/** The atomic states reachable from `from` through transitions that `follow` accepts (guards ignored). */
function reachable(from: AnyStateNode, follow: (t: TransitionInfo) => boolean): Set<AnyStateNode> {
  const seen = new Set<AnyStateNode>([from])
  const queue = [from]
  for (let node = queue.shift(); node !== undefined; node = queue.shift()) {
    if (isDone(node)) continue
    for (const t of transitionsFrom(node).filter(follow)) {
      for (const next of t.targets.flatMap((id) => entered(node.machine.getStateNodeById(id)))) {
        if (!seen.has(next)) {
          seen.add(next)
          queue.push(next)
        }
      }
    }
  }
  return seen
}

const canEnd = (from: AnyStateNode, follow: (t: TransitionInfo) => boolean = () => true) =>
  [...reachable(from, follow)].some(isDone)

const waitingStates = (machine: AnyStateMachine) =>
  stateNodes(machine.root).filter((node) => node.type === 'atomic')

/** Time alone (timers and eventless transitions, nothing else) ends the machine, from wherever it is. */
const endsOnTimeAlone = (machine: AnyStateMachine) =>
  waitingStates(machine).every((node) => canEnd(node, isTime))

/** Grouped by event: a group that always does something has a last branch without guard, with a target. */
function alwaysActs(transitions: TransitionInfo[], event: string): boolean {
  const last = transitions.filter((t) => t.event === event).at(-1)
  return last !== undefined && last.guard === undefined && last.targets.length > 0
}

/** How the state's wait ends on time, or undefined when it does not. */
function timeoutProof(leaf: AnyStateNode): string | undefined {
  const transitions = transitionsFrom(leaf)
  const timer = transitions.find((t) => t.delay !== undefined && alwaysActs(transitions, t.event))
  if (timer !== undefined) return `after ${timer.delay}`
  for (const holder of lineage(leaf)) {
    for (const invoke of holder.invoke) {
      const logic =
        typeof invoke.src === 'string' ? holder.machine.implementations.actors[invoke.src] : invoke.src
      if (!(logic instanceof StateMachine) || !endsOnTimeAlone(logic)) continue
      const handled = transitions.some(
        (t) =>
          t.targets.length > 0 &&
          (t.event === `xstate.done.actor.${invoke.id}` || t.event === `xstate.error.actor.${invoke.id}`),
      )
      if (handled) return `through ${invoke.id} (${logic.id}), which ends on its own timers`
    }
  }
  return undefined
}

/**
 * How the state's wait ends on a failure, or undefined when it does not. The plainest proof is shown: a failure
 * event into a failure state, else any event into a failure state, else a failure event that can still end.
 */
function failureProof(leaf: AnyStateNode): string | undefined {
  const candidates = transitionsFrom(leaf)
    .filter((t) => !isTime(t) && t.targets.length > 0)
    .map((t) => {
      const targets = t.targets.map((id) => leaf.machine.getStateNodeById(id))
      const intoFailure = targets.some((target) => FAILURE_STATE.test(target.key))
      const failureEvent = FAILURE_EVENT.test(t.event)
      const ends = targets.some((target) => entered(target).some((n) => canEnd(n)))
      const rank = failureEvent && intoFailure ? 0 : intoFailure ? 1 : failureEvent && ends ? 2 : undefined
      return { rank, proof: `${t.event} -> ${targets.map((target) => target.key).join(', ')}` }
    })
    .filter((c) => c.rank !== undefined)
  return candidates.sort((a, b) => a.rank! - b.rank!)[0]?.proof
}

/** Every broken rule, as `<state>: <rule>`; `waived` states are checked with their waived rules left out. */
function livenessProblems(machine: AnyStateMachine, waived: Map<string, Rule[]> = new Map()): string[] {
  const problems: string[] = []
  for (const leaf of waitingStates(machine)) {
    const name = leaf.path.join('.')
    const waives = waived.get(name) ?? []
    const transient = alwaysActs(transitionsFrom(leaf), ALWAYS)
    if (!transient && !waives.includes('timeout') && timeoutProof(leaf) === undefined) {
      problems.push(`${name}: no way out on a timeout (an after, or an invoked machine that times out)`)
    }
    if (!transient && !waives.includes('failure') && failureProof(leaf) === undefined) {
      problems.push(
        `${name}: no way out on a failure (cmd.cancel, link.lost, peer.failed ... to a final state)`,
      )
    }
    if (!canEnd(leaf)) problems.push(`${name}: no final state is reachable`)
  }
  return problems
}

for (const { name, machine } of machines) {
  test(`${name}: every wait ends on a timeout and on a failure, and every state can reach an end`, (t) => {
    const waivers = idleByDesign[name] ?? []
    const waived = new Map(waivers.map((w) => [w.state, w.waives]))
    assert.deepEqual(
      livenessProblems(machine, waived),
      [],
      `${name} has a state that can wait forever: give it a way out, or list it in idleByDesign with the reason`,
    )
    for (const leaf of waitingStates(machine)) {
      const state = leaf.path.join('.')
      const timeout = timeoutProof(leaf) ?? (waived.get(state)?.includes('timeout') ? 'waived' : 'transient')
      const failure = failureProof(leaf) ?? (waived.get(state)?.includes('failure') ? 'waived' : 'transient')
      t.diagnostic(`${state}: timeout ${timeout}; failure ${failure}`)
    }
  })
}

test('every idle-by-design entry names a waiting state of a registered machine and is still needed', () => {
  const stale: string[] = []
  for (const [name, waivers] of Object.entries(idleByDesign)) {
    const machine = machines.find((entry) => entry.name === name)?.machine
    if (machine === undefined) {
      stale.push(`${name}: no such machine in machines/index.ts`)
      continue
    }
    const unwaived = livenessProblems(machine)
    for (const { state, waives } of waivers) {
      if (!waitingStates(machine).some((leaf) => leaf.path.join('.') === state)) {
        stale.push(`${name}.${state}: no such waiting state`)
      }
      for (const rule of waives) {
        if (!unwaived.some((problem) => problem.startsWith(`${state}: no way out on a ${rule}`))) {
          stale.push(`${name}.${state}: keeps its ${rule} rule without the waiver; remove it`)
        }
      }
    }
  }
  assert.deepEqual(stale, [])
})

test('the proof finds a state that waits forever, one that cannot fail, and one that cannot end', () => {
  const stuck = setup({ delays: { step: 1000 } }).createMachine({
    id: 'stuck',
    initial: 'Waiting',
    states: {
      // waits for `go` only: no timer, no failure
      Waiting: { on: { go: 'Working' } },
      // times out, but into a loop that never ends
      Working: { on: { 'cmd.cancel': 'Cancelled' }, after: { step: 'Looping' } },
      Looping: { on: { tick: 'Looping' }, after: { step: 'Looping' } },
      Cancelled: { type: 'final' },
    },
  })
  assert.deepEqual(livenessProblems(stuck), [
    'Waiting: no way out on a timeout (an after, or an invoked machine that times out)',
    'Waiting: no way out on a failure (cmd.cancel, link.lost, peer.failed ... to a final state)',
    'Looping: no way out on a failure (cmd.cancel, link.lost, peer.failed ... to a final state)',
    'Looping: no final state is reachable',
  ])
  assert.deepEqual(livenessProblems(stuck, new Map([['Waiting', ['timeout', 'failure']]])), [
    'Looping: no way out on a failure (cmd.cancel, link.lost, peer.failed ... to a final state)',
    'Looping: no final state is reachable',
  ])
})

test('a wait handed to an invoked machine counts only when that machine times out by itself', () => {
  const child = (timed: boolean) =>
    setup({ delays: { limit: 1000 } }).createMachine({
      id: timed ? 'timed' : 'patient',
      initial: 'Waiting',
      states: {
        Waiting: timed ? { after: { limit: 'Over' } } : { on: { done: 'Over' } },
        Over: { type: 'final' },
      },
    })
  const parent = (timed: boolean) =>
    setup({ actors: { work: child(timed) } }).createMachine({
      id: 'parent',
      initial: 'Busy',
      states: {
        Busy: {
          invoke: { id: 'work', src: 'work' },
          on: { 'xstate.done.actor.work': 'Idle', 'cmd.cancel': 'Cancelled' },
        },
        Idle: { type: 'final' },
        Cancelled: { type: 'final' },
      },
    })
  assert.deepEqual(livenessProblems(parent(true)), [])
  assert.deepEqual(livenessProblems(parent(false)), [
    'Busy: no way out on a timeout (an after, or an invoked machine that times out)',
  ])
})
