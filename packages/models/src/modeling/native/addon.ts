/**
 * The fused decoder's native addon (`packages/models/native`, built at `npm ci` beside core's): loading
 * it, handing it core's GEMM and thread pool (the engine ABI of core's addon), and reading its weight
 * layout once.
 * @module
 */
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { activeNativeAddon } from "@prefkit/core";
import { type CompiledLayout, compileLayout, type DecoderLayoutNames } from "./layout.js";

/** A weight packed once for core's GEMM (`decoderPackWeight`; `packages/models/native/src/packed_weight.h`). */
export type NativePackedWeight = { readonly __nativePackedWeight: unique symbol };

/** Element type of a weight handed to `decoderPackWeight`. */
export type PackDtype = "float32" | "bfloat16" | "float16";

/** The products a pack is made for: fp32, or bf16 (operands rounded to bf16, products summed in fp32). */
export type PackCompute = "float32" | "bfloat16";

/** A slot of the weights array: a float32 array, bf16 bits (the embedding only), a packed weight (projections and the LM head), or null. */
export type DecoderWeight = Float32Array | Uint16Array | NativePackedWeight | null;

/** The addon's exports (see `packages/models/native/src/decoder_napi.cc`). */
export interface DecoderAddon {
  /** Take core's GEMM and thread pool (its addon's `engineAbi`); throws when the ABI version differs. */
  attachEngine(engineAbi: object): void;
  /** The slot names of the weights, grads and LoRA arrays, in their order. */
  decoderLayout(): DecoderLayoutNames;
  decoderCreate(dims: Float64Array, invFreq: Float32Array): object;
  decoderForward(
    ctx: object,
    weights: DecoderWeight[],
    ids: Int32Array,
    mask: Int32Array | null,
    positions: Int32Array,
    labels: Int32Array | null,
    batch: number,
    seqLen: number,
    save: boolean,
    withStats: boolean,
    loraWeights?: Array<Float32Array | null> | null,
    loraShape?: Float64Array | null,
    loraMasks?: Array<Float32Array | null> | null,
  ): Float32Array;
  decoderBackward(
    ctx: object,
    weights: DecoderWeight[],
    dy: Float32Array,
    grads: Array<Float32Array | null>,
    loraWeights?: Array<Float32Array | null> | null,
    loraShape?: Float64Array | null,
    loraMasks?: Array<Float32Array | null> | null,
    loraGrads?: Array<Float32Array | null> | null,
  ): void;
  /** Seconds per phase since the last reset (`bench/decoder-profile.mjs`). */
  decoderProfile(reset: boolean): Record<string, number>;
  /** A decode session (KV cache and scratch, kept from call to call) for the model of a decoderCreate context. */
  decodeCreate(ctx: object): object;
  /**
   * The weights (layout order, as `decoderForward` takes them, packs made for "float32" products) and LoRA
   * adapters the next prefill and steps read in place.
   */
  decodeBind(
    session: object,
    weights: DecoderWeight[],
    loraWeights?: Array<Float32Array | null> | null,
    loraShape?: Float64Array | null,
  ): void;
  /** Left-padded prompts through the fused forward into a cache of `capacity` columns; last positions' logits into `logits`. */
  decodePrefill(
    session: object,
    ids: Int32Array,
    mask: Int32Array | null,
    positions: Int32Array,
    batch: number,
    seqLen: number,
    capacity: number,
    logits: Float32Array,
  ): void;
  /** One token per row at its rotary position; logits `[batch, vocab]` into `logits`. */
  decodeStep(session: object, ids: Int32Array, positions: Int32Array, logits: Float32Array): void;
  /** The session's batch, cached columns, capacity and KV-cache bytes. */
  decodeInfo(session: object): { batch: number; columns: number; capacity: number; cacheBytes: number };
  /** The products (`compute`) and gradient checkpointing of the context's next forward and its backward. */
  decoderSetMode(ctx: object, compute: PackCompute, checkpointing: boolean): void;
  /** Pack `data` (`[rows, cols]` = `[out, in]`, row-major) for products in `compute`. */
  decoderPackWeight(
    data: Float32Array | Uint16Array,
    rows: number,
    cols: number,
    dtype: PackDtype,
    compute: PackCompute,
  ): NativePackedWeight;
  /** Pack new values of the same shape and dtype into an existing pack, without allocating. */
  decoderRepackWeight(packed: NativePackedWeight, data: Float32Array | Uint16Array): void;
  /** A bf16 weight's bits back from its pack (exact), row-major `[rows, cols]`; throws for other packs. */
  decoderUnpackWeight(packed: NativePackedWeight): Uint16Array;
  /** A pack's shape, bytes and types. */
  decoderPackedInfo(packed: NativePackedWeight): {
    rows: number;
    cols: number;
    bytes: number;
    dtype: PackDtype;
    compute: PackCompute;
  };
  /** How bf16 products run on core's engine (e.g. `"vdpbf16ps (avx512bf16)"`). */
  decoderInfo(): { bf16: string };
}

