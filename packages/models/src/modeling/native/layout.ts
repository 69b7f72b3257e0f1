/**
 * The native decoder's weight layout, read from its addon (`decoderLayout()`, whose one table is
 * `packages/models/native/src/layout.h`), and the decoder's variables gathered into it by slot name.
 * No position is written here: each name maps to where the decoder keeps that weight, and a name this
 * package does not know is refused when the addon loads.
 * @module
 */
import type { tf } from "@prefkit/core";
import type { DecoderModules } from "../decoder/accelerator.js";
import type { DecoderLayer } from "../decoder/layer.js";
import type {
  Dense16LinearDescription,
  DenseLinearDescription,
  LinearModule,
  LoraLinearDescription,
} from "../decoder/linear.js";

/** The addon's slot names: the weights array is `global`, then `layer` once per layer; LoRA comes per layer and projection. */
export interface DecoderLayoutNames {
  /** Slots once per model (`embed`, `final_norm`, `lm_head`). */
  global: string[];
  /** Slots once per layer (`input_norm`, `q`, …, `q_bias`, …, `k_norm`). */
  layer: string[];
  /** The projections a LoRA adapter may wrap, in the LoRA arrays' order. */
  projections: string[];
}

/**
 * What a weight slot holds: a float32 variable, a 16-bit stored weight (AMP's storage, or a model loaded
 * in 16 bits: the decoder runs it from a pack), or nothing (a family's absent bias or norm).
 */
export type SlotWeight = tf.Variable | Dense16LinearDescription | null;

/** Whether a slot's weight is stored in 16 bits (a `dense16` description). */
export function isDense16(w: SlotWeight): w is Dense16LinearDescription {
  return w !== null && (w as Partial<Dense16LinearDescription>).kind === "dense16";
}

/** The plain projections a slot may hold: `dense` or `dense16`. */
type PlainDescription = DenseLinearDescription | Dense16LinearDescription;

/** A projection as the native decoder runs it: its weight and bias, and its adapter while active. */
interface NativeProjection {
  weight: tf.Variable | Dense16LinearDescription;
  bias: tf.Variable | null;
  adapter: LoraLinearDescription | null;
}

const PROJECTIONS: Record<string, (layer: DecoderLayer) => LinearModule> = {
  q: (l) => l.selfAttn.modules.qProj,
  k: (l) => l.selfAttn.modules.kProj,
  v: (l) => l.selfAttn.modules.vProj,
  o: (l) => l.selfAttn.modules.oProj,
  gate: (l) => l.mlp.modules.gateProj,
  up: (l) => l.mlp.modules.upProj,
  down: (l) => l.mlp.modules.downProj,
};

const NORMS: Record<string, (layer: DecoderLayer) => tf.Variable | null> = {
  input_norm: (l) => l.inputNorm.weight,
  post_norm: (l) => l.postAttentionNorm.weight,
  q_norm: (l) => l.selfAttn.modules.qNorm?.weight ?? null,
  k_norm: (l) => l.selfAttn.modules.kNorm?.weight ?? null,
};

type GlobalSlot = (decoder: DecoderModules, head: PlainDescription) => SlotWeight;

const GLOBALS: Record<string, GlobalSlot> = {
  embed: (d) => {
    const table = d.embedding.describe();
    return table.kind === "dense" ? table.weight : table; // a 16-bit table: rows widened as they are gathered
  },
  final_norm: (d) => d.norm.weight,
  lm_head: (_, head) => (head.kind === "dense16" ? head : head.weight),
};

/** Global slots whose weight may be a pack (the LM head's products). */
const PACKABLE_GLOBALS = new Set(["lm_head"]);

type LayerSlot = (layer: DecoderLayer, projections: ReadonlyMap<string, NativeProjection>) => SlotWeight;

/** The layout with every name resolved to where the decoder keeps that weight. */
export interface CompiledLayout {
  /** The addon's names, as read. */
  readonly names: DecoderLayoutNames;
  readonly global: readonly GlobalSlot[];
  readonly layer: readonly LayerSlot[];
  /** Per global slot, then per layer slot: whether its weight is a matrix the addon takes as a pack. */
  readonly packable: { readonly global: readonly boolean[]; readonly layer: readonly boolean[] };
  /** The projection modules the layer slots read, by name. */
  readonly modules: ReadonlyMap<string, (layer: DecoderLayer) => LinearModule>;
  /** Projections whose bias has a slot (any other bias makes the native decoder decline). */
  readonly biased: ReadonlySet<string>;
}

function unknown(kind: string, name: string): Error {
  return new Error(
    `native decoder: the addon's layout has a ${kind} slot "${name}" that this @prefkit/models does not fill ` +
      "(a stale build? rebuild with `npm run build:native`)",
  );
}

/**
 * Resolve the addon's slot names.
 * @throws Error (one line) naming a slot this package does not know.
 */
