// The key cryptography of the link between two paired devices, I/O-free (ARCHITECTURE.md "Handshake and session
// keys"): the signed ephemeral X25519 exchange (hello/welcome, and rekey/rekeyAck chained on the previous
// transcript) and the HKDF key schedule. The keys it derives seal frames in sealed-channel.ts. Randomness is
// injected, so a test can run both sides against each other with no network and pin every derived byte.
//
// Everything that comes from the peer is checked without throwing: a verify method answers false. Throws are kept
// for our own mistakes (calling a step out of turn).

import { randomBytes } from 'node:crypto'
import { ed25519, x25519 } from '@noble/curves/ed25519.js'
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { concatBytes, utf8ToBytes } from '@noble/hashes/utils.js'
import { cbor } from '../../transport/cbor.ts'

export const MSG_LABEL = 'sdnet/msg/v1'

/** Our side: the Ed25519 device seed (signs the exchange) and our libp2p peer id (`peerId.toMultihash().bytes`). */
export interface HandshakeIdentity {
  seed: Uint8Array
  peerIdBytes: Uint8Array
}

/** The paired device as the trust store knows it: its peer id bytes and the public key stored at pairing time. */
export interface HandshakePeer {
  peerIdBytes: Uint8Array
  publicKey: Uint8Array
}

/** The body of `hello`, `welcome`, `rekey` and `rekeyAck` (the codec adds `v`). */
export interface HelloMessage {
  eph: Uint8Array
  nonce: Uint8Array
  sig: Uint8Array
}

/** The keys of one epoch; `transcript` is the th1 that the next re-key chains on. */
export interface SessionKeys {
  send: Uint8Array
  receive: Uint8Array
  epoch: number
  transcript: Uint8Array
}

export type RandomSource = (length: number) => Uint8Array

const KEY_LENGTH = 32
const NONCE_LENGTH = 32
const SIG_LENGTH = 64
const INFO_O2A = utf8ToBytes(`${MSG_LABEL} opener->acceptor`)
const INFO_A2O = utf8ToBytes(`${MSG_LABEL} acceptor->opener`)

type Side = 'initiator' | 'responder'

interface Step {
  /** Label of the initiator's message (`hello`, `rekey`) and of the responder's (`welcome`, `rekeyAck`). */
  first: string
  second: string
  /** What the transcript starts with: `[label]` for the handshake, `[label, 'rekey', epoch, previous th1]` after. */
  context: unknown[]
  epoch: number
}

/**
 * One signed ephemeral exchange, the part the handshake and a re-key share. The initiator sends first; its eph and
 * nonce come first in the transcript, and its send key is the "opener->acceptor" one. For a re-key the initiator is
 * the side that sent `rekey` (either role may), which is all both sides need to agree on to mirror the keys.
 */
class Exchange {
  readonly #side: Side
  readonly #step: Step
  readonly #seed: Uint8Array
  readonly #peerPublicKey: Uint8Array
  readonly #initiatorId: Uint8Array
  readonly #responderId: Uint8Array
  readonly #ephPrivate: Uint8Array
  readonly #eph: Uint8Array
  readonly #nonce: Uint8Array
  // Set once the peer's message verified; the shared secret is computed there so a low-order eph is a failed
  // verification rather than a throw later in keys().
  #peerEph: Uint8Array | undefined
  #peerNonce: Uint8Array | undefined
  #shared: Uint8Array | undefined

  constructor(side: Side, step: Step, me: HandshakeIdentity, peer: HandshakePeer, random: RandomSource) {
    this.#side = side
    this.#step = step
    this.#seed = me.seed
    this.#peerPublicKey = peer.publicKey
    this.#initiatorId = side === 'initiator' ? me.peerIdBytes : peer.peerIdBytes
    this.#responderId = side === 'initiator' ? peer.peerIdBytes : me.peerIdBytes
    this.#ephPrivate = draw(random, KEY_LENGTH)
    this.#nonce = draw(random, NONCE_LENGTH)
    this.#eph = x25519.getPublicKey(this.#ephPrivate)
  }

  first(): HelloMessage {
    this.#expectSide('initiator', `${this.#step.first}()`)
    return this.#message(this.#step.first, this.#th0(this.#eph, this.#nonce))
  }

