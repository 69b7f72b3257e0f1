/**
 * The decoder's weight inventory: expected HF tensor names and shapes for a
 * {@link DecoderConfig}, validation of a loaded checkpoint against it, and HF-style random
 * initialisation.
 * @module
 */
import { ConfigError, type Rng, tf } from "@prefkit/core";
import type { TensorRecord } from "../../io/index.js";
import type { DecoderConfig } from "../config.js";

/** Every tensor the decoder owns, by HF name, with its shape. `lm_head.weight` only when untied. */
export function expectedWeightShapes(c: DecoderConfig): Map<string, number[]> {
  const s = new Map<string, number[]>();
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  s.set("model.embed_tokens.weight", [c.vocabSize, c.hiddenSize]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}`;
    s.set(`${p}.input_layernorm.weight`, [c.hiddenSize]);
    s.set(`${p}.self_attn.q_proj.weight`, [q, c.hiddenSize]);
    s.set(`${p}.self_attn.k_proj.weight`, [kv, c.hiddenSize]);
    s.set(`${p}.self_attn.v_proj.weight`, [kv, c.hiddenSize]);
    if (c.attentionBias) {
      s.set(`${p}.self_attn.q_proj.bias`, [q]);
      s.set(`${p}.self_attn.k_proj.bias`, [kv]);
      s.set(`${p}.self_attn.v_proj.bias`, [kv]);
    }
    s.set(`${p}.self_attn.o_proj.weight`, [c.hiddenSize, q]);
    if (c.attentionOutputBias) s.set(`${p}.self_attn.o_proj.bias`, [c.hiddenSize]);
    if (c.qkNorm) {
      s.set(`${p}.self_attn.q_norm.weight`, [c.headDim]);
      s.set(`${p}.self_attn.k_norm.weight`, [c.headDim]);
    }
    s.set(`${p}.post_attention_layernorm.weight`, [c.hiddenSize]);
    s.set(`${p}.mlp.gate_proj.weight`, [c.intermediateSize, c.hiddenSize]);
    s.set(`${p}.mlp.up_proj.weight`, [c.intermediateSize, c.hiddenSize]);
    s.set(`${p}.mlp.down_proj.weight`, [c.hiddenSize, c.intermediateSize]);
    if (c.mlpBias) {
      s.set(`${p}.mlp.gate_proj.bias`, [c.intermediateSize]);
      s.set(`${p}.mlp.up_proj.bias`, [c.intermediateSize]);
      s.set(`${p}.mlp.down_proj.bias`, [c.hiddenSize]);
    }
  }
  s.set("model.norm.weight", [c.hiddenSize]);
  if (!c.tieWordEmbeddings) s.set("lm_head.weight", [c.vocabSize, c.hiddenSize]);
  return s;
}

/**
 * Check that `weights` holds exactly the expected tensors with the expected shapes.
 * @throws ConfigError naming the first missing, unexpected or mis-shaped tensor.
 */
export function validateWeights(c: DecoderConfig, weights: ReadonlyMap<string, { shape: number[] }>, file?: string) {
  const expected = expectedWeightShapes(c);
  for (const [name, shape] of expected) {
    const got = weights.get(name);
    if (!got)
      throw new ConfigError("missing tensor: the config requires it but the checkpoint lacks it", {
        file,
        tensor: name,
      });
    if (got.shape.length !== shape.length || got.shape.some((d, i) => d !== shape[i])) {
      throw new ConfigError(`wrong shape [${got.shape.join(", ")}], the config implies [${shape.join(", ")}]`, {
        file,
        tensor: name,
      });
    }
  }
  for (const name of weights.keys()) {
    if (!expected.has(name)) {
      throw new ConfigError("unexpected tensor: the checkpoint has it but the config does not use it", {
        file,
        tensor: name,
      });
    }
  }
}

/**
 * Random weights as transformers' `_init_weights` makes them: linear and embedding weights
 * ~ N(0, initializerRange²), biases 0, norm scales 1, the padding token's embedding row 0.
 */
export function initialWeights(c: DecoderConfig, rng: Rng): Map<string, TensorRecord> {
  const out = new Map<string, TensorRecord>();
  for (const [name, shape] of expectedWeightShapes(c)) {
    const size = shape.reduce((a, d) => a * d, 1);
    const data = new Float32Array(size);
    if (name.endsWith("norm.weight")) data.fill(1);
    else if (name.endsWith(".weight")) for (let i = 0; i < size; i++) data[i] = rng.normal() * c.initializerRange;
    if (name === "model.embed_tokens.weight" && c.padTokenId !== null && c.padTokenId < c.vocabSize) {
      data.fill(0, c.padTokenId * c.hiddenSize, (c.padTokenId + 1) * c.hiddenSize);
    }
    out.set(name, { dtype: "F32", shape, data });
  }
  return out;
}

/** Trainable float32 variables holding `weights`, by the same names (what model constructors own). */
export function variablesFromWeights(
  weights: Iterable<readonly [string, Pick<TensorRecord, "shape" | "data">]>,
): Map<string, tf.Variable> {
  const out = new Map<string, tf.Variable>();
  for (const [name, w] of weights) {
    const initial = tf.tensor(w.data, w.shape, "float32");
    out.set(name, tf.variable(initial, true));
    initial.dispose();
  }
  return out;
}

/**
 * The current values of `variables` as weight records, copied: on cpu `dataSync()` is the variable's own
 * array, which AdamW may update in place, so a model built from it must not share it.
 */
export function copyOfWeights(
  variables: Iterable<readonly [string, tf.Variable]>,
): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, v] of variables) out.set(name, { shape: v.shape, data: (v.dataSync() as Float32Array).slice() });
  return out;
}
