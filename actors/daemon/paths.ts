// Files in a data dir that more than one module (and process) must agree on.
import { join } from 'node:path'

export const socketPath = (dataDir: string) => join(dataDir, 'sdnet.sock')
export const pidPath = (dataDir: string) => join(dataDir, 'sdnet.pid')