  verifyFirst(msg: HelloMessage): boolean {
    this.#expectSide('responder', `verify of ${this.#step.first}`)
    if (this.#shared !== undefined || !isWellFormed(msg)) return false
    const th0 = this.#th0(msg.eph, msg.nonce)
    return this.#accept(msg, this.#step.first, th0)
  }

  second(): HelloMessage {
    this.#expectSide('responder', `${this.#step.second}()`)
    if (this.#shared === undefined) {
      throw new Error(`${this.#step.second}() needs a verified ${this.#step.first} first`)
    }
    return this.#message(this.#step.second, this.transcript)
  }

  verifySecond(msg: HelloMessage): boolean {
    this.#expectSide('initiator', `verify of ${this.#step.second}`)
    if (this.#shared !== undefined || !isWellFormed(msg)) return false
    const th1 = this.#th1(this.#eph, this.#nonce, msg.eph, msg.nonce)
    return this.#accept(msg, this.#step.second, th1)
  }

  get epoch(): number {
    return this.#step.epoch
  }

  get transcript(): Uint8Array {
    if (this.#peerEph === undefined || this.#peerNonce === undefined) {
      throw new Error(`the transcript is known only once the peer's ${this.#peerLabel()} has verified`)
    }
    return this.#side === 'initiator'
      ? this.#th1(this.#eph, this.#nonce, this.#peerEph, this.#peerNonce)
      : this.#th1(this.#peerEph, this.#peerNonce, this.#eph, this.#nonce)
  }

  keys(): SessionKeys {
    if (this.#shared === undefined) {
      throw new Error(`keys() needs the peer's ${this.#peerLabel()} verified first`)
    }
    const transcript = this.transcript
    const o2a = hkdf(sha256, this.#shared, transcript, INFO_O2A, KEY_LENGTH)
    const a2o = hkdf(sha256, this.#shared, transcript, INFO_A2O, KEY_LENGTH)
    const initiator = this.#side === 'initiator'
    return {
      send: initiator ? o2a : a2o,
      receive: initiator ? a2o : o2a,
      epoch: this.#step.epoch,
      transcript,
    }
  }

  #accept(msg: HelloMessage, label: string, th: Uint8Array): boolean {
    try {
      // zip215: false is strict RFC 8032 verification (rejects non-canonical encodings), as in pairing-crypto.ts.
      if (!ed25519.verify(msg.sig, signed(label, th), this.#peerPublicKey, { zip215: false })) return false
      // Throws for the low-order points whose shared secret would be all zeros.
      this.#shared = x25519.getSharedSecret(this.#ephPrivate, msg.eph)
    } catch {
      return false
    }
    this.#peerEph = Uint8Array.from(msg.eph)
    this.#peerNonce = Uint8Array.from(msg.nonce)
    return true
  }

  #message(label: string, th: Uint8Array): HelloMessage {
    return { eph: this.#eph, nonce: this.#nonce, sig: ed25519.sign(signed(label, th), this.#seed) }
  }

  #th0(eph: Uint8Array, nonce: Uint8Array): Uint8Array {
    return sha256(cbor.encode([...this.#step.context, this.#initiatorId, this.#responderId, eph, nonce]))
  }

  #th1(eph: Uint8Array, nonce: Uint8Array, peerEph: Uint8Array, peerNonce: Uint8Array): Uint8Array {
    const ids = [this.#initiatorId, this.#responderId]
    return sha256(cbor.encode([...this.#step.context, ...ids, eph, nonce, peerEph, peerNonce]))
  }

  #peerLabel(): string {
    return this.#side === 'initiator' ? this.#step.second : this.#step.first
  }

  #expectSide(side: Side, what: string): void {
    if (this.#side !== side) {
      const role = side === 'initiator' ? `the side that sends ${this.#step.first}` : 'the other side'
      throw new Error(`${what} belongs to ${role}`)
    }
  }
}

const HANDSHAKE: Step = { first: 'hello', second: 'welcome', context: [MSG_LABEL], epoch: 0 }

/**
 * The handshake of one link attempt: the opener sends `hello`, the acceptor checks it and answers `welcome`, and
 * both derive epoch-0 keys. Holds the ephemeral X25519 private key, so make a new one per attempt.
 *
 * @example
 * const opener = Handshake.open(me, peer)
 * send({ type: 'hello', ...opener.hello() })
 * // on welcome:
 * if (!opener.verifyWelcome(welcome)) fail('BadSignature')
 * const channel = new SealedChannel(opener.keys())
 */
export class Handshake {
  readonly #exchange: Exchange

  private constructor(exchange: Exchange) {
    this.#exchange = exchange
  }

  static open(me: HandshakeIdentity, peer: HandshakePeer, random: RandomSource = randomBytes): Handshake {
    return new Handshake(new Exchange('initiator', HANDSHAKE, me, peer, random))
  }

  static accept(me: HandshakeIdentity, peer: HandshakePeer, random: RandomSource = randomBytes): Handshake {
    return new Handshake(new Exchange('responder', HANDSHAKE, me, peer, random))
  }

  /** Opener only. */
  hello(): HelloMessage {
    return this.#exchange.first()
  }

  /** Acceptor only: checks the signature against the public key stored at pairing time. */
  verifyHello(msg: HelloMessage): boolean {
    return this.#exchange.verifyFirst(msg)
  }

  /** Acceptor only, after `verifyHello` returned true. */
  welcome(): HelloMessage {
    return this.#exchange.second()
  }

  /** Opener only. */
  verifyWelcome(msg: HelloMessage): boolean {
    return this.#exchange.verifySecond(msg)
  }

  /** Epoch-0 keys, once the peer's message has verified. */
  keys(): SessionKeys {
    return this.#exchange.keys()
  }

  /** th1, which the first re-key chains on. */
  get transcript(): Uint8Array {
    return this.#exchange.transcript
  }
}

/**
 * One re-key: the side that starts it (`open`) sends `rekey`, the other (`accept`) answers `rekeyAck`, and both derive
 * the keys of `previous.epoch + 1`. The transcript is
 * `SHA-256(cbor(["sdnet/msg/v1", "rekey", epoch + 1, previous th1, initiatorPeerId, responderPeerId, initiatorEph,
 * initiatorNonce(, responderEph, responderNonce)]))`, so a re-key message cannot be replayed into another epoch or
 * link, and the keys are derived from it exactly as in the handshake.
 */
export class Rekey {
  readonly #exchange: Exchange

  private constructor(exchange: Exchange) {
    this.#exchange = exchange
  }

  static open(
    me: HandshakeIdentity,
    peer: HandshakePeer,
    previous: SessionKeys,
    random: RandomSource = randomBytes,
  ): Rekey {
    return new Rekey(new Exchange('initiator', rekeyStep(previous), me, peer, random))
  }

  static accept(
    me: HandshakeIdentity,
    peer: HandshakePeer,
    previous: SessionKeys,
    random: RandomSource = randomBytes,
  ): Rekey {
    return new Rekey(new Exchange('responder', rekeyStep(previous), me, peer, random))
  }

  /** The starting side only. */
  rekey(): HelloMessage {
    return this.#exchange.first()
  }

  /** The answering side only. */
  verifyRekey(msg: HelloMessage): boolean {
    return this.#exchange.verifyFirst(msg)
  }

  /** The answering side only, after `verifyRekey` returned true. */
  rekeyAck(): HelloMessage {
    return this.#exchange.second()
  }

  /** The starting side only. */
  verifyRekeyAck(msg: HelloMessage): boolean {
    return this.#exchange.verifySecond(msg)
  }

  /** The keys of the next epoch, once the peer's message has verified. */
  keys(): SessionKeys {
    return this.#exchange.keys()
  }

  /** This re-key's th1, which the next re-key chains on. */
  get transcript(): Uint8Array {
    return this.#exchange.transcript
  }

  /** The epoch this re-key leads to. */
  get epoch(): number {
    return this.#exchange.epoch
  }
}

function rekeyStep(previous: SessionKeys): Step {
  const epoch = previous.epoch + 1
  if (!Number.isSafeInteger(epoch) || epoch < 1) throw new RangeError(`bad previous epoch ${previous.epoch}`)
  return {
    first: 'rekey',
    second: 'rekeyAck',
    context: [MSG_LABEL, 'rekey', epoch, previous.transcript],
    epoch,
  }
}

function draw(random: RandomSource, length: number): Uint8Array {
  const bytes = random(length)
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new RangeError(`the random source returned ${bytes?.length} bytes instead of ${length}`)
  }
  return Uint8Array.from(bytes)
}

function signed(label: string, th: Uint8Array): Uint8Array {
  return concatBytes(utf8ToBytes(`${MSG_LABEL} ${label}`), th)
}

function isWellFormed(msg: HelloMessage): boolean {
  return (
    typeof msg === 'object' &&
    msg !== null &&
    isBytes(msg.eph, KEY_LENGTH) &&
    isBytes(msg.nonce, NONCE_LENGTH) &&
    isBytes(msg.sig, SIG_LENGTH)
  )
}

function isBytes(value: unknown, length: number): value is Uint8Array {
  return value instanceof Uint8Array && value.length === length
}
