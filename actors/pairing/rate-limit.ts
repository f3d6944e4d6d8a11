// Per-peer limits on pairing attempts (ARCHITECTURE.md "Rate limit"): a peer that sends more than
// `maxBadProofs` wrong proofs or `maxRequests` requests for sessions we do not hold within `windowMs` is refused
// for `banMs`. Requests that find their session do not count: a device may pair as often as its user likes.
// Peer ids cost nothing to mint, so this slows a single misbehaving peer down; it is not a defence against many.

export interface RateLimitOptions {
  windowMs: number
  banMs: number
  maxBadProofs: number
  maxRequests: number
  now: () => number
}

export const DEFAULT_RATE_LIMIT: Omit<RateLimitOptions, 'now'> = {
  windowMs: 60_000,
  banMs: 60_000,
  maxBadProofs: 3,
  maxRequests: 30,
}

interface PeerRecord {
  requests: number[]
  badProofs: number[]
  bannedUntil: number
}

export class PairingRateLimiter {
  readonly #opts: RateLimitOptions
  readonly #peers = new Map<string, PeerRecord>()

  constructor(opts: Partial<RateLimitOptions> = {}) {
    this.#opts = { ...DEFAULT_RATE_LIMIT, now: Date.now, ...opts }
  }

  /** Records a request that matched no session (a wrong code, or a scan for codes). */
  recordMiss(peerId: string): void {
    const record = this.#record(peerId)
    const now = this.#opts.now()
    record.requests.push(now)
    if (record.requests.length > this.#opts.maxRequests) record.bannedUntil = now + this.#opts.banMs
  }

  recordBadProof(peerId: string): void {
    const record = this.#record(peerId)
    const now = this.#opts.now()
    record.badProofs.push(now)
    if (record.badProofs.length > this.#opts.maxBadProofs) record.bannedUntil = now + this.#opts.banMs
  }

  isBanned(peerId: string): boolean {
    return (this.#peers.get(peerId)?.bannedUntil ?? 0) > this.#opts.now()
  }

  #record(peerId: string): PeerRecord {
    const since = this.#opts.now() - this.#opts.windowMs
    let record = this.#peers.get(peerId)
    if (record === undefined) {
      record = { requests: [], badProofs: [], bannedUntil: 0 }
      this.#peers.set(peerId, record)
    }
    record.requests = record.requests.filter((t) => t > since)
    record.badProofs = record.badProofs.filter((t) => t > since)
    // Forget peers that have gone quiet so a flood of fresh peer ids cannot grow the map without bound.
    if (this.#peers.size > 1024) {
      for (const [id, r] of this.#peers) {
        if (r.bannedUntil < since && r.requests.length === 0 && r.badProofs.length === 0)
          this.#peers.delete(id)
      }
    }
    return record
  }
}
