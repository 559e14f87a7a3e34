/** Device layer (the Python iocmng's ophyd role): devices from the beamline values file. */
export {
  type DeviceKind,
  type DeviceTypeSpec,
  deviceType,
  knownDeviceTypes,
  type SignalSpec,
} from "./catalog.ts";
export {
  Device,
  DeviceError,
  type DeviceInfo,
  MotorDevice,
  type MoveOptions,
  type PointOfInterest,
} from "./device.ts";
export {
  DeviceConfigError,
  DeviceRegistry,
  type DeviceRegistryOptions,
  devicesEnabled,
} from "./registry.ts";
