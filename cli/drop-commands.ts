// `sdnet drop DEVICE PATH... | list | accept | reject | cancel | follow | wait`: file drops, through the daemon.
// A transfer runs in the daemon: a command that follows one (drop, accept, follow, wait) may go away (Ctrl-C) and
// the transfer goes on; `sdnet drop follow ID` shows it again.
import { resolve } from 'node:path'
import type { DaemonClient, DropProgress, DropResult, DropSummary } from '../actors/client.ts'
import { connect } from './daemon-commands.ts'
import { contents, offerLine, offerQuestion, outcomeText, shortId, transferRows } from './drop-format.ts'
import { ProgressThrottle, TransferBar, terminalBar } from './drop-progress.ts'
import type { GlobalOptions } from './options.ts'
import type { Output } from './output.ts'

/** One line of the daemon's drop stream (ARCHITECTURE.md "Daemon RPC"). */
type DropLine = Record<string, unknown>

const summaryOf = (line: DropLine) => line as unknown as DropSummary

/** Shows one transfer as its lines come: readable lines and a bar on a terminal, NDJSON with --json. */
class TransferView {
  readonly #out: Output
  readonly #throttle = new ProgressThrottle()
  #bar: TransferBar | undefined
  #summary: Partial<DropSummary> = {}

  constructor(out: Output) {
    this.#out = out
  }

  line(line: DropLine): void {
    const out = this.#out
    // The first line of a stream carries the transfer's summary (only its id once it has ended).
    if (typeof line.direction === 'string') this.#summary = summaryOf(line)
    else if (typeof line.transferId === 'string') this.#summary.transferId ??= line.transferId
    const { name, direction } = this.#summary
    const id = shortId(this.#summary.transferId ?? '')
    switch (line.event) {
      case 'offer':
        out.event(line, offerLine(summaryOf(line)))
        return
      case 'transfer':
        out.event(
          line,
          name === undefined
            ? `Drop ${id} has ended:`
            : `Following drop ${id} ${direction === 'send' ? 'to' : 'from'} ${name}: ${contents(summaryOf(line))}`,
        )
        return
      case 'accepted':
        out.event(
          line,
          direction === 'receive'
            ? `Receiving ${contents(summaryOf(line))} from ${name}…`
            : `${name ?? 'The other device'} accepted.`,
        )
        return
      case 'state':
        out.event(line)
        return
      case 'progress':
        if (out.json) {
          if (this.#throttle.take()) out.event(line)
        } else if (process.stdout.isTTY === true) {
          this.#bar ??= new TransferBar(
            terminalBar(`${direction === 'receive' ? 'from' : 'to'} ${name ?? id}`),
          )
          this.#bar.progress(line as unknown as DropProgress)
        }
    }
  }

  outcome(result: DropResult): void {
    this.#bar?.finish(result.outcome === 'completed')
    this.#bar = undefined
    const { outcome, ...fields } = result
    const line = { event: outcome, ...(outcome === 'cancelled' && { reason: 'Cancelled' }), ...fields }
    this.#out.event(line, outcomeText(result, this.#summary.direction, this.#summary.name))
    if (outcome !== 'completed') process.exitCode = 1
  }

  /** The person stopped following (Ctrl-C): the transfer goes on in the daemon. */
  interrupt(): void {
    this.#bar?.finish(false)
    this.#bar = undefined
    const id = this.#summary.transferId
    if (id === undefined) return
    this.#out.info(
      `\nStopped following drop ${shortId(id)}; it goes on in the daemon. Follow it with \`sdnet drop follow ${shortId(id)}\`, stop it with \`sdnet drop cancel ${shortId(id)}\`.`,
    )
  }
}

/** Runs a streaming drop method and shows the transfer until it ends, or until Ctrl-C (exit code 130). */
async function followTransfer(
  client: DaemonClient,
  method: string,
  params: object,
  out: Output,
): Promise<void> {
  const view = new TransferView(out)
  const onInterrupt = () => {
    view.interrupt()
    process.exit(130)
  }
  process.once('SIGINT', onInterrupt)
  try {
    view.outcome(await client.call<DropResult>(method, params, (line) => view.line(line)))
  } finally {
    process.off('SIGINT', onInterrupt)
  }
}

