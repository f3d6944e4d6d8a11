// One paired device: keeps a link to it up, over and over, until the pairing is revoked from either side.
// A link is one libp2p connection plus one long-lived `/sdnet/msg/1.0.0` stream; while it is up, the key schedule
// runs as the invoked child `keys` (session-key.machine.ts).
//
// Owns: whether a link is up and which side opened it, the reconnect attempt, and who revoked the pairing.
// Receives: `peer.discovered` and `cmd.*` from the node machine (its `device.forward`); `link.*` facts from the
// messaging service in actors/, which reports only the winning link when both sides dialled; verified `peer.*`
// frames and `keys.framesSent`, which go on to `keys`; `handshake.done` from `keys`.
// Drives (emitted, performed by actors/): `dial`, `openHandshake`, `acceptHandshake`, `closeLink`, `sendRevoke`,
// `announceConnected`, `announceLost`, each with `deviceId` and `peerId`. The key schedule's own effects are
// emitted by `keys`: subscribe to `snapshot.children.keys` on `openHandshake` / `acceptHandshake`, which come
// before the child starts, so its first `sendHello` is not missed.
// Every wait ends: Dialing on `dial`, Reconnecting on `backoff`, Handshaking and Connected through `keys` (its
// handshake and re-key timers fail it). Disconnected waits for discovery, a command or an inbound link by
// design: it is idle, not stuck. Revoked is final and ignores everything.
import { assign, emit, sendTo, setup } from 'xstate'
import { backoffDelay, nextAttempt } from './backoff.ts'
import { type SessionKeyEvent, type SessionKeyParentEvent, sessionKeyMachine } from './session-key.machine.ts'

export type ConnectionRole = 'opener' | 'acceptor'

export type ConnectionInput = {
  deviceId: string
  peerId: string
  /** Passed on to the key schedule: re-key after this many frames sent under the same keys. */
  rekeyAfterFrames: number
  /**
   * Milliseconds. `dial`: how long a dial may take; `handshake`, `rekey`, `rekeyInterval`: the key schedule's;
   * `backoffBase`, `backoffCap`: the reconnect delay before jitter (machines/backoff.ts).
   */
  timeouts: {
    dial: number
    handshake: number
    backoffBase: number
    backoffCap: number
    rekey: number
    rekeyInterval: number
  }
  /** Seeds the reconnect jitter; actors/ draws it at random once per connection. */
  jitterSeed: number
}

/** The key schedule's inputs that arrive through the connection (`link.closed` is the connection's own business). */
export type ConnectionKeyEvent = Exclude<SessionKeyEvent, { type: 'link.closed' }>

export type ConnectionEvent =
  // from the node machine: discovery and the user
  | { type: 'peer.discovered'; peerId: string }
  | { type: 'cmd.connect' }
  | { type: 'cmd.revoke' }
  // from the messaging service: `link.up` when this side opened the link, `link.inbound` when the peer did
  | { type: 'link.up' }
  | { type: 'link.inbound' }
  | { type: 'link.dialFailed'; message?: string }
  | { type: 'link.lost' }
  // from the peer, sealed and verified by actors/
  | { type: 'peer.revoked' }
  | ConnectionKeyEvent

type LinkEffect = { deviceId: string; peerId: string }

export type ConnectionEffect =
  | ({ type: 'dial' } & LinkEffect)
  | ({ type: 'openHandshake' } & LinkEffect)
  | ({ type: 'acceptHandshake' } & LinkEffect)
  | ({ type: 'closeLink' } & LinkEffect)
  | ({ type: 'sendRevoke' } & LinkEffect)
  | ({ type: 'announceConnected' } & LinkEffect)
  | ({ type: 'announceLost' } & LinkEffect)

export type ConnectionOutput = { outcome: 'revoked'; by: 'local' | 'peer' }

type ConnectionContext = ConnectionInput & {
  /** Which backoff step the next wait in Reconnecting uses; 0 again once a link is Connected. */
  attempt: number
  /** This side's role on the link, while one is up. */
  role?: ConnectionRole
  revokedBy?: 'local' | 'peer'
}

// References to the parameterized actions below, with their params.
const linkAs = (role: ConnectionRole) => ({ type: 'recordRole', params: { role } }) as const
const revokedBy = (by: 'local' | 'peer') => ({ type: 'recordRevoker', params: { by } }) as const
const forwardToKeys = { actions: 'forwardToKeys' } as const

