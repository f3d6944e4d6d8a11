// Pairing end to end: the real `sdnet` CLI and daemons on three virtual hosts (network namespaces on one
// bridge), finding each other with real mDNS multicast. Every test makes its own devices, so no test depends on
// another's pairings, and stops their daemons when it ends.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { after, before, describe, type TestContext, test } from 'node:test'
import bip39 from 'bip39'
import {
  type CliResult,
  createTestbed,
  type Device,
  type Identity,
  type JsonObject,
  lastEvent,
  object,
  type Testbed,
  text,
} from '../helpers/cli.ts'
import { canCreateNamespaces } from '../helpers/netns.ts'

const capability = canCreateNamespaces()
const TEST_TIMEOUT_MS = 60_000
const JOINER_STATES = new Set([
  'Discovering',
  'Connecting',
  'RequestSent',
  'ChallengeReceived',
  'ResponseSent',
])

describe('pairing across a virtual LAN', { skip: capability.ok ? false : capability.reason }, () => {
  let bed: Testbed

  before(async () => {
    bed = await createTestbed(3)
  })

  after(async () => {
    const errors = await bed?.cleanup()
    if (errors?.length) console.error(`cleanup: ${errors.map((error) => error.message).join('\n')}`)
  })

  /** Stops daemons; a failing `stop` is reported (the restart test is the one that asserts it). */
  async function stopDevices(t: TestContext, devices: Device[]): Promise<void> {
    for (const error of await bed.stop(devices)) t.diagnostic(`cleanup: ${error.message.split('\n')[0]}`)
  }

  /** Fresh devices, one per host in order, with running daemons that stop when the test ends. */
  async function runningDevices(t: TestContext, names: string[]): Promise<Device[]> {
    const devices = await Promise.all(names.map((name, index) => bed.device(index, name)))
    t.after(() => stopDevices(t, devices))
    await Promise.all(devices.map((device) => device.start()))
    return devices
  }

  test('pairs with the code when the initiator auto-accepts', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const [alpha, beta] = (await runningDevices(t, ['alpha', 'beta'])) as [Device, Device]
    const session = await alpha.generate(['--auto-accept'])

    const joined = await beta.run(['pair', 'join', session.code, '--json'])
    const generated = await session.cli.finished()

    const joinerView = expectJoinerPaired(joined, alpha.identity)
    const initiatorView = expectInitiatorPaired(generated, session.sessionId, beta.identity)
    assert.equal(joinerView.sas, initiatorView.sas, 'both sides derive the same SAS')
    await expectStored(alpha, beta.identity)
    await expectStored(beta, alpha.identity)
  })

  test('pairs after the initiator accepts the request', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const [alpha, beta] = (await runningDevices(t, ['alpha', 'beta'])) as [Device, Device]
    const session = await alpha.generate()
    const joining = beta.spawn(['pair', 'join', session.code, '--json'])

    const request = await session.cli.waitFor('request')
    assert.equal(request.sessionId, session.sessionId)
    expectDevice(request.device, beta.identity, 'request.device')
    const sas = expectSas(request.sas, 'request.sas')
    assert.ok(joining.running, `the joiner waits for the answer.\n${joining.transcript()}`)
    expectAnswer(
      await alpha.run(['pair', 'accept', session.sessionId, '--json']),
      'accepted',
      session.sessionId,
    )

    const joined = await joining.finished()
    const generated = await session.cli.finished()
    assert.equal(
      expectJoinerPaired(joined, alpha.identity).sas,
      sas,
      'the joiner ends with the SAS the request showed',
    )
    assert.equal(expectInitiatorPaired(generated, session.sessionId, beta.identity).sas, sas)
    await expectStored(alpha, beta.identity)
    await expectStored(beta, alpha.identity)
  })

  test('a rejected request pairs nobody', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const [alpha, beta] = (await runningDevices(t, ['alpha', 'beta'])) as [Device, Device]
    const session = await alpha.generate()
    const joining = beta.spawn(['pair', 'join', session.code, '--json'])

    await session.cli.waitFor('request')
    expectAnswer(
      await alpha.run(['pair', 'reject', session.sessionId, '--json']),
      'rejected',
      session.sessionId,
    )

    expectFailed(await joining.finished(), 'Rejected')
    assert.equal(expectFailed(await session.cli.finished(), 'Rejected').sessionId, session.sessionId)
    assert.deepEqual(await alpha.devices(), [])
    assert.deepEqual(await beta.devices(), [])
  })

  test('a different code fails with WrongCode and leaves the session waiting', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const [alpha, beta] = (await runningDevices(t, ['alpha', 'beta'])) as [Device, Device]
    // Auto-accept on: even an initiator that accepts everything must not pair with a wrong code.
    const session = await alpha.generate(['--auto-accept'])
    const otherCode = bip39.entropyToMnemonic(randomBytes(16))
    assert.notEqual(otherCode, session.code)

    const joined = await beta.run(['pair', 'join', otherCode, '--json'])
    expectFailed(joined, 'WrongCode')

    assert.ok(session.cli.running, `the initiator still waits.\n${session.cli.transcript()}`)
    assert.deepEqual(
      session.cli.events.map((event) => event.event),
      ['code'],
      session.cli.transcript(),
    )
    expectAnswer(
      await alpha.run(['pair', 'cancel', session.sessionId, '--json']),
      'cancelled',
      session.sessionId,
    )
    expectFailed(await session.cli.finished(), 'Cancelled')
    assert.deepEqual(await alpha.devices(), [])
    assert.deepEqual(await beta.devices(), [])
  })

  test('a code nobody uses expires', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    // No `start`: generate brings up the daemon itself.
    const alpha = await bed.device(0, 'alpha')
    try {
      const requestedAt = Date.now()
      const session = await alpha.generate(['--timeout', '2'])
      assert.ok(
        session.expiresAt > requestedAt && session.expiresAt <= Date.now() + 2_000,
        `expiresAt ${session.expiresAt} lies within 2 s of the request at ${requestedAt}`,
      )
      const generated = await session.cli.finished(15_000)
      assert.equal(expectFailed(generated, 'Expired').sessionId, session.sessionId)
    } finally {
      await stopDevices(t, [alpha])
    }
  })

  test('a misspelt word fails before any network traffic', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const beta = await bed.device(1, 'beta')
    try {
      const words = bip39.entropyToMnemonic(randomBytes(16)).split(' ')
      const misspelt = misspell(words[3]!)
      words[3] = misspelt

      const joined = await beta.run(['pair', 'join', words.join(' '), '--json'])

      const failure = expectFailed(joined, 'InvalidCode')
      assert.match(text(failure.message, 'failed.message'), /word 4\b/i)
      assert.deepEqual(
        joined.events.filter((event) => event.event === 'state'),
        [],
        `an invalid code must not start discovery.\n${joined.transcript}`,
      )
      assert.equal(existsSync(beta.socketPath), false, 'an invalid code must not start a daemon')
    } finally {
      await stopDevices(t, [beta])
    }
  })

  test('two joiners pair with two sessions of one initiator at once', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const [alpha, beta, gamma] = (await runningDevices(t, ['alpha', 'beta', 'gamma'])) as [
      Device,
      Device,
      Device,
    ]
    const [forBeta, forGamma] = await Promise.all([
      alpha.generate(['--auto-accept']),
      alpha.generate(['--auto-accept']),
    ])
    assert.notEqual(forBeta.code, forGamma.code)
    assert.notEqual(forBeta.sessionId, forGamma.sessionId)

    // The code as one argument and as twelve: the CLI takes both.
    const [betaJoined, gammaJoined] = await Promise.all([
      beta.run(['pair', 'join', forBeta.code, '--json']),
      gamma.run(['pair', 'join', ...forGamma.code.split(' '), '--json']),
    ])

    expectJoinerPaired(betaJoined, alpha.identity)
    expectJoinerPaired(gammaJoined, alpha.identity)
    expectInitiatorPaired(await forBeta.cli.finished(), forBeta.sessionId, beta.identity)
    expectInitiatorPaired(await forGamma.cli.finished(), forGamma.sessionId, gamma.identity)
    const stored = await alpha.devices()
    assert.deepEqual(
      stored.map((device) => device.id).sort(),
      [beta.identity.deviceId, gamma.identity.deviceId].sort(),
    )
    await expectStored(alpha, beta.identity)
    await expectStored(alpha, gamma.identity)
  })

  test('paired devices survive a restart of both daemons', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const [alpha, beta] = (await runningDevices(t, ['alpha', 'beta'])) as [Device, Device]
    const session = await alpha.generate(['--auto-accept'])
    expectJoinerPaired(await beta.run(['pair', 'join', session.code, '--json']), alpha.identity)
    expectInitiatorPaired(await session.cli.finished(), session.sessionId, beta.identity)

    await Promise.all([alpha.stop(), beta.stop()])
    await Promise.all([alpha.start(), beta.start()])

    for (const device of [alpha, beta]) {
      const status = await device.status()
      assert.equal(status.running, true)
      assert.equal(status.deviceId, device.identity.deviceId)
      assert.equal(status.peerId, device.identity.peerId)
      assert.equal(status.name, device.name)
    }
    await expectStored(alpha, beta.identity)
    await expectStored(beta, alpha.identity)
  })
})

