// Room `daemon/`: one long-running node per data dir, driven over NDJSON on its Unix socket (ARCHITECTURE.md
// "Daemon RPC"). It owns the daemon (`daemon.ts`: the socket server, its methods and streams, the pid file), the
// light client the CLI talks through (`daemon-client.ts`, which starts a daemon when none answers and loads no
// libp2p), and the paths of the socket and pid file. The daemon hosts the composition root (`createNode` in
// `actors/node.ts`) and uses the event and result types of `pairing/`, `connections/` and `drop/` (its drop
// methods are in `drop-rpc.ts`); the client uses nothing but its own room.
export { type Daemon, type DaemonStatus, startDaemon } from './daemon.ts'
export { DaemonClient, ensureDaemon, type SpawnDaemonOptions, spawnDaemon } from './daemon-client.ts'
export { pidPath, socketPath } from './paths.ts'