export const connectionMachine = setup({
  types: {
    input: {} as ConnectionInput,
    context: {} as ConnectionContext,
    events: {} as ConnectionEvent | SessionKeyParentEvent,
    emitted: {} as ConnectionEffect,
    output: {} as ConnectionOutput,
  },
  actors: { sessionKeys: sessionKeyMachine },
  actions: {
    recordRole: assign((_, params: { role: ConnectionRole }) => params),
    forgetRole: assign({ role: undefined }),
    recordRevoker: assign((_, params: { by: 'local' | 'peer' }) => ({ revokedBy: params.by })),
    countAttempt: assign(({ context }) => ({
      attempt: nextAttempt(context.attempt, {
        base: context.timeouts.backoffBase,
        cap: context.timeouts.backoffCap,
      }),
    })),
    resetAttempts: assign({ attempt: 0 }),
    forwardToKeys: sendTo('keys', ({ event }) => event),
    // effects
    dial: emit(({ context }) => ({ type: 'dial' as const, ...linkOf(context) })),
    openHandshake: emit(({ context }) => ({ type: 'openHandshake' as const, ...linkOf(context) })),
    acceptHandshake: emit(({ context }) => ({ type: 'acceptHandshake' as const, ...linkOf(context) })),
    closeLink: emit(({ context }) => ({ type: 'closeLink' as const, ...linkOf(context) })),
    sendRevoke: emit(({ context }) => ({ type: 'sendRevoke' as const, ...linkOf(context) })),
    announceConnected: emit(({ context }) => ({ type: 'announceConnected' as const, ...linkOf(context) })),
    announceLost: emit(({ context }) => ({ type: 'announceLost' as const, ...linkOf(context) })),
  },
  delays: {
    dial: ({ context }) => context.timeouts.dial,
    backoff: ({ context }) =>
      backoffDelay(
        context.attempt,
        { base: context.timeouts.backoffBase, cap: context.timeouts.backoffCap },
        context.jitterSeed,
      ),
  },
}).createMachine({
  id: 'connection',
  // `role` is always present, so that a context reads the same before the first link and after the last one.
  context: ({ input }) => ({ ...input, attempt: 0, role: undefined }),
  initial: 'Disconnected',
  // `cmd.revoke` ends every non-final state; it is repeated per state, never put on the root, so that a revoked
  // connection stays revoked. What it does depends on what is up: only keys can seal a `revoke` to the peer.
  states: {
    Disconnected: {
      on: {
        'peer.discovered': 'Dialing',
        'cmd.connect': 'Dialing',
        'link.inbound': { target: 'Linked', actions: [linkAs('acceptor'), 'acceptHandshake'] },
        'cmd.revoke': { target: 'Revoked', actions: revokedBy('local') },
      },
    },
    Dialing: {
      entry: 'dial',
      on: {
        'link.up': { target: 'Linked', actions: [linkAs('opener'), 'openHandshake'] },
        'link.dialFailed': 'Reconnecting',
        'link.inbound': { target: 'Linked', actions: [linkAs('acceptor'), 'acceptHandshake'] },
        // The dial is abandoned: whatever it would have opened is closed.
        'cmd.revoke': { target: 'Revoked', actions: [revokedBy('local'), 'closeLink'] },
      },
      after: { dial: 'Reconnecting' },
    },
    Linked: {
      exit: 'forgetRole',
      invoke: {
        id: 'keys',
        src: 'sessionKeys',
        input: ({ context }) => ({
          role: context.role!,
          rekeyAfterFrames: context.rekeyAfterFrames,
          timeouts: {
            handshake: context.timeouts.handshake,
            rekey: context.timeouts.rekey,
            rekeyInterval: context.timeouts.rekeyInterval,
          },
        }),
      },
      on: {
        'peer.helloVerified': forwardToKeys,
        'peer.welcomeVerified': forwardToKeys,
        'peer.rekeyVerified': forwardToKeys,
        'peer.rekeyAckVerified': forwardToKeys,
        'peer.badSignature': forwardToKeys,
        'keys.framesSent': forwardToKeys,
      },
      initial: 'Handshaking',
      // The key schedule ends only by failing (Timeout, BadSignature) or erring: either way the link is unusable.
      states: {
        Handshaking: {
          on: {
            'handshake.done': { target: 'Connected', actions: ['resetAttempts', 'announceConnected'] },
            'xstate.done.actor.keys': { target: '#connection.Reconnecting', actions: 'closeLink' },
            'xstate.error.actor.keys': { target: '#connection.Reconnecting', actions: 'closeLink' },
            'link.lost': { target: '#connection.Reconnecting', actions: 'closeLink' },
            // No keys yet, so no sealed `revoke`: the peer learns when its next link is refused.
            'cmd.revoke': { target: '#connection.Revoked', actions: [revokedBy('local'), 'closeLink'] },
          },
        },
        Connected: {
          on: {
            'xstate.done.actor.keys': {
              target: '#connection.Reconnecting',
              actions: ['closeLink', 'announceLost'],
            },
            'xstate.error.actor.keys': {
              target: '#connection.Reconnecting',
              actions: ['closeLink', 'announceLost'],
            },
            'link.lost': { target: '#connection.Reconnecting', actions: 'announceLost' },
            'cmd.revoke': {
              target: '#connection.Revoked',
              actions: [revokedBy('local'), 'sendRevoke', 'closeLink'],
            },
            'peer.revoked': { target: '#connection.Revoked', actions: [revokedBy('peer'), 'closeLink'] },
          },
        },
      },
    },
    // Every way out uses up one backoff step.
    Reconnecting: {
      exit: 'countAttempt',
      on: {
        'peer.discovered': 'Dialing',
        'cmd.connect': 'Dialing',
        'link.inbound': { target: 'Linked', actions: [linkAs('acceptor'), 'acceptHandshake'] },
        'cmd.revoke': { target: 'Revoked', actions: revokedBy('local') },
      },
      after: { backoff: 'Dialing' },
    },
    Revoked: {
      type: 'final',
      output: ({ context }) => ({ outcome: 'revoked', by: context.revokedBy! }),
    },
  },
  // The final state declares the output; the machine hands it on.
  output: ({ event }) => event.output as ConnectionOutput,
})

function linkOf(context: ConnectionContext): LinkEffect {
  return { deviceId: context.deviceId, peerId: context.peerId }
}
