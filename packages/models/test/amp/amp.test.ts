import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { tf } from "@prefkit/core";
import {
  AutoModelForCausalLM,
  bf16ToFloat32,
  DynamicLossScaler,
  enableHalfPrecisionStorage,
  f16ToFloat32,
  float32ToBf16,
  float32ToF16,
  HalfPrecisionLinear,
  Linear,
  type PreTrainedModelForCausalLM,
} from "@prefkit/models";
import { beforeAll, describe, expect, it } from "vitest";

const here = dirname(fileURLToPath(import.meta.url));
const BASE_FIXTURE = join(here, "..", "fixtures", "golden", "llama_gqa_left");
const IDS = [
  [1, 17, 99, 3, 42, 7, 120, 5],
  [1, 4, 64, 8, 30, 11, 2, 77],
];

beforeAll(async () => {
  await tf.setBackend("cpu");
});

describe("DynamicLossScaler (torch GradScaler semantics)", () => {
  it("has torch's defaults and is a pass-through when disabled ('auto' on a float32 backend)", () => {
    const s = new DynamicLossScaler({ enabled: true });
    expect(s.state()).toEqual({
      scale: 65536,
      growth_factor: 2,
      backoff_factor: 0.5,
      growth_interval: 2000,
      _growth_tracker: 0,
    });
    const auto = new DynamicLossScaler();
    expect(auto.enabled).toBe(false);
    expect(auto.getScale()).toBe(1);
    const loss = tf.scalar(3);
    expect(auto.scale(loss)).toBe(loss);
    auto.update(true);
    expect(auto.state().scale).toBe(65536); // nothing moves while disabled
    loss.dispose();
    expect(() => new DynamicLossScaler({ backoffFactor: 1 })).toThrow(/field "backoffFactor"/);
    expect(() => new DynamicLossScaler({ growthInterval: 0 })).toThrow(/field "growthInterval"/);
  });

  it("skips overflowing steps and backs off, applies exact unscaled gradients, then grows every growthInterval steps", () => {
    const before = tf.memory().numTensors;
    const w = tf.tidy(() => tf.variable(tf.scalar(1), true, "amp-test-w"));
    const opt = tf.train.sgd(1e-36);
    const scaler = new DynamicLossScaler({ enabled: true, growthInterval: 3 });
    // d(loss)/dw = 1e35: times 65536 it overflows float32 (max 3.4e38) until the scale is below ~3400.
    const lossFn = () => tf.mul(w, 1e35) as tf.Scalar;
    const history: Array<{ scale: number; applied: boolean; w: number; tracker: number }> = [];
    let injectNaN = false;
    for (let step = 0; step < 12; step++) {
      const applied = tf.tidy(() => {
        const { grads } = tf.variableGrads(() => {
          const l = scaler.scale(lossFn());
          return (injectNaN ? tf.mul(l, Number.NaN) : l) as tf.Scalar;
        }, [w]);
        return scaler.step(opt, grads);
      });
      const scaleUsed = scaler.getScale();
      scaler.update();
      history.push({ scale: scaleUsed, applied, w: w.dataSync()[0]!, tracker: scaler.growthTrackerValue });
      injectNaN = step === 8; // a NaN gradient at step 9
    }
    // 65536 → 2048 in five back-offs, every one a skipped step that left w alone
    expect(history.slice(0, 5).map((h) => [h.scale, h.applied, h.w])).toEqual([
      [65536, false, 1],
      [32768, false, 1],
      [16384, false, 1],
      [8192, false, 1],
      [4096, false, 1],
    ]);
    // at 2048 the step applies the UNSCALED gradient: w -= 1e-36 · 1e35 = 0.1
    expect(history[5]!.scale).toBe(2048);
    expect(history[5]!.applied).toBe(true);
    expect(history[5]!.w).toBeCloseTo(0.9, 6);
    // three finite steps (5, 6, 7) → grow to 4096 (which overflows again at step 8 → back to 2048)
    expect(history.slice(5, 8).map((h) => h.tracker)).toEqual([1, 2, 0]);
    expect(history[8]!.scale).toBe(4096);
    expect(history[8]!.applied).toBe(false);
    // injected NaN at step 9 is skipped too and backs off
    expect(history[9]!.scale).toBe(2048);
    expect(history[9]!.applied).toBe(false);
    expect(history[10]!.scale).toBe(1024);
    expect(history[10]!.applied).toBe(true);
    expect(history[11]!.tracker).toBe(2);
    expect(scaler.state().scale).toBe(1024);
    // checkpointable
    const restored = new DynamicLossScaler({ enabled: true, growthInterval: 3 });
    restored.loadState(scaler.state());
    expect(restored.state()).toEqual(scaler.state());
    opt.dispose();
    w.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

/** Unit roundoff of each storage format (round to nearest even): 2^-8 for bf16, 2^-11 for fp16. */
const UNIT_ROUNDOFF = { bfloat16: 2 ** -8, float16: 2 ** -11 } as const;

function frozen(model: PreTrainedModelForCausalLM): PreTrainedModelForCausalLM {
  for (const v of model.namedParameters().values()) v.trainable = false;
  return model;
}

describe("16-bit storage of frozen weights", () => {
  it("HalfPrecisionLinear: forward and input gradient equal a float32 layer on the rounded weight; no weight gradient", () => {
    const w = tf.randomNormal([24, 16], 0, 0.3, "float32", 1);
    const x = tf.randomNormal([2, 5, 16], 0, 1, "float32", 2);
    const data = w.dataSync() as Float32Array;
    const half = HalfPrecisionLinear.fromFloat32("p", { shape: w.shape, data }, "bfloat16");
    expect(half.storedBytes).toBe(24 * 16 * 2);
    // It says what it is (for fused implementations: the native decoder runs it from a pack).
    expect(half.describe()).toEqual({
      kind: "dense16",
      bits: half.bits,
      key: half.weight.storageKey,
      dtype: "bfloat16",
      shape: [24, 16],
      bias: null,
      release: expect.any(Function),
    });
    const rounded = tf.variable(tf.tensor2d(bf16ToFloat32(float32ToBf16(data)), [24, 16]), false);
    const ref = new Linear("p", rounded);
    const dx = (m: { apply(x: tf.Tensor): tf.Tensor }) => tf.grad((xx: tf.Tensor) => tf.sum(tf.square(m.apply(xx))))(x);
    const before = tf.memory().numTensors;
    const [y1, y2] = [half.apply(x), ref.apply(x)];
    const [g1, g2] = [dx(half), dx(ref)];
    expect(tf.memory().numTensors).toBe(before + 4); // the upcast weights were freed
    expect(y1.shape).toEqual([2, 5, 24]);
    expect(Array.from(y1.dataSync())).toEqual(Array.from(y2.dataSync()));
    expect(Array.from(g1.dataSync())).toEqual(Array.from(g2.dataSync()));
    expect(half.parameters().size).toBe(0);
    tf.dispose([y1, y2, g1, g2, w, x, rounded]);
  });

  for (const dtype of ["bfloat16", "float16"] as const) {
    it(`${dtype}: logits equal the float32 model on ${dtype}-rounded weights exactly, and move no more than first-order rounding implies`, async () => {
      const reference = frozen(await AutoModelForCausalLM.fromPretrained(BASE_FIXTURE));
      const stored = frozen(await AutoModelForCausalLM.fromPretrained(BASE_FIXTURE));
      const rounded = frozen(await AutoModelForCausalLM.fromPretrained(BASE_FIXTURE));
      // Compared bit for bit: all three run the tfjs ops (the fused decoder's agreement with them on 16-bit
      // weights, to float rounding, is tested in modeling/native-bf16.test.ts).
      reference.decoder.useNativeDecoder = false;
      rounded.decoder.useNativeDecoder = false;
      stored.decoder.useNativeDecoder = false;
      const round =
        dtype === "bfloat16"
          ? (a: Float32Array) => bf16ToFloat32(float32ToBf16(a))
          : (a: Float32Array) => f16ToFloat32(float32ToF16(a));
      const projections: string[] = [];
      for (const [name, m] of rounded.linearModules()) {
        const lin = m as Linear;
        lin.weight.assign(tf.tensor(round(lin.weight.dataSync() as Float32Array), lin.weight.shape));
        projections.push(`${name}.weight`);
      }
      const before = tf.memory().numTensors;
      const report = enableHalfPrecisionStorage(stored, { dtype });
      expect(report.converted).toHaveLength(2 * 7 + 1); // untied lm_head too
      expect(report.bytesAfter * 2).toBe(report.bytesBefore);
      expect(tf.memory().numTensors).toBe(before - report.converted.length); // float32 weights released
      const logits = (m: PreTrainedModelForCausalLM) =>
        tf.tidy(() => m.forward({ inputIds: IDS }).logits.dataSync() as Float32Array);
      const a = logits(stored);
      const exact = logits(rounded);
      const ref = logits(reference);
      // (1) storage changes nothing but the weights' rounding: bit-identical to computing on rounded weights
      expect(Array.from(a)).toEqual(Array.from(exact));
      // (2) the bound rounding implies: each stored weight moves by |δw| ≤ u|w|, so to first order
      //     |Δlogit_k| ≤ u · Σ_w |∂logit_k/∂w| · |w| over the stored weights. Check it at the 8 logits that
      //     moved most (the worst cases), with 5% slack for second-order terms (O(u²)).
      const u = UNIT_ROUNDOFF[dtype];
      const order = Array.from(a.keys()).sort((i, j) => Math.abs(a[j]! - ref[j]!) - Math.abs(a[i]! - ref[i]!));
      const params = reference.namedParameters();
      const vars = projections.map((n) => params.get(n)!);
      for (const vv of vars) vv.trainable = true; // variableGrads only differentiates trainable variables
      const [, t, v] = [2, IDS[0]!.length, 128];
      let worstRatio = 0;
      for (const k of order.slice(0, 8)) {
        const bi = Math.floor(k / (t * v));
        const ti = Math.floor(k / v) % t;
        const vi = k % v;
        const bound = tf.tidy(() => {
          const { grads } = tf.variableGrads(() => {
            const l = reference.forward({ inputIds: IDS }).logits;
            return tf.squeeze(tf.slice(l, [bi, ti, vi], [1, 1, 1])) as tf.Scalar;
          }, vars);
          let s = 0;
          for (const vv of vars) s += tf.sum(tf.mul(tf.abs(grads[vv.name]!), tf.abs(vv))).dataSync()[0]!;
          return u * s;
        });
        const change = Math.abs(a[k]! - ref[k]!);
        worstRatio = Math.max(worstRatio, change / bound);
        expect(change, `logit ${k}`).toBeLessThanOrEqual(1.05 * bound);
      }
      expect(worstRatio).toBeGreaterThan(0);
      reference.dispose();
      stored.dispose();
      rounded.dispose();
    });
  }

  it("leaves trainable weights (master weights) and the tied lm_head in float32", () => {
    const model = AutoModelForCausalLM.fromConfig({
      model_type: "llama",
      vocab_size: 32,
      hidden_size: 16,
      intermediate_size: 32,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      tie_word_embeddings: true,
    });
    expect(enableHalfPrecisionStorage(model).converted).toEqual([]);
    frozen(model);
    const report = enableHalfPrecisionStorage(model, { dtype: "float16" });
    expect(report.converted).toHaveLength(7);
    expect(report.skipped).toEqual(["lm_head"]);
    expect(() => enableHalfPrecisionStorage(model, { dtype: "int8" as never })).toThrow(/field "dtype"/);
    model.dispose();
  });
});
