/**
 * The fused decoder's packed weights: each weight it runs from a pack (a 16-bit frozen weight, or under
 * bf16 compute any weight) is packed once for core's GEMM and the pack kept with its source array, so
 * later steps reuse it. A pack follows its source: a new array (another weight object, `variable.assign`)
 * gets a new pack, and an array overwritten in place (the native AdamW's update of a trainable weight,
 * counted by core's `inPlaceWriteCount`) is packed again into the same memory, once per optimizer step
 * however many micro-batches run in between. {@link slotWeights} builds the weights array a native call
 * takes (the fused decoder's and the decode step's) from these packs and the float32 arrays.
 * @module
 */
import { inPlaceWriteCount } from "@prefkit/core";
import { bf16ToFloat32, f16ToFloat32 } from "../../io/halfPrecision.js";
import type { DecoderAddon, DecoderWeight, NativePackedWeight, PackCompute, PackDtype } from "./addon.js";
import { float32Array, isDense16, type LayoutArrays } from "./layout.js";

/** A weight as the decoder's slot holds it: its source values, their element type, and `[out, in]`. */
export interface PackSource {
  /**
   * Identifies the values: the float32 array itself, or a 16-bit weight's storage key (the same object
   * while its values do not change, whether or not its bits are held).
   */
  readonly key: object;
  /** Row-major `[out, in]`: float32 values, or 16-bit patterns (read only to make or remake a pack). */
  readonly data: () => Float32Array | Uint16Array;
  /** What `data` holds. */
  readonly dtype: PackDtype;
  /** `[out, in]`. */
  readonly shape: readonly [number, number];
}

interface Entry {
  handle: NativePackedWeight;
  compute: PackCompute;
  /** `inPlaceWriteCount` of a float32 source when it was packed. */
  writes: number;
}

/** The pack of each source (one: a switch of compute type replaces it). */
const packs = new WeakMap<object, Entry>();

/**
 * The pack of `source` for products in `compute`: the cached one, repacked in place first when its
 * float32 source was overwritten since; a new one on first use or when the compute type changed.
 */
export function packOf(addon: DecoderAddon, source: PackSource, compute: PackCompute): NativePackedWeight {
  const writes = source.key instanceof Float32Array ? inPlaceWriteCount(source.key) : 0;
  const cached = packs.get(source.key);
  if (cached !== undefined && cached.compute === compute) {
    if (cached.writes !== writes) {
      addon.decoderRepackWeight(cached.handle, source.data());
      cached.writes = writes;
    }
    return cached.handle;
  }
  const [rows, cols] = source.shape;
  const handle = addon.decoderPackWeight(source.data(), rows, cols, source.dtype, compute);
  packs.set(source.key, { handle, compute, writes });
  return handle;
}

/** A bf16 weight's bits, unpacked from `handle` on demand (the pack as their storage). */
export function packStore(addon: DecoderAddon, handle: NativePackedWeight): { unpack(): Uint16Array } {
  return { unpack: () => addon.decoderUnpackWeight(handle) };
}

/**
 * Drop the cached packs of `data` (their memory goes when the handles are collected). For a source whose
 * values a caller overwrote in place without core's count (tests), or to free packs early.
 */
export function forgetPacks(key: object): void {
  packs.delete(key);
}

/** The float32 copy of each 16-bit embedding table the decoder gathers rows from, by storage key. */
const widened = new WeakMap<object, Float32Array>();

/**
 * `bits` widened to float32 (exact), made once per bits array and kept while the array lives: the fused
 * decoder gathers its embedding rows from float32 memory. 16-bit bits are never written in place (a new
 * value is a new array), so the copy cannot go stale.
 */
export function widenedTable(key: object, bits: () => Uint16Array, dtype: PackDtype): Float32Array {
  let table = widened.get(key);
  if (table === undefined) {
    table = dtype === "float16" ? f16ToFloat32(bits()) : bf16ToFloat32(bits());
    widened.set(key, table);
  }
  return table;
}

/** Whether a float32 copy of the 16-bit table stored under `key` exists (fp16 embeddings; bf16 ones are read as bits). */
export function hasWidenedTable(key: object): boolean {
  return widened.has(key);
}

/** What the cached pack of `data` is (shape, bytes, dtype, compute type), or undefined when there is none. */
export function cachedPackInfo(
  addon: DecoderAddon,
  key: object,
): ReturnType<DecoderAddon["decoderPackedInfo"]> | undefined {
  const entry = packs.get(key);
  return entry === undefined ? undefined : addon.decoderPackedInfo(entry.handle);
}

/**
 * The weights array of a native call (the fused decoder's, and the decode step's with `compute` "float32"):
 * float32 arrays, and packs where the slot's weight is 16-bit or `compute` is bf16; a 16-bit embedding as
 * bf16 bits (or an fp16 one widened); undefined when a variable is not a float32 array on the cpu backend.
 * With `packedStorage`, a releasable 16-bit layer projection weight's pack becomes its storage (its bits array is
 * dropped); not the LM head's, which the tfjs ops read whenever the logits are materialised.
 */
export function slotWeights(
  addon: DecoderAddon,
  arrays: LayoutArrays,
  compute: PackCompute,
  packedStorage: boolean,
): DecoderWeight[] | undefined {
  const out: DecoderWeight[] = [];
  for (let i = 0; i < arrays.variables.length; i++) {
    const w = arrays.variables[i]!;
    if (w === null) out.push(null);
    else if (!isDense16(w)) {
      const values = float32Array(w);
      if (values === undefined) return undefined;
      if (compute === "bfloat16" && arrays.packable[i]) {
        const shape = w.shape as [number, number];
        out.push(packOf(addon, { key: values, data: () => values, dtype: "float32", shape }, compute));
      } else out.push(values);
    } else if (!arrays.packable[i]) {
      // A 16-bit embedding table (the one slot that is not a product's weight): bf16 bits as they are (the
      // addon widens the rows it gathers), fp16 as a float32 copy.
      out.push(w.dtype === "bfloat16" ? w.bits : widenedTable(w.key, () => w.bits, w.dtype));
    } else {
      const handle = packOf(addon, { key: w.key, data: () => w.bits, dtype: w.dtype, shape: w.shape }, compute);
      if (packedStorage && i >= arrays.globalSlots && w.release !== undefined) w.release(packStore(addon, handle));
      out.push(handle);
    }
  }
  return out;
}
