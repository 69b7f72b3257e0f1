/**
 * Issue 8 acceptance: the native BLAS path (cpu + OpenBLAS matmuls) and the fast path (its fused native
 * decoder, through `fusedSequenceLogProbs`, plus the in-place native AdamW) give the same DPO losses to
 * 1e-4 over 5 AdamW steps as the portable paths (stock cpu, and wasm with prefkit's kernels).
 */
import {
  AdamW,
  fusedSequenceLogProbs,
  initEngine,
  NATIVE_BLAS_PLUGIN,
  nativeBlasPlugin,
  nativeBlasStatus,
  sequenceLogProbs,
  shutdownEngine,
  tf,
} from "@prefkit/core";
import { PreTrainedModelForCausalLM } from "@prefkit/models";
import { afterAll, describe, expect, it } from "vitest";

const status = nativeBlasStatus();
const underCi = process.env.CI === "true";
if (!status.available && !underCi) console.warn(`native-blas model test skipped: ${status.reason}`);

afterAll(() => shutdownEngine());

const TINY_LLAMA = {
  model_type: "llama",
  vocab_size: 96,
  hidden_size: 48,
  intermediate_size: 80,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 64,
  tie_word_embeddings: true,
};

// Two pairs: rows 0–1 chosen, rows 2–3 rejected; the completion starts at position 3.
const IDS = [
  [1, 5, 9, 14, 22, 31, 40, 7],
  [1, 8, 3, 60, 61, 62, 2, 0],
  [1, 5, 9, 70, 71, 12, 13, 50],
  [1, 8, 3, 90, 4, 4, 2, 0],
];
const ATTENTION = [
  [1, 1, 1, 1, 1, 1, 1, 1],
  [1, 1, 1, 1, 1, 1, 1, 0],
  [1, 1, 1, 1, 1, 1, 1, 1],
  [1, 1, 1, 1, 1, 1, 1, 0],
];
const COMPLETION = ATTENTION.map((row) => row.map((m, t) => (t >= 3 ? m : 0)));
const BETA = 0.1;

type LogProbs = (
  model: PreTrainedModelForCausalLM,
  ids: number[][],
  mask: number[][],
  options: { attentionMask: number[][] },
) => { sums: tf.Tensor1D };

/**
 * Five AdamW steps of the sigmoid DPO loss against a frozen reference, log-probs through `logProbs`;
 * the loss of each step. With `expectFusedDecoder` set, checks whether the native fused decoder applies.
 */
function dpoLosses(logProbs: LogProbs = sequenceLogProbs, expectFusedDecoder?: boolean): number[] {
  const baseline = tf.memory().numTensors;
  const policy = PreTrainedModelForCausalLM.fromConfig(TINY_LLAMA, { seed: 7 });
  const reference = policy.frozenCopy();
  if (expectFusedDecoder !== undefined) {
    const probe = tf.tensor2d([[1, 2]], [1, 2], "int32");
    const direct = policy.directTokenLogProbs({ inputIds: [[1, 1]] }, probe, {});
    expect(direct !== undefined).toBe(expectFusedDecoder);
    tf.dispose([probe, direct?.logProbs]);
  }
  const optimizer = new AdamW({ learningRate: 1e-2, weightDecay: 0.01 });
  let afterFirstStep = 0;
  const refLogps = tf.tidy(() => {
    const out = logProbs(reference, IDS, COMPLETION, { attentionMask: ATTENTION });
    return tf.keep(out.sums);
  });
  const losses: number[] = [];
  for (let step = 0; step < 5; step++) {
    const loss = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => {
        const logps = logProbs(policy, IDS, COMPLETION, { attentionMask: ATTENTION }).sums;
        const ratios = tf.sub(logps, refLogps);
        const margin = tf.sub(tf.slice(ratios, [0], [2]), tf.slice(ratios, [2], [2]));
        // −log σ(β·margin), written as softplus (tf.logSigmoid's gradient fails on intermediates).
        return tf.mean(tf.softplus(tf.neg(tf.mul(margin, BETA)))) as tf.Scalar;
      }, policy.trainableVariables());
      optimizer.applyGradients(grads);
      return value.dataSync()[0]!;
    });
    losses.push(loss);
    // Flat from step to step once AdamW has made its moments.
    if (step === 0) afterFirstStep = tf.memory().numTensors;
    else expect(tf.memory().numTensors).toBe(afterFirstStep);
  }
  // The frozen reference shares no memory with the policy (AdamW updates the policy in place on cpu).
  const refAfter = tf.tidy(() => logProbs(reference, IDS, COMPLETION, { attentionMask: ATTENTION }).sums.dataSync());
  expect(Array.from(refAfter)).toEqual(Array.from(refLogps.dataSync()));
  refLogps.dispose();
  optimizer.dispose();
  reference.dispose();
  policy.dispose();
  expect(tf.memory().numTensors).toBe(baseline);
  return losses;
}

describe.skipIf(!status.available && !underCi)("native-blas on a 2-layer tiny Llama", () => {
  it("gives the same DPO losses over 5 AdamW steps as stock cpu and wasm (1e-4)", async () => {
    const missing = nativeBlasPlugin({ addonPath: "/nonexistent/prefkit_native.node" });
    await initEngine({ backend: "cpu", threads: 1, plugins: [missing] });
    const start = tf.memory().numTensors;
    const stockCpu = dpoLosses();
    await initEngine({ backend: "wasm", threads: 1 });
    const wasm = dpoLosses();
    const info = await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
    expect(info.kernelPlugins.map((p) => p.name)).toContain(NATIVE_BLAS_PLUGIN);
    const native = dpoLosses();

    expect(native).toHaveLength(5);
    // The policy starts equal to the reference: the first loss is log 2.
    expect(native[0]).toBeCloseTo(Math.log(2), 6);
    // Training moves the loss, so the comparison covers real updates.
    expect(Math.abs(native[4]! - native[0]!)).toBeGreaterThan(1e-3);
    for (let i = 0; i < 5; i++) {
      expect(Math.abs(native[i]! - stockCpu[i]!) / Math.max(1, Math.abs(stockCpu[i]!))).toBeLessThanOrEqual(1e-4);
      expect(Math.abs(native[i]! - wasm[i]!) / Math.max(1, Math.abs(wasm[i]!))).toBeLessThanOrEqual(1e-4);
    }
    expect(tf.memory().numTensors).toBe(start);
  });

  it("the fused native decoder gives the same DPO losses over 5 AdamW steps as wasm and stock cpu (1e-4)", async () => {
    await initEngine({ backend: "wasm", threads: 1 });
    const wasm = dpoLosses(fusedSequenceLogProbs, false);
    const missing = nativeBlasPlugin({ addonPath: "/nonexistent/prefkit_native.node" });
    await initEngine({ backend: "cpu", threads: 1, plugins: [missing] });
    const stockCpu = dpoLosses(fusedSequenceLogProbs, false);
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
    const native = dpoLosses(fusedSequenceLogProbs, true);
    expect(native[0]).toBeCloseTo(Math.log(2), 6);
    expect(Math.abs(native[4]! - native[0]!)).toBeGreaterThan(1e-3);
    for (let i = 0; i < 5; i++) {
      expect(Math.abs(native[i]! - wasm[i]!)).toBeLessThanOrEqual(1e-4);
      expect(Math.abs(native[i]! - stockCpu[i]!)).toBeLessThanOrEqual(1e-4);
    }
  });
});
