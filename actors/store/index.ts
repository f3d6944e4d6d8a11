// Room `store/`: what this device keeps on disk. It owns the device identity (`identity.json`: the Ed25519 key,
// the name and the ids derived from the key), the trust store of paired devices (`devices.json`), and the atomic
// file writes that both use, so a crash never leaves a file half-written. It talks to nobody: it only reads and
// writes the data dir. The pairing and connection rooms read the identity and the trust store through this file;
// the composition root (`actors/node.ts`) opens them and hands them over.
export { type WriteStep, writeFileAtomic } from './atomic-file.ts'
export { deviceIdFromPublicKey, fingerprint } from './device-id.ts'
export {
  createIdentity,
  type Identity,
  loadIdentity,
  loadOrCreateIdentity,
  toLibp2pPrivateKey,
} from './identity.ts'
export { type PairedDevice, TrustStore, type TrustStoreOptions } from './trust-store.ts'
