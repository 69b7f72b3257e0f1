/**
 * Issue 8: the fused native decoder (cpu + `native-blas`, the addon of packages/models/native) computes
 * the same token log-probs, statistics and gradients as the tfjs decoder for every family layout (the
 * DPO-training comparison with the portable paths is in native-blas.test.ts).
 */
import {
  fusedSequenceLogProbs,
  initEngine,
  lmHeadLogProbs,
  nativeBlasPlugin,
  Rng,
  shutdownEngine,
  tf,
} from "@prefkit/core";
import { getPeftModel, PreTrainedModelForCausalLM } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FAMILIES, randomModel } from "../generation/helpers.js";
import { skipWithoutNativeDecoder } from "./native-helpers.js";

const SKIP = skipWithoutNativeDecoder("native decoder tests");

afterAll(() => shutdownEngine());

// Every family layout, with every weight (biases, norm scales) randomised: the generation tests' models.
const CASES = Object.entries(FAMILIES);
const LLAMA = FAMILIES["llama_gqa"]!;
const TIED_LLAMA = FAMILIES["smollm_tied"]!;

const B = 3;
const T = 9;
function batch(vocab: number) {
  const rng = new Rng(5);
  const ids = Array.from({ length: B }, () => Array.from({ length: T }, () => rng.int(vocab)));
  // Row 1 right-padded, row 2 left-padded with its positions starting at 0 on the first real token.
  const mask = [
    [1, 1, 1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1, 0, 0, 0],
    [0, 0, 1, 1, 1, 1, 1, 1, 1],
  ];
  const positions = mask.map((row) => {
    let p = -1;
    return row.map((m) => (m ? ++p : 0));
  });
  const labels = ids.map((row) => [...row.slice(1), 0]);
  return { ids, mask, positions, labels };
}

