/**
 * The safetensors format: header parsing, reading, writing and dtype conversion, one file each.
 * @module
 */
export {
  MAX_SAFETENSORS_HEADER_BYTES,
  SAFETENSORS_DTYPE_BYTES,
  type HalfPrecisionData,
  type HalfPrecisionFormat,
  type SafetensorsDtype,
  type SafetensorsFile,
  type SafetensorsHeader,
  type TensorHeaderEntry,
  type TensorInput,
  type TensorInputs,
  type TensorRecord,
} from "./format.js";
export { HALF_PRECISION_DTYPE, HalfPrecisionTensorRecord, isFloatingDtype } from "./dtypes.js";
export { parseSafetensors, type ReadSafetensorsOptions, readSafetensors, readSafetensorsHeader } from "./read.js";
export { checkTensorInputs, serializeSafetensors, writeSafetensors } from "./write.js";