// ---- expectations

function expectDevice(value: unknown, expected: Identity, what: string): void {
  const device = object(value, what)
  assert.equal(device.id, expected.deviceId, `${what}.id`)
  assert.equal(device.name, expected.name, `${what}.name`)
  assert.equal(device.fingerprint, expected.fingerprint, `${what}.fingerprint`)
}

function expectSas(value: unknown, what: string): string {
  const sas = text(value, what)
  assert.match(sas, /^\d{3} \d{3}$/, `${what} is six digits shown as "123 456"`)
  return sas
}

/**
 * Joiner output: progress state lines and one `comparison` line (the SAS, shown while the initiator's user
 * decides, and equal to the final one), then `paired` naming the initiator; exit 0. A state line announcing the
 * final state itself (`Paired`) may come right before `paired`.
 */
function expectJoinerPaired(result: CliResult, initiator: Identity): { sas: string } {
  assert.equal(result.code, 0, result.transcript)
  const paired = lastEvent(result, 'paired')
  const progress = result.events.slice(0, -1)
  if (progress.at(-1)?.state === 'Paired') progress.pop()
  const comparisons = progress.filter((event) => event.event === 'comparison')
  assert.equal(comparisons.length, 1, `the joiner shows the comparison string once.\n${result.transcript}`)
  for (const event of progress) {
    if (event.event === 'comparison') continue
    assert.equal(
      event.event,
      'state',
      `before "paired" the joiner prints only state and comparison lines.\n${result.transcript}`,
    )
    const state = text(event.state, 'state.state')
    assert.ok(JOINER_STATES.has(state), `unknown joiner state ${state}.\n${result.transcript}`)
  }
  expectDevice(paired.device, initiator, 'paired.device')
  const sas = expectSas(paired.sas, 'paired.sas')
  assert.equal(comparisons[0]?.sas, sas, 'the comparison shown before pairing is the final one')
  return { sas }
}

