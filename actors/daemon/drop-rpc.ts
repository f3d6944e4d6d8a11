// The daemon's file drop methods (ARCHITECTURE.md "Daemon RPC"): `drop.send`, `drop.list`, `drop.accept`,
// `drop.reject`, `drop.cancel`, `drop.wait` and `drop.follow`, on the node's `drop` API. A transfer belongs to the
// node, not to the client that started or accepted it: a client that goes away stops hearing of it and the
// transfer goes on (unlike a pairing session); `drop.follow` finds it again. A transfer is named by its id or a
// unique prefix of it (4+ characters), as the drop service finds it.
import { isAbsolute } from 'node:path'
import type { DropApi, DropResult, DropSummary, DropTransfer } from '../drop/index.ts'
import { BadRequestError } from '../errors.ts'
import { type Params, stringParam } from './params.ts'

/** What a drop method needs of its client connection: the node's drops and what to undo when it leaves. */
export interface DropScope {
  drops: DropApi
  cleanups: Set<() => void>
}

type Emit = (event: object) => void

/** Answers a `drop.*` request. */
export async function handleDrop(
  method: string,
  params: Params,
  scope: DropScope,
  emit: Emit,
): Promise<unknown> {
  const { drops } = scope
  switch (method) {
    case 'drop.send': {
      const device = stringParam(params, 'device')
      const transfer = await drops.send(device, pathsParam(params))
      return follow(transfer, 'offer', scope, emit)
    }
    case 'drop.list':
      return drops.list()
    case 'drop.accept': {
      const transfer = drops.accept(stringParam(params, 'id'))
      return follow(transfer, 'accepted', scope, emit)
    }
    case 'drop.reject':
    case 'drop.cancel': {
      // `get` finds the transfer as the verbs do, and gives its full id for the answer.
      const { transferId } = drops.get(stringParam(params, 'id'))
      drops[method === 'drop.reject' ? 'reject' : 'cancel'](transferId)
      return { transferId }
    }
    case 'drop.follow': {
      const transfer = drops.get(stringParam(params, 'id'))
      return follow(transfer, 'transfer', scope, emit)
    }
    case 'drop.wait':
      return waitForOffers(scope, emit)
    default:
      throw new BadRequestError(`unknown method "${method}"`)
  }
}

/** Absolute paths only: the CLI resolves them against its own working directory, which the daemon does not share. */
function pathsParam(params: Params): string[] {
  const { paths } = params
  if (
    !Array.isArray(paths) ||
    paths.length === 0 ||
    !paths.every((p) => typeof p === 'string' && isAbsolute(p))
  ) {
    throw new BadRequestError('"paths" must be a non-empty array of absolute paths')
  }
  return paths
}

/**
 * Streams a transfer until it ends and answers with its result. The first line (`offer` for the sender,
 * `accepted` for the receiver that accepted it, `transfer` for a follower) carries its summary; then come its
 * `state`, `accepted` and `progress` events (at most 4 per second, as the node reports them).
 */
async function follow(
  transfer: DropTransfer,
  first: 'offer' | 'accepted' | 'transfer',
  scope: DropScope,
  emit: Emit,
): Promise<DropResult> {
  const { transferId } = transfer
  let accepted = first === 'accepted'
  const off = transfer.on((event) => {
    if (event.type === 'done' || (event.type === 'accepted' && accepted)) return
    if (event.type === 'accepted') accepted = true
    const { type, ...fields } = event
    emit({ event: type, ...fields })
  })
  scope.cleanups.add(off)
  const summary = scope.drops.list().find((s) => s.transferId === transferId)
  emit({ event: first, ...(summary ?? { transferId }) })
  try {
    return await transfer.result
  } finally {
    off()
    scope.cleanups.delete(off)
  }
}

/**
 * Streams every offer waiting for consent (those that came before the call, then each new one) as an `offer`
 * line; answered only when the client leaves. Accepting or rejecting is the client's next call.
 */
function waitForOffers(scope: DropScope, emit: Emit): Promise<never> {
  const shown = new Set<string>()
  const show = (summary: DropSummary) => {
    if (shown.has(summary.transferId)) return
    shown.add(summary.transferId)
    // An offer's accept() and reject() do not survive JSON: the line holds its summary.
    emit({ event: 'offer', ...summary })
  }
  // Subscribed before listing, so that an offer arriving in between is not missed (and shown once).
  const off = scope.drops.on('offer', show)
  scope.cleanups.add(off)
  for (const summary of scope.drops.list()) {
    if (summary.direction === 'receive' && summary.state === 'Offered') show(summary)
  }
  return new Promise<never>(() => {})
}