async function withDaemon(opts: GlobalOptions, use: (client: DaemonClient) => Promise<void>): Promise<void> {
  const client = await connect(opts)
  try {
    await use(client)
  } finally {
    client.close()
  }
}

/** `sdnet drop DEVICE PATH...`: offers files and folders, then shows the transfer until it ends. */
export function dropSendCommand(
  opts: GlobalOptions,
  device: string,
  paths: string[],
  out: Output,
): Promise<void> {
  // The daemon runs elsewhere: it gets absolute paths.
  const absolute = paths.map((path) => resolve(path))
  return withDaemon(opts, (client) => followTransfer(client, 'drop.send', { device, paths: absolute }, out))
}

export function dropAcceptCommand(opts: GlobalOptions, id: string, out: Output): Promise<void> {
  return withDaemon(opts, (client) => followTransfer(client, 'drop.accept', { id }, out))
}

export function dropFollowCommand(opts: GlobalOptions, id: string, out: Output): Promise<void> {
  return withDaemon(opts, (client) => followTransfer(client, 'drop.follow', { id }, out))
}

export function dropAnswerCommand(
  opts: GlobalOptions,
  verb: 'reject' | 'cancel',
  id: string,
  out: Output,
): Promise<void> {
  return withDaemon(opts, async (client) => {
    const { transferId } = await client.call<{ transferId: string }>(`drop.${verb}`, { id })
    const past = verb === 'reject' ? 'rejected' : 'cancelled'
    out.event({ event: past, transferId }, `Drop ${shortId(transferId)} ${past}.`)
  })
}

export function dropListCommand(opts: GlobalOptions, out: Output): Promise<void> {
  return withDaemon(opts, async (client) => {
    const transfers = await client.call<DropSummary[]>('drop.list')
    out.result(transfers, transferRows(transfers))
  })
}

/**
 * `sdnet drop wait`: shows each offer as it arrives. On a terminal it asks, one offer at a time, and follows an
 * accepted one to its end before asking about the next; otherwise (or with --json) it prints the offers, to be
 * answered with `sdnet drop accept | reject ID`. Runs until interrupted.
 */
export function dropWaitCommand(opts: GlobalOptions, out: Output): Promise<void> {
  const ask = !out.json && process.stdin.isTTY === true && process.stdout.isTTY === true
  return withDaemon(opts, async (client) => {
    const queue: DropSummary[] = []
    let answering = false
    let stopAsking!: (err: unknown) => void
    const asking = new Promise<never>((_, reject) => {
      stopAsking = reject
    })
    const answerAll = async () => {
      answering = true
      for (let offer = queue.shift(); offer !== undefined; offer = queue.shift())
        await answer(client, offer, out)
      answering = false
    }
    out.info('Waiting for drops (Ctrl-C to stop)…')
    const waiting = client.call('drop.wait', {}, (line) => {
      if (line.event !== 'offer') return
      if (!ask) {
        out.event(line, offerLine(summaryOf(line)))
        return
      }
      queue.push(summaryOf(line))
      if (!answering) answerAll().catch(stopAsking)
    })
    try {
      await Promise.race([waiting, asking])
    } catch (err) {
      // Ctrl-C at the question ends the wait; the offer stays, to be answered later.
      if ((err as Error).name !== 'ExitPromptError') throw err
      process.exitCode = 130
    }
  })
}

/** Asks about one offer; an accepted one is followed to its end. */
async function answer(client: DaemonClient, offer: DropSummary, out: Output): Promise<void> {
  const { confirm } = await import('@inquirer/prompts')
  const accept = await confirm({ message: offerQuestion(offer), default: false })
  const id = offer.transferId
  try {
    if (accept) await followTransfer(client, 'drop.accept', { id }, out)
    else {
      await client.call('drop.reject', { id })
      out.event({ event: 'rejected', transferId: id }, `Rejected drop ${shortId(id)}.`)
    }
  } catch (err) {
    // The offer ended before the answer (the sender cancelled, or it waited too long): say so, wait for the next.
    out.info(`Drop ${shortId(id)}: ${(err as Error).message}`)
  }
}
