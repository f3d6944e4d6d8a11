// The node machine's table of device connections (`conn:<deviceId>` children): pure lookups and updates, kept
// here so that node.machine.ts stays a readable transition table.
import type { ActorRefFrom, AnyActorRef } from 'xstate'
import type { ConnectionInput, connectionMachine } from './connection.machine.ts'

/** What every device connection of a node shares (the node's input `connection`). */
export type ConnectionSettings = Pick<ConnectionInput, 'rekeyAfterFrames' | 'timeouts'>

/** What differs per device: `jitterSeed` is drawn at random by actors/. */
export type DeviceSpec = { deviceId: string; peerId: string; jitterSeed: number }

/** Picks the fields one by one: the spec often arrives as an event, whose `type` must not become context. */
export const connectionInput = (settings: ConnectionSettings, spec: DeviceSpec): ConnectionInput => ({
  deviceId: spec.deviceId,
  peerId: spec.peerId,
  jitterSeed: spec.jitterSeed,
  rekeyAfterFrames: settings.rekeyAfterFrames,
  timeouts: settings.timeouts,
})

export type Device = { peerId: string; ref: ActorRefFrom<typeof connectionMachine> }

/** Keyed by device id; the child's actor id is `conn:<deviceId>`. */
export type DeviceTable = Record<string, Device>

export const deviceChildId = (deviceId: string) => `conn:${deviceId}`

/** A child that has not ended (it may still take events). */
export const isLiveChild = (child: { ref: AnyActorRef } | undefined) =>
  child?.ref.getSnapshot().status === 'active'

// Device ids come from outside: look them up as own keys only (`constructor` is not a device).
export const deviceOf = (devices: DeviceTable, deviceId: string): Device | undefined =>
  Object.hasOwn(devices, deviceId) ? devices[deviceId] : undefined

export function withoutDevice(devices: DeviceTable, deviceId: string): DeviceTable {
  const { [deviceId]: _forgotten, ...rest } = devices
  return rest
}

/** The live connections to the device behind `peerId` (one, unless the trust store holds it twice). */
export const liveDevicesOn = (devices: DeviceTable, peerId: string): Device[] =>
  Object.values(devices).filter((device) => device.peerId === peerId && isLiveChild(device))