/** What {@link nativeDecoderStatus} reports. */
export interface NativeDecoderStatus {
  /** Whether the addon loaded, its layout is one this package fills, and (once tried) it took core's engine. */
  available: boolean;
  /** Why it is unavailable; undefined when available. */
  reason?: string;
  /** Path the addon is (or would be) loaded from. */
  path: string;
  /**
   * How bf16 compute (`computeDtype: "bfloat16"`, AMP's `compute: "bfloat16"`) runs its products, while
   * core's native addon is active: `"vdpbf16ps (avx512bf16)"` on CPUs with AVX512_BF16, else the fp32
   * kernel of the active instruction set on operands rounded to bf16 (e.g. `"avx2 fp32 kernel on
   * bf16-rounded operands (no AVX512_BF16)"`).
   */
  bf16?: string;
}

/** The loaded addon with its layout, ready to run on the active engine. */
export interface ActiveDecoderAddon {
  addon: DecoderAddon;
  layout: CompiledLayout;
}

const ADDON_RELATIVE = "../../../native/build/Release/prefkit_decoder.node";

interface Loaded {
  addon?: DecoderAddon;
  layout?: CompiledLayout;
  reason?: string;
  path: string;
  /** The engine ABI the addon was handed last. */
  engine?: object;
}

let loaded: Loaded | undefined;

function load(): Loaded {
  if (loaded !== undefined) return loaded;
  let path = ADDON_RELATIVE;
  try {
    path = fileURLToPath(new URL(ADDON_RELATIVE, import.meta.url));
    const addon = createRequire(import.meta.url)(path) as DecoderAddon;
    if (typeof addon.decoderLayout !== "function" || typeof addon.attachEngine !== "function") {
      throw new Error("the addon predates the engine ABI (rebuild it: `npm run build:native`)");
    }
    if (typeof addon.decodeStep !== "function") {
      throw new Error("the addon predates the decode step (rebuild it: `npm run build:native`)");
    }
    loaded = { addon, layout: compileLayout(addon.decoderLayout()), path };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const reason =
      e.code === "MODULE_NOT_FOUND"
        ? `${path} is not built (run \`npm run build:native\`; needs g++ and make)`
        : `${path}: ${e.message}`;
    loaded = { reason, path };
  }
  return loaded;
}

/**
 * The fused decoder's addon on the active engine: undefined unless core's native addon is active (the
 * `native-blas` plugin on `cpu`) and this addon loads and takes core's engine ABI.
 * @internal
 */
export function activeDecoderAddon(): ActiveDecoderAddon | undefined {
  const engine = activeNativeAddon()?.engineAbi;
  if (engine === undefined) return undefined;
  const l = load();
  if (l.addon === undefined || l.layout === undefined) return undefined;
  if (l.engine !== engine) {
    try {
      l.addon.attachEngine(engine);
      l.engine = engine;
    } catch (err) {
      loaded = { reason: `${l.path}: ${(err as Error).message}`, path: l.path };
      return undefined;
    }
  }
  return { addon: l.addon, layout: l.layout };
}

/**
 * Whether the fused decoder's addon loads here, and why not. Loads it on first call (and, while core's
 * native addon is active, hands it core's engine); never throws.
 */
export function nativeDecoderStatus(): NativeDecoderStatus {
  const active = activeDecoderAddon();
  const { addon, reason, path } = load();
  if (addon === undefined) return { available: false, reason, path };
  return active !== undefined
    ? { available: true, path, bf16: active.addon.decoderInfo().bf16 }
    : { available: true, path };
}

/**
 * Seconds the fused decoder spent per phase (`forward.projections`, `backward.attention`, …) since the
 * last reset, or undefined when its addon is not loaded. For profiling (`bench/decoder-profile.mjs`).
 * @param reset - Zero the counters after reading them.
 */
export function nativeDecoderProfile(reset = false): Record<string, number> | undefined {
  return load().addon?.decoderProfile(reset);
}