/** Weighted sum of the per-row log-probs, its gradients and the stats, through `compute`. */
function valueAndGrads(
  model: PreTrainedModelForCausalLM,
  compute: () => { logProbs: tf.Tensor1D; stats?: tf.Tensor2D },
): { value: number; grads: Float32Array[]; stats: Float32Array } {
  const weights = tf.tensor1d(Array.from({ length: B * T }, (_, i) => ((i * 7) % 5) - 2));
  let stats = new Float32Array();
  const { value, grads } = tf.variableGrads(() => {
    const out = compute();
    if (out.stats) stats = out.stats.dataSync().slice() as Float32Array;
    return tf.sum(tf.mul(out.logProbs, weights)) as tf.Scalar;
  }, model.trainableVariables());
  const result = {
    value: value.dataSync()[0]!,
    grads: model.trainableVariables().map((v) => grads[v.name]!.dataSync().slice() as Float32Array),
    stats,
  };
  tf.dispose([value, weights, ...Object.values(grads)]);
  return result;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

describe.skipIf(SKIP)("native fused decoder", () => {
  beforeAll(async () => {
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
  });

  it.each(CASES)("%s: log-probs, stats and every gradient equal the tfjs decoder's", (_, config) => {
    const baseline = tf.memory().numTensors;
    const model = randomModel(config, 3);
    const { ids, mask, positions, labels } = batch(model.decoderConfig.vocabSize);
    const inputs = { inputIds: ids, attentionMask: mask, positionIds: positions };
    const labelTensor = tf.tensor2d(labels, [B, T], "int32");

    const native = valueAndGrads(model, () => {
      const out = model.directTokenLogProbs(inputs, labelTensor, { withStats: true });
      expect(out, "the native path applies to this layout").toBeDefined();
      return out!;
    });
    const reference = valueAndGrads(model, () => {
      const hidden = model.forwardHidden(inputs);
      return lmHeadLogProbs(tf.reshape(hidden, [B * T, -1]) as tf.Tensor2D, model.lmHeadWeight()!, labelTensor, {
        withStats: true,
      });
    });

    expect(Math.abs(native.value - reference.value)).toBeLessThan(1e-3);
    expect(Math.abs(native.value)).toBeGreaterThan(1); // not trivially zero
    for (let i = 0; i < native.grads.length; i++) {
      const scale = Math.max(...reference.grads[i]!.map(Math.abs));
      expect(scale).toBeGreaterThan(0);
      expect(maxAbsDiff(native.grads[i]!, reference.grads[i]!) / Math.max(1, scale)).toBeLessThan(1e-5);
    }
    expect(maxAbsDiff(native.stats, reference.stats)).toBeLessThan(1e-4);
    labelTensor.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it("LoRA (with dropout, in training): log-probs and the adapters' gradients equal the tfjs path's", () => {
    const baseline = tf.memory().numTensors;
    const config = TIED_LLAMA;
    const lora = { r: 4, loraAlpha: 8, loraDropout: 0.25, targetModules: ["q_proj", "v_proj", "o_proj", "down_proj"] };
    // Two identical adapted models: same base seed, same adapter init and dropout RNG.
    const models = [0, 1].map(() => {
      const base = randomModel(config, 3);
      const peft = getPeftModel(base, lora, { seed: 9 });
      // B starts at zero (PEFT's init); make the update non-zero so that every path matters.
      for (const [name, v] of peft.namedParameters()) {
        if (name.includes("lora_B")) tf.tidy(() => v.assign(tf.randomNormal(v.shape, 0, 0.2, "float32", 5)));
      }
      return { base, peft };
    });
    const { ids, mask, positions, labels } = batch(models[0]!.base.decoderConfig.vocabSize);
    const inputs = { inputIds: ids, attentionMask: mask, positionIds: positions };
    const labelTensor = tf.tensor2d(labels, [B, T], "int32");
    const gradsOf = (peft: (typeof models)[number]["peft"], compute: () => { logProbs: tf.Tensor1D }) => {
      const vars = peft.trainableVariables();
      expect(vars.length).toBe(16); // lora_A and lora_B of 4 projections in each of 2 layers
      const weights = tf.tensor1d(Array.from({ length: B * T }, (_, i) => ((i * 7) % 5) - 2));
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(compute().logProbs, weights)) as tf.Scalar, vars);
      const out = { value: value.dataSync()[0]!, grads: vars.map((v) => grads[v.name]!.dataSync().slice()) };
      tf.dispose([value, weights, ...Object.values(grads)]);
      return out;
    };
    const [a, b] = models;
    const native = gradsOf(a!.peft, () => {
      const out = a!.base.directTokenLogProbs(inputs, labelTensor, {});
      expect(out, "the native path applies to LoRA-adapted projections").toBeDefined();
      return out!;
    });
    const reference = gradsOf(b!.peft, () => {
      const hidden = b!.base.forwardHidden(inputs);
      return lmHeadLogProbs(tf.reshape(hidden, [B * T, -1]) as tf.Tensor2D, b!.base.lmHeadWeight()!, labelTensor);
    });
    expect(Math.abs(native.value - reference.value)).toBeLessThan(1e-3);
    for (let i = 0; i < native.grads.length; i++) {
      const scale = Math.max(...reference.grads[i]!.map(Math.abs));
      expect(scale).toBeGreaterThan(0);
      expect(
        maxAbsDiff(native.grads[i]! as Float32Array, reference.grads[i]! as Float32Array) / Math.max(1, scale),
      ).toBeLessThan(1e-5);
    }
    // With adapters disabled the native path runs the base model (what the DPO reference uses).
    const disabled = a!.peft.withAdaptersDisabled(() =>
      tf.tidy(() => a!.base.directTokenLogProbs(inputs, labelTensor, {})!.logProbs.dataSync().slice()),
    );
    const plain = randomModel(config, 3);
    const expected = tf.tidy(() => plain.directTokenLogProbs(inputs, labelTensor, {})!.logProbs.dataSync().slice());
    expect(maxAbsDiff(disabled as Float32Array, expected as Float32Array)).toBeLessThan(1e-6);
    plain.dispose();
    labelTensor.dispose();
    for (const m of models) m.peft.dispose();
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it("is not used when lm_head is wrapped (the tfjs path runs instead)", () => {
    const model = PreTrainedModelForCausalLM.fromConfig(LLAMA, { seed: 3 });
    const peft = getPeftModel(model, { r: 2, loraAlpha: 4, targetModules: ["lm_head"] }, { seed: 0 });
    const labels = tf.tensor2d([[1, 2, 0]], [1, 3], "int32");
    expect(model.directTokenLogProbs({ inputIds: [[3, 1, 2]] }, labels, {})).toBeUndefined();
    labels.dispose();
    peft.dispose();
  });

  it("never overwrites a gradient tensor that is still alive", () => {
    const model = PreTrainedModelForCausalLM.fromConfig(LLAMA, { seed: 3 });
    const ids = [[3, 1, 2, 7, 9]];
    const completion = [[0, 0, 1, 1, 1]];
    const step = (sign: number) =>
      tf.variableGrads(
        () => tf.mul(fusedSequenceLogProbs(model, ids, completion).sums.sum(), sign) as tf.Scalar,
        model.trainableVariables(),
      );
    const first = step(1);
    const kept = Object.values(first.grads)[0]!;
    const before = kept.dataSync().slice();
    const second = step(-1); // the opposite gradient: written elsewhere because `first` is alive
    expect(Array.from(kept.dataSync())).toEqual(Array.from(before));
    const again = Object.values(second.grads)[0]!.dataSync();
    for (let i = 0; i < before.length; i++) expect(again[i]).toBeCloseTo(-before[i]!, 6);
    // A clone keeps the data alive after its original is disposed: still not reused.
    const firstArray = kept.dataSync();
    const clone = tf.clone(kept);
    tf.dispose([first.value, ...Object.values(first.grads)]);
    const third = step(1);
    expect(Object.values(third.grads)[0]!.dataSync()).not.toBe(firstArray);
    expect(Array.from(clone.dataSync())).toEqual(Array.from(before));
    // Once nothing holds them, the buffers are reused (no fresh allocation per step).
    clone.dispose();
    tf.dispose([second.value, ...Object.values(second.grads), third.value, ...Object.values(third.grads)]);
    const fourth = step(1);
    const reused = Object.values(fourth.grads)[0]!.dataSync();
    expect(reused === firstArray || reused === again).toBe(true);
    expect(Array.from(reused)).toEqual(Array.from(before));
    tf.dispose([fourth.value, ...Object.values(fourth.grads)]);
    model.dispose();
  });
});

describe.skipIf(SKIP)("native fused decoder: hidden states", () => {
  beforeAll(async () => {
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
  });

  it.each(CASES)("%s: forwardHidden and its gradients equal the tfjs decoder's", (_, config) => {
    const baseline = tf.memory().numTensors;
    const model = randomModel(config, 3);
    const { ids, mask, positions } = batch(model.decoderConfig.vocabSize);
    const inputs = { inputIds: ids, attentionMask: mask, positionIds: positions };
    const h = model.decoderConfig.hiddenSize;
    const probe = tf.randomNormal([B, T, h], 0, 1, "float32", 4);
    const labels = tf.tensor2d([[1, 2]], [1, 2], "int32");
    const direct = model.directTokenLogProbs({ inputIds: [[1, 1]] }, labels, {});
    expect(direct, "the native path applies (so forwardHidden takes it too)").toBeDefined();
    tf.dispose([labels, direct!.logProbs]);
    const run = (tfjsPath: boolean) => {
      const vars = model.trainableVariables();
      const { value, grads } = tf.variableGrads(() => {
        // outputHiddenStates forces the tfjs decoder; without it the native path runs.
        const hidden = tfjsPath
          ? model.decoder.forwardHidden(inputs, { outputHiddenStates: true }).hidden
          : model.forwardHidden(inputs);
        return tf.sum(tf.mul(hidden, probe)) as tf.Scalar;
      }, vars);
      const out = {
        value: value.dataSync()[0]!,
        grads: Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, g.dataSync().slice() as Float32Array])),
      };
      tf.dispose([value, ...Object.values(grads)]);
      return out;
    };
    const native = run(false);
    const reference = run(true);
    expect(Math.abs(native.value - reference.value)).toBeLessThan(1e-3);
    expect(Object.keys(native.grads).sort()).toEqual(Object.keys(reference.grads).sort());
    for (const [name, g] of Object.entries(reference.grads)) {
      const scale = Math.max(...g.map(Math.abs));
      expect(maxAbsDiff(native.grads[name]!, g) / Math.max(1, scale), name).toBeLessThan(1e-5);
    }
    probe.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(baseline);
  });
});