/** Initiator output ends with `paired` for this session, naming the joiner; exit 0. */
function expectInitiatorPaired(result: CliResult, sessionId: string, joiner: Identity): { sas: string } {
  assert.equal(result.code, 0, result.transcript)
  const paired = lastEvent(result, 'paired')
  assert.equal(paired.sessionId, sessionId)
  expectDevice(paired.device, joiner, 'paired.device')
  return { sas: expectSas(paired.sas, 'paired.sas') }
}

/** Output ends with `failed` for `reason` with a message for the user; exit 1. */
function expectFailed(result: CliResult, reason: string): JsonObject {
  assert.equal(result.code, 1, result.transcript)
  const failed = lastEvent(result, 'failed')
  assert.equal(failed.reason, reason, result.transcript)
  text(failed.message, 'failed.message')
  return failed
}

function expectAnswer(result: CliResult, event: string, sessionId: string): void {
  assert.equal(result.code, 0, result.transcript)
  const answer = lastEvent(result, event)
  assert.equal(answer.sessionId, sessionId)
}

async function expectStored(device: Device, other: Identity): Promise<void> {
  const entry = (await device.devices()).find((stored) => stored.id === other.deviceId)
  assert.ok(entry, `${device.name} lists ${other.name} among its devices`)
  assert.equal(entry.name, other.name)
  assert.equal(entry.fingerprint, other.fingerprint)
  assert.equal(entry.peerId, other.peerId)
  assert.notEqual(entry.pairedAt, undefined, 'a stored device records when it was paired')
}

/**
 * A typo (two neighbouring letters swapped, or one letter wrong) that is no BIP39 word and whose first four
 * letters start none either, so not even a CLI that accepts four-letter prefixes can read it as a word.
 */
function misspell(word: string): string {
  const list = bip39.wordlists.english ?? []
  const swaps = [1, 2].map((i) => word.slice(0, i) + word.charAt(i + 1) + word.charAt(i) + word.slice(i + 2))
  const substitutions = [...'zqxjkvwy'].map((letter) => word.charAt(0) + letter + word.slice(2))
  const typo = [...swaps, ...substitutions].find(
    (candidate) => candidate !== word && !list.some((listed) => listed.startsWith(candidate.slice(0, 4))),
  )
  assert.ok(typo, `found no typo of ${word} that is no BIP39 word`)
  return typo
}
