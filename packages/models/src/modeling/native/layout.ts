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
import type { DenseLinearDescription, LinearModule, LoraLinearDescription } from "../decoder/linear.js";

/** The addon's slot names: the weights array is `global`, then `layer` once per layer; LoRA comes per layer and projection. */
export interface DecoderLayoutNames {
  /** Slots once per model (`embed`, `final_norm`, `lm_head`). */
  global: string[];
  /** Slots once per layer (`input_norm`, `q`, …, `q_bias`, …, `k_norm`). */
  layer: string[];
  /** The projections a LoRA adapter may wrap, in the LoRA arrays' order. */
  projections: string[];
}

/** A projection as the native decoder runs it: its float32 weight and bias, and its adapter while active. */
interface NativeProjection {
  weight: tf.Variable;
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

const GLOBALS: Record<string, (decoder: DecoderModules, head: DenseLinearDescription) => tf.Variable | undefined> = {
  embed: (d) => {
    const table = d.embedding.describe();
    return table.kind === "dense" ? table.weight : undefined; // a 16-bit table: the native decoder declines
  },
  final_norm: (d) => d.norm.weight,
  lm_head: (_, head) => head.weight,
};

type LayerSlot = (layer: DecoderLayer, projections: ReadonlyMap<string, NativeProjection>) => tf.Variable | null;

/** The layout with every name resolved to where the decoder keeps that weight. */
export interface CompiledLayout {
  /** The addon's names, as read. */
  readonly names: DecoderLayoutNames;
  readonly global: ReadonlyArray<(decoder: DecoderModules, head: DenseLinearDescription) => tf.Variable | undefined>;
  readonly layer: readonly LayerSlot[];
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
  return { names, global, layer, modules, biased };
}

/** What the plain projection under `m` computes with its active adapter; undefined for anything else. */
function nativeProjection(m: LinearModule): NativeProjection | undefined {
  const d = m.describe?.();
  if (d?.kind === "dense") return { weight: d.weight, bias: d.bias, adapter: null };
  if (d?.kind === "lora" && d.base?.kind === "dense") {
    return { weight: d.base.weight, bias: d.base.bias, adapter: d.active ? d : null };
  }
  return undefined; // 16-bit storage, LoRA over it, a module that does not describe itself
}

/** The decoder's variables in the addon's layout, with its LoRA adapters. */
export interface LayoutArrays {
  /** The global slots, then the layer slots per layer (null for absent biases / q-k norms). */
  variables: (tf.Variable | null)[];
  /** Per layer and LoRA projection: `[lora_A, lora_B]`, nulls when not adapted. */
  loraVariables: (tf.Variable | null)[];
  /** Per layer and LoRA projection: `[scale, rank]` (rank 0 when not adapted). */
  loraShape: Float64Array;
  /** Per layer and LoRA projection: the active adapter, or null. */
  adapters: (LoraLinearDescription | null)[];
}

/**
 * Gather `decoder`'s variables by slot name, or undefined when a module is something the native decoder
 * does not run (a projection that does not describe itself as dense or LoRA over dense, a 16-bit
 * embedding, a bias the layout has no slot for, a wrapped or biased LM head, biases that do not match the
 * family's flag).
 */
export function layoutArrays(decoder: DecoderModules, layout: CompiledLayout): LayoutArrays | undefined {
  const head = decoder.lmHead.describe?.();
  if (head?.kind !== "dense" || head.bias !== null) return undefined;
  const variables: (tf.Variable | null)[] = [];
  for (const slot of layout.global) {
    const variable = slot(decoder, head);
    if (variable === undefined) return undefined;
    variables.push(variable);
  }
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
  return { variables, loraVariables, loraShape, adapters };
}
