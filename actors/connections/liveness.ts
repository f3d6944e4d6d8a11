// Liveness (ARCHITECTURE.md "Liveness and one link per pair"): notices a device that went silent (frozen,
// unplugged) faster than TCP would. Every link that has not carried a frame for `keepaliveMs` sends a sealed
// ping, and one silent for `silenceMs` is dropped so that it reconnects.
import { performance } from 'node:perf_hooks'
import type { ConnectionContext } from './connection.ts'
import type { LinkKeeper } from './links.ts'
import type { Messenger } from './messenger.ts'

/** Starts the check; clear the returned timer to stop it. */
export function watchLiveness(
  ctx: ConnectionContext,
  links: LinkKeeper,
  messenger: Messenger,
): NodeJS.Timeout {
  const { keepaliveMs, silenceMs } = ctx.init.options.liveness
  const every = Math.max(50, Math.floor(keepaliveMs / 2))
  let last = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    // A tick that comes late means our own event loop stalled, not the peer: that tick checks nothing.
    const late = now - last > every * 3
    last = now
    if (late) return
    for (const conn of ctx.byId.values()) {
      const link = conn.link
      if (link === undefined || conn.channel === undefined || conn.reading !== link) continue
      const silent = now - conn.heardAt
      if (silent > silenceMs) {
        ctx.init.log.info({ device: conn.device.id, silentMs: Math.round(silent) }, 'device went silent')
        link.abort(new Error(`no frame from ${conn.device.name} for ${Math.round(silent)} ms`))
        links.lost(conn, link)
      } else if (now - conn.sentAt > keepaliveMs && now - conn.keepaliveAt > keepaliveMs) {
        // Keepalives go out when *we* have been quiet, so a peer that only receives (a bulk transfer towards it)
        // still talks back on the uncongested direction.
        conn.keepaliveAt = now
        void messenger.sendMessage(conn, { t: 'ping', id: 0 }).catch(() => {})
      }
    }
  }, every)
  timer.unref()
  return timer
}
