/**
 * The fused LM head path of `PreTrainedModelForCausalLM` (`lmHeadWeight`, `completionLogProbs`, core's
 * `fusedSequenceLogProbs`) against `sequenceLogProbs` on `model.forward(...).logits`: sums, counts,
 * means, per-token values and the gradient of every trainable variable, tied and untied heads.
 */
import { fusedSequenceLogProbs, hasFusedHead, initEngine, sequenceLogProbs, tf } from "@prefkit/core";
import { AutoModelForCausalLM, type PreTrainedModelForCausalLM } from "@prefkit/models";
import { describe, expect, it } from "vitest";

const IDS = [
  [3, 9, 12, 40, 7, 1, 22],
  [0, 0, 5, 6, 33, 2, 61],
  [8, 8, 8, 50, 51, 52, 53],
];
const ATTENTION = [
  [1, 1, 1, 1, 1, 1, 1],
  [0, 0, 1, 1, 1, 1, 1],
  [1, 1, 1, 1, 1, 1, 1],
];
const COMPLETION = [
  [0, 0, 0, 1, 1, 1, 1],
  [0, 0, 0, 0, 1, 1, 1],
  [0, 1, 1, 1, 1, 1, 0],
];

const TINY = {
  model_type: "llama",
  vocab_size: 64,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  tie_word_embeddings: true,
};

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

type Path = "fused" | "unfused";

/** −Σ sums weighted per row, and its gradients for every trainable variable, by parameter name. */
function lossAndGrads(model: PreTrainedModelForCausalLM, path: Path) {
  const rowWeights = tf.tensor1d([1, -0.5, 2]);
  const { value, grads } = tf.variableGrads(() => {
    const lp =
      path === "fused"
        ? model.completionLogProbs(IDS, COMPLETION, { attentionMask: ATTENTION, chunkSize: 5 })
        : sequenceLogProbs(model.forward({ inputIds: IDS, attentionMask: ATTENTION }).logits, IDS, COMPLETION);
    return tf.neg(tf.sum(tf.mul(lp.sums, rowWeights))) as tf.Scalar;
  }, model.trainableVariables());
  const byName = new Map<string, tf.Tensor>();
  for (const [name, variable] of model.namedParameters()) byName.set(name, grads[variable.name]!);
  rowWeights.dispose();
  return { value, grads: byName };
}

describe.each([
  ["cpu", true],
  ["wasm", true],
  ["wasm", false],
] as const)("fused LM head on %s (tied %s)", (backend, tied) => {
  it("completionLogProbs equals sequenceLogProbs over forward logits, values and gradients (1e-4)", async () => {
    await initEngine({ backend, threads: 1 });
    const model = AutoModelForCausalLM.fromConfig({ ...TINY, tie_word_embeddings: tied }, { seed: 4 });
    const before = tf.memory().numTensors;
    expect(hasFusedHead(model)).toBe(true);
    const weight = model.lmHeadWeight()!;
    expect(weight).toBe(
      tied ? model.namedParameters().get("model.embed_tokens.weight") : model.namedParameters().get("lm_head.weight"),
    );

    const fused = fusedSequenceLogProbs(model, IDS, COMPLETION, {
      attentionMask: ATTENTION,
      chunkSize: 4,
      withStats: true,
    });
    const ref = sequenceLogProbs(model, IDS, COMPLETION, { attentionMask: ATTENTION });
    for (const key of ["sums", "counts", "means", "perToken"] as const) {
      expect(fused[key].shape, key).toEqual(ref[key].shape);
      expect(maxAbsDiff(fused[key], ref[key]), key).toBeLessThanOrEqual(1e-4);
    }
    expect(Array.from(fused.counts.dataSync())).toEqual([4, 3, 5]);
    // Stats at position t describe the prediction of token t + 1.
    const expectedStats = tf.tidy(() => {
      const logits = model.forward({ inputIds: IDS, attentionMask: ATTENTION }).logits;
      const logp = tf.logSoftmax(logits);
      const next = tf.tensor2d(
        IDS.map((r) => [...r.slice(1), 0]),
        [3, 7],
        "int32",
      );
      return tf.stack(
        [
          tf.mean(logits, -1),
          tf.neg(tf.sum(tf.mul(tf.exp(logp), logp), -1)),
          tf.cast(tf.equal(tf.argMax(logits, -1), next), "float32"),
        ],
        -1,
      );
    });
    expect(fused.stats!.shape).toEqual([3, 7, 3]);
    expect(maxAbsDiff(fused.stats!, expectedStats)).toBeLessThanOrEqual(1e-4);
    tf.dispose([...Object.values(fused), ...Object.values(ref), expectedStats]);

    const a = lossAndGrads(model, "fused");
    const b = lossAndGrads(model, "unfused");
    expect(maxAbsDiff(a.value, b.value)).toBeLessThanOrEqual(1e-4);
    expect([...a.grads.keys()]).toEqual([...b.grads.keys()]);
    expect(a.grads.size).toBe(model.trainableVariables().length);
    for (const [name, g] of a.grads) {
      expect(g, name).toBeDefined();
      expect(maxAbsDiff(g, b.grads.get(name)!), name).toBeLessThanOrEqual(1e-4);
    }
    tf.dispose([a.value, b.value, ...a.grads.values(), ...b.grads.values()]);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});

describe("lmHeadWeight on cpu", () => {
  it("is undefined once lm_head is wrapped, and completionLogProbs then falls back to forward", async () => {
    await initEngine({ backend: "cpu" });
    const model = AutoModelForCausalLM.fromConfig(TINY, { seed: 2 });
    const before = tf.memory().numTensors;
    const expected = tf.tidy(() => sequenceLogProbs(model, IDS, COMPLETION, { attentionMask: ATTENTION }).sums);
    model.replaceLinear("lm_head", (base) => ({
      name: base.name,
      inFeatures: base.inFeatures,
      outFeatures: base.outFeatures,
      apply: (x) => base.apply(x),
      parameters: () => base.parameters(),
    }));
    expect(model.lmHeadWeight()).toBeUndefined();
    expect(hasFusedHead(model)).toBe(false);
    expect(() => fusedSequenceLogProbs(model, IDS, COMPLETION)).toThrow(/sequenceLogProbs/);
    const lp = model.completionLogProbs(IDS, COMPLETION, { attentionMask: ATTENTION });
    expect(maxAbsDiff(lp.sums, expected)).toBeLessThanOrEqual(1e-6);
    tf.dispose([expected, ...Object.values(lp)]);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});
