/**
 * The native in-place AdamW and gradient norm (native-blas plugin on cpu) against the tfjs path:
 * same parameters after 5 steps, the tfjs path for shared data, and no leaked tensors.
 */
import { readFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import {
  activeNativeAddon,
  initEngine,
  nativeBlasPlugin,
  nativeBlasStatus,
  shutdownEngine,
  tf,
} from "../../src/engine/index.js";
import { AdamW } from "../../src/optim/adamw.js";
import { clipByGlobalNorm } from "../../src/optim/clip.js";
import { Rng } from "../../src/rng/index.js";
import { expectClose } from "../engine/helpers.js";

// This file tests engine/plugin selection itself: the native addon only when a test asks for it.
const nativeEnvBefore = process.env.PREFKIT_NATIVE;
process.env.PREFKIT_NATIVE = "0";
afterAll(() => {
  process.env.PREFKIT_NATIVE = nativeEnvBefore;
});
const status = nativeBlasStatus();
const underCi = process.env.CI === "true";
if (!status.available && !underCi) console.warn(`native AdamW tests skipped: ${status.reason}`);

afterAll(() => shutdownEngine());

/** Shapes of the trained variables: one above 1M elements (split over threads), odd sizes, a scalar. */
const SHAPES: number[][] = [[1100, 1000], [33, 17], [4097], [7], []];
const STEPS = 5;

function randomArray(n: number, rng: Rng, scale: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

/** Seeded initial values and per-step gradients (the same for every run). */
const init = SHAPES.map((s, i) => randomArray(tf.util.sizeFromShape(s), new Rng(100 + i), 1));
// Scales chosen so the global norm (≈ 1050·scale) is above 1 on some steps and below on others.
const GRAD_SCALES = [3e-4, 3e-3, 6e-4, 2e-3, 1e-4];
const gradients = GRAD_SCALES.map((scale, step) =>
  SHAPES.map((s, i) => randomArray(tf.util.sizeFromShape(s), new Rng(1000 * (step + 1) + i), scale)),
);

interface Run {
  /** Parameters after every step, per variable. */
  params: Float32Array[][];
  /** Global gradient norms of every step (clipByGlobalNorm with maxNorm 1). */
  norms: number[];
  /** Whether each variable kept its tensor id over all steps (an in-place update). */
  keptIds: boolean[];
}

/** 5 steps of clipByGlobalNorm(maxNorm 1) + AdamW(lr 1e-2, wd 0.01) on fresh variables. */
function train(): Run {
  const baseline = tf.memory().numTensors;
  const vars = SHAPES.map((s, i) => tf.tidy(() => tf.variable(tf.tensor(init[i]!.slice(), s), true)));
  const ids = vars.map((v) => v.dataId);
  const opt = new AdamW({ learningRate: 1e-2, weightDecay: 0.01 });
  const params: Float32Array[][] = [];
  const norms: number[] = [];
  let afterFirstStep = 0;
  for (let step = 0; step < STEPS; step++) {
    const norm = tf.tidy(() => {
      const grads: tf.NamedTensorMap = {};
      vars.forEach((v, i) => {
        grads[v.name] = tf.tensor(gradients[step]![i]!, SHAPES[i]);
      });
      const clipped = clipByGlobalNorm(grads, 1);
      opt.applyGradients(clipped.grads);
      return clipped.norm.dataSync()[0]!;
    });
    norms.push(norm);
    params.push(vars.map((v) => Float32Array.from(v.dataSync())));
    if (step === 0) afterFirstStep = tf.memory().numTensors;
    else expect(tf.memory().numTensors).toBe(afterFirstStep);
  }
  const keptIds = vars.map((v, i) => v.dataId === ids[i]);
  opt.dispose();
  tf.dispose(vars);
  expect(tf.memory().numTensors).toBe(baseline);
  return { params, norms, keptIds };
}

/** clipByGlobalNorm's outputs for a few maxNorms (clipping, not clipping, measuring only). */
function clipResults(): number[][] {
  const rng = new Rng(7);
  const grads = SHAPES.slice(1).map((s) => tf.tensor(randomArray(tf.util.sizeFromShape(s), rng, 0.05), s));
  const named: tf.NamedTensorMap = Object.fromEntries(grads.map((g, i) => [`g${i}`, g]));
  const baseline = tf.memory().numTensors;
  const out: number[][] = [];
  for (const maxNorm of [0.5, 1e6, 0]) {
    // Called inside a tidy, as its contract asks (the tfjs path leaves temporaries to it).
    tf.tidy(() => {
      const { grads: clipped, norm } = clipByGlobalNorm(named, maxNorm);
      out.push([...norm.dataSync()]);
      for (const g of Object.values(clipped)) out.push([...g.dataSync()]);
      // maxNorm 0 only measures: the inputs come back as they are; otherwise new tensors.
      for (const [k, g] of Object.entries(clipped)) expect(g === named[k]).toBe(maxNorm === 0);
    });
  }
  expect(tf.memory().numTensors).toBe(baseline);
  tf.dispose(grads);
  return out;
}

describe.skipIf(!status.available && !underCi)("native in-place AdamW and gradient norm", () => {
  it("gives the tfjs path's parameters over 5 steps, updating in place", async () => {
    await initEngine({ backend: "cpu", threads: 1 });
    expect(activeNativeAddon()).toBeUndefined();
    const portable = train();
    const portableClip = clipResults();
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
    expect(typeof activeNativeAddon()?.adamw).toBe("function");
    expect(typeof activeNativeAddon()?.sumSquares).toBe("function");
    const native = train();
    const nativeClip = clipResults();

    // The tfjs path assigns new tensors; the native path writes into the variables' own arrays.
    expect(portable.keptIds).toEqual(SHAPES.map(() => false));
    expect(native.keptIds).toEqual(SHAPES.map(() => true));
    // Some steps clip (norm > 1), some do not.
    expect(portable.norms.some((n) => n > 1) && portable.norms.some((n) => n < 1)).toBe(true);
    for (let step = 0; step < STEPS; step++) {
      expect(Math.abs(native.norms[step]! - portable.norms[step]!)).toBeLessThanOrEqual(1e-6 * portable.norms[step]!);
      for (let i = 0; i < SHAPES.length; i++) expectClose(native.params[step]![i]!, portable.params[step]![i]!, 1e-6);
    }
    // Training moved every variable.
    for (let i = 0; i < SHAPES.length; i++) {
      const moved = native.params[STEPS - 1]![i]!.reduce((m, p, j) => Math.max(m, Math.abs(p - init[i]![j]!)), 0);
      expect(moved).toBeGreaterThan(1e-2);
    }
    expect(nativeClip).toHaveLength(portableClip.length);
    for (const [i, values] of nativeClip.entries()) expectClose(values, portableClip[i]!, 1e-6);
  });

  it("clipByGlobalNorm inPlace scales owned gradients in place (as tf.mul would) and copies shared ones", async () => {
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
    const rng = new Rng(3);
    const owned = tf.tensor(randomArray(1000, rng, 1), [10, 100]);
    const shared = tf.tensor(randomArray(50, rng, 1), [50]);
    const keep = tf.clone(shared); // shares `shared`'s data
    const before = [owned.dataSync().slice(), shared.dataSync().slice()];
    const baseline = tf.memory().numTensors;
    tf.tidy(() => {
      const { grads, norm } = clipByGlobalNorm({ owned, shared }, 0.5, { inPlace: true });
      const n = norm.dataSync()[0]!;
      expect(n).toBeGreaterThan(0.5);
      const coef = Math.fround(Math.fround(0.5) / Math.fround(Math.fround(n) + Math.fround(1e-6)));
      const expected = before.map((b) => Float32Array.from(b, (x) => x * coef));
      expect(Array.from(grads.owned!.dataSync())).toEqual(Array.from(expected[0]!));
      expect(Array.from(grads.shared!.dataSync())).toEqual(Array.from(expected[1]!));
      // The owned input was scaled in place; the shared one (and its clone) kept their values.
      expect(Array.from(owned.dataSync())).toEqual(Array.from(expected[0]!));
      expect(Array.from(keep.dataSync())).toEqual(Array.from(before[1]!));
    });
    expect(tf.memory().numTensors).toBe(baseline);
    tf.dispose([owned, shared, keep]);
  });

  it("matches torch.optim.AdamW + clip_grad_norm_ to 1e-6 (the adamw.test.ts fixture)", async () => {
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
    const ref = JSON.parse(readFileSync(new URL("../fixtures/adamw_reference.json", import.meta.url), "utf8")) as {
      config: { betas: [number, number]; eps: number; weight_decay: number; max_grad_norm: number };
      shapes: Record<string, number[]>;
      init: Record<string, number[]>;
      grads: Array<Record<string, number[]>>;
      lrs: number[];
      grad_norms: number[];
      params_after: Array<Record<string, number[]>>;
    };
    const baseline = tf.memory().numTensors;
    const vars = Object.fromEntries(
      Object.entries(ref.init).map(([k, v]) => [k, tf.tidy(() => tf.variable(tf.tensor(v, ref.shapes[k]!), true))]),
    );
    const ids = Object.values(vars).map((v) => v.dataId);
    const opt = new AdamW({
      beta1: ref.config.betas[0],
      beta2: ref.config.betas[1],
      epsilon: ref.config.eps,
      weightDecay: ref.config.weight_decay,
    });
    for (let i = 0; i < ref.lrs.length; i++) {
      opt.learningRate = ref.lrs[i]!;
      const norm = tf.tidy(() => {
        const grads: tf.NamedTensorMap = {};
        for (const [k, v] of Object.entries(vars)) grads[v.name] = tf.tensor(ref.grads[i]![k]!, ref.shapes[k]);
        const clipped = clipByGlobalNorm(grads, ref.config.max_grad_norm);
        opt.applyGradients(clipped.grads);
        return clipped.norm.dataSync()[0]!;
      });
      expect(Math.abs(norm - ref.grad_norms[i]!)).toBeLessThan(1e-5 * ref.grad_norms[i]!);
      for (const [k, v] of Object.entries(vars)) {
        const got = v.dataSync();
        const want = ref.params_after[i]![k]!;
        for (let j = 0; j < want.length; j++) expect(Math.abs(got[j]! - want[j]!)).toBeLessThan(1e-6);
      }
    }
    expect(Object.values(vars).map((v) => v.dataId)).toEqual(ids);
    opt.dispose();
    tf.dispose(Object.values(vars));
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it("takes the tfjs path for a variable whose data another tensor shares, and leaves that tensor alone", async () => {
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
    const baseline = tf.memory().numTensors;
    const start = new Float32Array([0.5, -1, 2, 0.25]);
    const grad = [0.1, 0.2, -0.3, 0];
    const shared = tf.tidy(() => tf.variable(tf.tensor(start.slice()), true));
    const alone = tf.tidy(() => tf.variable(tf.tensor(start.slice()), true));
    const c = tf.clone(shared);
    const sharedId = shared.dataId;
    const aloneId = alone.dataId;
    const opt = new AdamW({ learningRate: 1e-2, weightDecay: 0.01 });
    tf.tidy(() => opt.applyGradients({ [shared.name]: tf.tensor(grad), [alone.name]: tf.tensor(grad) }));
    // The clone still holds the old values; the shared variable got a new tensor, the other one was updated in place.
    expect([...c.dataSync()]).toEqual([...start]);
    expect(shared.dataId).not.toBe(sharedId);
    expect(alone.dataId).toBe(aloneId);
    expectClose(shared.dataSync(), alone.dataSync(), 1e-6);
    // torch's first step moves every weight with a gradient by about lr·sign(g), after the decay.
    const decayed = [...start].map((p) => p * (1 - 1e-2 * 0.01));
    const expected = decayed.map((p, i) => p - (grad[i] === 0 ? 0 : 1e-2 * Math.sign(grad[i]!)));
    expectClose(alone.dataSync(), expected, 1e-5);
    // From now on the shared variable owns its data alone and steps in place too.
    const nextId = shared.dataId;
    tf.tidy(() => opt.applyGradients({ [shared.name]: tf.tensor(grad), [alone.name]: tf.tensor(grad) }));
    expect(shared.dataId).toBe(nextId);
    expectClose(shared.dataSync(), alone.dataSync(), 1e-6);
    expect([...c.dataSync()]).toEqual([...start]);
    opt.dispose();
    tf.dispose([shared, alone, c]);
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it("rejects mismatched or overlapping arrays with a RangeError naming the argument; sums squares in double", async () => {
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
    const adamw = activeNativeAddon()!.adamw!;
    const p = new Float32Array(5);
    const g = new Float32Array(5);
    const v = new Float32Array(5);
    const call =
      (m: Float32Array, step = 1) =>
      () =>
        adamw(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0, step, 1);
    expect(call(new Float32Array(3))).toThrow(new RangeError("adamw: m has 3 elements, param has 5"));
    expect(call(p)).toThrow(new RangeError("adamw: param and m share memory"));
    expect(call(new Float32Array(5), 0)).toThrow(new RangeError("adamw: step must be an int32 >= 1"));
    const sumSquares = activeNativeAddon()!.sumSquares!;
    expect(sumSquares(new Float32Array([1, -2, 3]))).toBe(14);
    // Above 4M elements the sum is split over 2 threads; it still matches a double loop.
    const big = Float32Array.from({ length: 5_000_001 }, (_, i) => ((i % 1001) - 500) / 1000);
    let want = 0;
    for (const x of big) want += x * x;
    expect(Math.abs(sumSquares(big) - want)).toBeLessThan(1e-12 * want);
  });
});