export function compileLayout(names: DecoderLayoutNames): CompiledLayout {
  const global = names.global.map((name) => {
    const slot = GLOBALS[name];
    if (slot === undefined) throw unknown("global", name);
    return slot;
  });
  const modules = new Map<string, (layer: DecoderLayer) => LinearModule>();
  const biased = new Set<string>();
  const layer = names.layer.map((name): LayerSlot => {
    const norm = NORMS[name];
    if (norm !== undefined) return (l) => norm(l);
    const projection = PROJECTIONS[name];
    if (projection !== undefined) {
      modules.set(name, projection);
      return (_, p) => p.get(name)!.weight;
    }
    const biasOf = name.endsWith("_bias") ? name.slice(0, -"_bias".length) : undefined;
    if (biasOf !== undefined && PROJECTIONS[biasOf] !== undefined) {
      biased.add(biasOf);
      return (_, p) => p.get(biasOf)?.bias ?? null;
    }
    throw unknown("layer", name);
  });
  for (const name of names.projections) if (!modules.has(name)) throw unknown("LoRA projection", name);
  for (const name of biased) if (!modules.has(name)) throw unknown("layer", `${name}_bias`);
  const packable = {
    global: names.global.map((name) => PACKABLE_GLOBALS.has(name)),
    layer: names.layer.map((name) => modules.has(name)),
  };
  return { names, global, layer, modules, biased, packable };
}

/** The weight of a plain description as a slot holds it. */
function weightOf(d: PlainDescription): tf.Variable | Dense16LinearDescription {
  return d.kind === "dense16" ? d : d.weight;
}

/** What the plain projection under `m` computes with its active adapter; undefined for anything else. */
function nativeProjection(m: LinearModule): NativeProjection | undefined {
  const d = m.describe?.();
  if (d?.kind === "dense" || d?.kind === "dense16") return { weight: weightOf(d), bias: d.bias, adapter: null };
  if (d?.kind === "lora" && (d.base?.kind === "dense" || d.base?.kind === "dense16")) {
    return { weight: weightOf(d.base), bias: d.base.bias, adapter: d.active ? d : null };
  }
  return undefined; // a module that does not describe itself, or LoRA over one
}

/** The decoder's variables in the addon's layout, with its LoRA adapters. */
export interface LayoutArrays {
  /** The global slots, then the layer slots per layer (null for absent biases / q-k norms). */
  variables: SlotWeight[];
  /** How many of `variables` are global slots (the first layer's slots start there). */
  globalSlots: number;
  /** Per entry of `variables`: whether the addon takes that slot's weight as a pack. */
  packable: boolean[];
  /** Per layer and LoRA projection: `[lora_A, lora_B]`, nulls when not adapted. */
  loraVariables: (tf.Variable | null)[];
  /** Per layer and LoRA projection: `[scale, rank]` (rank 0 when not adapted). */
  loraShape: Float64Array;
  /** Per layer and LoRA projection: the active adapter, or null. */
  adapters: (LoraLinearDescription | null)[];
}

/**
 * Gather `decoder`'s variables by slot name, or undefined when a module is something the native decoder
 * does not run (a projection that does not describe itself as dense, dense16 or LoRA over one of them, a
 * bias the layout has no slot for, a wrapped or biased LM head, biases that do not match the family's flag).
 */
export function layoutArrays(decoder: DecoderModules, layout: CompiledLayout): LayoutArrays | undefined {
  const head = decoder.lmHead.describe?.();
  if ((head?.kind !== "dense" && head?.kind !== "dense16") || head.bias !== null) return undefined;
  const variables: SlotWeight[] = layout.global.map((slot) => slot(decoder, head));
  const packable = [...layout.packable.global];
  const lora = layout.names.projections;
  const loraVariables: (tf.Variable | null)[] = [];
  const adapters: (LoraLinearDescription | null)[] = [];
  const loraShape = new Float64Array(decoder.layers.length * lora.length * 2);
  for (const layer of decoder.layers) {
    const projections = new Map<string, NativeProjection>();
    for (const [name, module] of layout.modules) {
      const p = nativeProjection(module(layer));
      if (p === undefined) return undefined;
      const biasFits = layout.biased.has(name) ? (p.bias !== null) === decoder.config.attentionBias : p.bias === null;
      if (!biasFits || (p.adapter !== null && !lora.includes(name))) return undefined;
      projections.set(name, p);
    }
    for (const slot of layout.layer) variables.push(slot(layer, projections));
    packable.push(...layout.packable.layer);
    for (const name of lora) {
      const adapter = projections.get(name)!.adapter;
      const slot = adapters.length;
      adapters.push(adapter);
      loraVariables.push(adapter?.loraA ?? null, adapter?.loraB ?? null);
      if (adapter !== null) {
        loraShape[2 * slot] = adapter.scaling;
        loraShape[2 * slot + 1] = adapter.rank;
      }
    }
  }
  return { variables, globalSlots: layout.global.length, packable, loraVariables, loraShape, adapters };
}

/**
 * The float32 data behind a tensor, read in place (on the cpu backend `dataSync` returns the tensor's own
 * array), or undefined when it holds anything else.
 */
export function float32Array(t: tf.Tensor): Float32Array | undefined {
  const values = t.dtype === "float32" ? t.dataSync() : undefined;
  return values instanceof Float32Array ? values : undefined;
}

/**
 * {@link float32Array} of each variable (null stays null), or undefined when one is not float32 data (a
 * 16-bit stored weight, which a LoRA array never is).
 */
export function float32Arrays(list: readonly SlotWeight[]): Array<Float32Array | null> | undefined {
  const out: Array<Float32Array | null> = [];
  for (const v of list) {
    if (v === null) {
      out.push(null);
      continue;
    }
    const values = isDense16(v) ? undefined : float32Array(v);
    if (values === undefined) return undefined;
    out.push(values);
  }
  return out;
}
