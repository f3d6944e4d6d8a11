// `sdnet pair generate | join | list | accept | reject | cancel`.
import { createInterface } from 'node:readline/promises'
import { completeWord, type DeviceSummary, parseCode, type SessionSummary } from '../actors/client.ts'
import { connect } from './daemon-commands.ts'
import type { GlobalOptions } from './options.ts'
import { type Output, UsageError } from './output.ts'

type PairOutcome =
  | { sessionId: string; outcome: 'paired'; device: DeviceSummary; sas: string }
  | { sessionId: string; outcome: 'failed'; reason: string; message: string }

const describe = (d: DeviceSummary) => `${d.name} [${d.fingerprint}]`

function reportOutcome(result: PairOutcome, out: Output): void {
  if (result.outcome === 'paired') {
    const { sessionId, device, sas } = result
    out.event(
      {
        event: 'paired',
        sessionId,
        device: { id: device.id, name: device.name, fingerprint: device.fingerprint },
        sas,
      },
      `Paired with ${describe(device)}. Both screens showed ${sas}.`,
    )
    return
  }
  const { sessionId, reason, message } = result
  out.event({ event: 'failed', sessionId, reason, message }, `Pairing failed (${reason}): ${message}`)
  process.exitCode = 1
}

export async function generateCommand(
  opts: GlobalOptions,
  flags: { autoAccept?: boolean; timeout?: string },
  out: Output,
): Promise<void> {
  let timeoutSeconds: number | undefined
  if (flags.timeout !== undefined) {
    timeoutSeconds = Number(flags.timeout)
    if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0 || timeoutSeconds > 86_400) {
      throw new UsageError(`--timeout "${flags.timeout}" must be a number of seconds between 1 and 86400`)
    }
  }
  const client = await connect(opts)
  const interactive = !out.json && process.stdin.isTTY === true && flags.autoAccept !== true
  // Ends a pending "Accept?" prompt when the session ends some other way (the joiner left, the timer fired).
  const answered = new AbortController()
  try {
    const result = await client.call<PairOutcome>(
      'pair.generate',
      { autoAccept: flags.autoAccept === true, ...(timeoutSeconds !== undefined && { timeoutSeconds }) },
      (event) => {
        switch (event.event) {
          case 'code': {
            const expires = new Date(event.expiresAt as number).toLocaleTimeString()
            out.event(
              event,
              `Pairing code (valid until ${expires}):\n\n    ${event.code}\n\nOn the other device run \`sdnet pair join\` and type these words when it asks\n(typing them on its command line would leave them in the shell history).\nWaiting for it… (session ${event.sessionId})`,
            )
            return
          }
          case 'state':
            out.event(event)
            return
          case 'request': {
            const device = event.device as DeviceSummary
            out.event(
              event,
              `${describe(device)} knows the code and wants to pair. Check that it shows ${event.sas}.`,
            )
            if (interactive) void confirm(event.sessionId as string, client, answered.signal)
            else if (!out.json) out.info(`Accept with: sdnet pair accept ${event.sessionId}  (or reject)`)
          }
        }
      },
    )
    answered.abort()
    reportOutcome(result, out)
  } finally {
    answered.abort()
    client.close()
  }
}

async function confirm(
  sessionId: string,
  client: Awaited<ReturnType<typeof connect>>,
  signal: AbortSignal,
): Promise<void> {
  const rl = createInterface({ input: process.stdin, output: process.stdout })
  try {
    const answer = await rl.question('Accept? [y/N] ', { signal })
    const method = /^y(es)?$/i.test(answer.trim()) ? 'pair.accept' : 'pair.reject'
    await client.call(method, { sessionId })
  } catch {
    // the session ended before the answer, or the daemon refused it: the outcome line says what happened
  } finally {
    rl.close()
  }
}

export async function joinCommand(opts: GlobalOptions, words: string[], out: Output): Promise<void> {
  const code = words.length > 0 ? words : await promptCode()
  try {
    parseCode(code) // caught here, before any network traffic
  } catch (err) {
    if ((err as Error).name !== 'InvalidCodeError') throw err
    out.event(
      { event: 'failed', reason: 'InvalidCode', message: (err as Error).message },
      (err as Error).message,
    )
    process.exitCode = 1
    return
  }
  const client = await connect(opts)
  try {
    const result = await client.call<PairOutcome>('pair.join', { code }, (event) => {
      if (event.event === 'state') out.event(event, `  … ${event.state}`)
      if (event.event === 'comparison') {
        out.event(
          event,
          `The other device should now show ${event.sas}. If it shows other digits, reject there.`,
        )
      }
    })
    reportOutcome(result, out)
  } finally {
    client.close()
  }
}

/** Asks for the 12 words on a terminal, completing BIP39 words with Tab. */
async function promptCode(): Promise<string[]> {
  const rl = createInterface({
    input: process.stdin,
    output: process.stdout,
    completer: (line: string): [string[], string] => {
      const current = line.split(/\s+/).pop() ?? ''
      const hits = current.length === 0 ? [] : completeWord(current.toLowerCase())
      return [hits, current]
    },
  })
  try {
    const answer = await rl.question(
      'Type the 12 words shown on the other device (Tab completes a word):\n> ',
    )
    return answer.trim().split(/\s+/).filter(Boolean)
  } finally {
    rl.close()
  }
}

export async function listCommand(opts: GlobalOptions, out: Output): Promise<void> {
  const client = await connect(opts)
  const sessions = await client.call<SessionSummary[]>('pair.list')
  client.close()
  const rows = sessions.map(
    (s) => `  ${s.sessionId}  ${s.role.padEnd(9)} ${s.state}${s.device ? `  ${describe(s.device)}` : ''}`,
  )
  out.result(sessions, sessions.length === 0 ? 'No pairing sessions.' : rows.join('\n'))
}

export async function sessionCommand(
  opts: GlobalOptions,
  verb: 'accept' | 'reject' | 'cancel',
  sessionId: string,
  out: Output,
): Promise<void> {
  const client = await connect(opts)
  try {
    await client.call(`pair.${verb}`, { sessionId })
  } finally {
    client.close()
  }
  const past = { accept: 'accepted', reject: 'rejected', cancel: 'cancelled' }[verb]
  out.event({ event: past, sessionId }, `Session ${sessionId} ${past}.`)
}
