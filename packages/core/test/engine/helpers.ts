import { expect } from "vitest";
import { initEngine, tf } from "../../src/engine/index.js";
import { Rng } from "../../src/rng/index.js";

/** Deterministic values in [-1, 1), as a flat Float32Array for `shape`. */
export function uniform(shape: number[], seed: number): Float32Array {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
}

/**
 * Runs `fn` on `backend` inside a tidy and returns every output as a flat array, so the
 * same computation can be compared across backends without moving tensors.
 */
export async function runOn(
  backend: "wasm" | "cpu",
  fn: () => tf.Tensor | tf.Tensor[],
  threads = 1,
): Promise<Float32Array[]> {
  await initEngine({ backend, threads });
  expect(tf.getBackend()).toBe(backend);
  const outs = tf.tidy(() => {
    const r = fn();
    return Array.isArray(r) ? r : [r];
  });
  const values = outs.map((t) => Float32Array.from(t.dataSync()));
  tf.dispose(outs);
  return values;
}

/** Elementwise |actual − expected| ≤ tol · max(1, |expected|), with the worst index in the message. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!) / Math.max(1, Math.abs(expected[i]!));
    if (!(err <= worstErr) || Number.isNaN(err)) {
      worstErr = Number.isNaN(err) ? Number.POSITIVE_INFINITY : err;
      worst = i;
    }
  }
  if (worstErr > tol) {
    expect.fail(`element ${worst}: got ${actual[worst]}, expected ${expected[worst]} (error ${worstErr} > ${tol})`);
  }
}

/** Runs `fn` on wasm and on cpu and checks every output agrees to `tol`. */
export async function expectSameOnWasmAndCpu(fn: () => tf.Tensor | tf.Tensor[], tol = 1e-5, threads = 1) {
  const wasm = await runOn("wasm", fn, threads);
  const cpu = await runOn("cpu", fn);
  expect(wasm.length).toBe(cpu.length);
  for (const [i, w] of wasm.entries()) expectClose(w, cpu[i]!, tol);
  return { wasm, cpu };
}
