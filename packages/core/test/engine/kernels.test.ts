import { afterAll, describe, expect, it } from "vitest";
import {
  defineKernelPlugin,
  initEngine,
  scatterAdd,
  shutdownEngine,
  tf,
  wasmMatMulPlugin,
} from "../../src/engine/index.js";
import { expectClose, expectSameOnWasmAndCpu, runOn, uniform } from "./helpers.js";

afterAll(() => shutdownEngine());

interface MatMulCase {
  name: string;
  a: number[];
  b: number[];
  transposeA: boolean;
  transposeB: boolean;
  /** Inputs to differentiate: TF.js's BatchMatMul gradient ignores broadcasting, so a broadcast operand is skipped. */
  grads: Array<"a" | "b">;
}

const both: Array<"a" | "b"> = ["a", "b"];
const cases: MatMulCase[] = [
  { name: "2-D", a: [5, 7], b: [7, 6], transposeA: false, transposeB: false, grads: both },
  { name: "2-D transposeB (dA of a linear)", a: [5, 7], b: [6, 7], transposeA: false, transposeB: true, grads: both },
  { name: "2-D transposeA (dB of a linear)", a: [7, 5], b: [7, 6], transposeA: true, transposeB: false, grads: both },
  { name: "2-D both transposed (swapped plan)", a: [7, 5], b: [6, 7], transposeA: true, transposeB: true, grads: both },
  {
    name: "2-D tied head x·Eᵀ (swapped plan)",
    a: [3, 7],
    b: [40, 7],
    transposeA: false,
    transposeB: true,
    grads: both,
  },
  {
    name: "leading 1-dims, swapped plan",
    a: [1, 3, 7],
    b: [1, 40, 7],
    transposeA: false,
    transposeB: true,
    grads: both,
  },
  { name: "batched", a: [3, 5, 7], b: [3, 7, 6], transposeA: false, transposeB: false, grads: both },
  { name: "batched transposeB (q·kᵀ)", a: [3, 5, 7], b: [3, 6, 7], transposeA: false, transposeB: true, grads: both },
  { name: "batched transposeA", a: [3, 7, 5], b: [3, 7, 6], transposeA: true, transposeB: false, grads: both },
  {
    name: "rank 4, both transposed",
    a: [2, 3, 7, 5],
    b: [2, 3, 6, 7],
    transposeA: true,
    transposeB: true,
    grads: both,
  },
  {
    name: "a batched, b 2-D (folded rows)",
    a: [2, 3, 5, 7],
    b: [7, 6],
    transposeA: false,
    transposeB: false,
    grads: ["a"],
  },
  { name: "a batched, b 2-D transposed", a: [3, 5, 7], b: [6, 7], transposeA: false, transposeB: true, grads: ["a"] },
  { name: "a transposed, b [1,K,N]", a: [3, 7, 5], b: [1, 7, 6], transposeA: true, transposeB: false, grads: ["a"] },
  { name: "a 2-D, b batched", a: [5, 7], b: [3, 7, 6], transposeA: false, transposeB: false, grads: ["b"] },
];

/** Plain-JS matmul with numpy broadcasting of the batch dims. */
function naiveMatMul(a: Float32Array, aShape: number[], b: Float32Array, bShape: number[], tA: boolean, tB: boolean) {
  const [ar, br] = [aShape.length, bShape.length];
  const m = tA ? aShape[ar - 1]! : aShape[ar - 2]!;
  const k = tA ? aShape[ar - 2]! : aShape[ar - 1]!;
  const n = tB ? bShape[br - 2]! : bShape[br - 1]!;
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(aShape.slice(0, -2), bShape.slice(0, -2));
  const batch = outer.reduce((x, y) => x * y, 1);
  const out = new Float32Array(batch * m * n);
  const index = (shape: number[], i: number) => {
    // Broadcast batch index of an operand whose batch dims are right-aligned with `outer`.
    const dims = shape.slice(0, -2);
    let idx = 0;
    let rest = i;
    let stride = 1;
    for (let d = outer.length - 1; d >= 0; d--) {
      const coord = rest % outer[d]!;
      rest = Math.floor(rest / outer[d]!);
      const j = d - (outer.length - dims.length);
      if (j < 0) continue;
      if (dims[j] !== 1) idx += coord * stride;
      stride *= dims[j]!;
    }
    return idx;
  };
  for (let p = 0; p < batch; p++) {
    const ao = index(aShape, p) * m * k;
    const bo = index(bShape, p) * k * n;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let q = 0; q < k; q++) {
          sum += a[ao + (tA ? q * m + i : i * k + q)]! * b[bo + (tB ? j * k + q : q * n + j)]!;
        }
        out[p * m * n + i * n + j] = sum;
      }
  }
  return out;
}

function matMulFn(c: MatMulCase): () => tf.Tensor[] {
  return () => {
    const a = tf.tensor(uniform(c.a, 1), c.a);
    const b = tf.tensor(uniform(c.b, 2), c.b);
    const y = tf.matMul(a, b, c.transposeA, c.transposeB);
    const w = tf.tensor(uniform(y.shape, 3), y.shape);
    const loss = (x: tf.Tensor, z: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, z, c.transposeA, c.transposeB), w));
    const grads: tf.Tensor[] = [];
    if (c.grads.includes("a")) grads.push(tf.grad((x: tf.Tensor) => loss(x, b))(a));
    if (c.grads.includes("b")) grads.push(tf.grad((z: tf.Tensor) => loss(a, z))(b));
    return [y, ...grads];
  };
}

describe("prefkit wasm BatchMatMul", () => {
  for (const c of cases) {
    it(`matches cpu, forward and gradient: ${c.name}`, async () => {
      const { wasm } = await expectSameOnWasmAndCpu(matMulFn(c));
      expect(wasm.length).toBe(1 + c.grads.length);
    });
  }

  // The stock cpu kernel takes max(batchA, batchB) as the batch, so it cannot be the reference here.
  it("broadcasts batch dims like numpy ([2,1]·[1,3] → [2,3]), checked against plain JS", async () => {
    const [aShape, bShape] = [
      [2, 1, 5, 7],
      [1, 3, 6, 7],
    ];
    const [a, b] = [uniform(aShape, 1), uniform(bShape, 2)];
    const [y] = await runOn("wasm", () => tf.matMul(tf.tensor(a, aShape), tf.tensor(b, bShape), false, true));
    expectClose(y!, naiveMatMul(a, aShape, b, bShape, false, true));
    const [cShape, dShape] = [
      [3, 7, 5],
      [2, 1, 7, 6],
    ];
    const [c, d] = [uniform(cShape, 3), uniform(dShape, 4)];
    const [z] = await runOn("wasm", () => tf.matMul(tf.tensor(c, cShape), tf.tensor(d, dShape), true, false));
    expectClose(z!, naiveMatMul(c, cShape, d, dShape, true, false));
    expect(z!.length).toBe(2 * 3 * 5 * 6);
  });

  it("agrees with cpu with 2 XNNPACK threads", async () => {
    for (const c of cases.filter((c) => c.name.startsWith("batched transposeB") || c.name.includes("tied head"))) {
      await expectSameOnWasmAndCpu(matMulFn(c), 1e-5, 2);
    }
  });

  it("hands XNNPACK only untransposed 2-D products", async () => {
    // Spy on the stock kernel, then build the plugin on top of the spy.
    await initEngine({ backend: "wasm", threads: 1, builtinKernels: false });
    const stock = tf.getKernel(tf.BatchMatMul, "wasm");
    const seen: Array<{ a: number[]; b: number[]; transposed: boolean }> = [];
    const spy = defineKernelPlugin({
      name: "spy",
      backend: "wasm",
      kernels: [
        {
          kernelName: tf.BatchMatMul,
          build: () => ({
            setupFunc: stock.setupFunc,
            kernelFunc: (args) => {
              const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
              const attrs = args.attrs as { transposeA: boolean; transposeB: boolean };
              seen.push({ a: a.shape, b: b.shape, transposed: attrs.transposeA || attrs.transposeB });
              return stock.kernelFunc(args);
            },
          }),
        },
      ],
    });
    spy.register();
    const plugin = wasmMatMulPlugin();
    plugin.register();
    try {
      tf.tidy(() => {
        tf.matMul(tf.ones([3, 5, 7]), tf.ones([3, 6, 7]), false, true).dataSync();
        tf.matMul(tf.ones([7, 5]), tf.ones([7, 6]), true, false).dataSync();
        tf.matMul(tf.ones([2, 3, 5, 7]), tf.ones([7, 6])).dataSync();
        tf.matMul(tf.ones([3, 7]), tf.ones([40, 7]), false, true).dataSync();
      });
    } finally {
      plugin.unregister();
      spy.unregister();
    }
    expect(seen.length).toBe(3 + 1 + 1 + 1);
    for (const call of seen) {
      expect(call.transposed).toBe(false);
      expect(call.a.length).toBe(2);
      expect(call.b.length).toBe(2);
    }
    // Batch folded into rows when b is shared.
    expect(seen[4]!.a).toEqual([30, 7]);
    // x·Eᵀ with a wide E runs as (E·xᵀ)ᵀ: E is the left operand, never transposed or packed.
    expect(seen[5]).toEqual({ a: [40, 7], b: [7, 3], transposed: false });
    expect(tf.getKernel(tf.BatchMatMul, "wasm")).toBe(stock);
  });

  it("gives fresh results when a weight is reassigned (no stale XNNPACK cache)", async () => {
    const run = () => {
      const w = tf.variable(tf.tensor(uniform([7, 6], 4), [7, 6]));
      const x = tf.tensor(uniform([5, 7], 5), [5, 7]);
      const first = tf.matMul(x, w, false, false);
      const firstT = tf.matMul(x, tf.transpose(w), false, true);
      w.assign(tf.mul(w, 2));
      const second = tf.matMul(x, w);
      const out = [first, firstT, second];
      w.dispose();
      return out;
    };
    const { wasm } = await expectSameOnWasmAndCpu(run);
    expectClose(
      wasm[2]!,
      wasm[0]!.map((v) => 2 * v),
    );
  });

  it("releases every intermediate on the wasm heap", async () => {
    await initEngine({ backend: "wasm", threads: 1 });
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const a = tf.tensor(uniform([2, 3, 5, 7], 6), [2, 3, 5, 7]);
    const b = tf.tensor(uniform([2, 3, 6, 7], 7), [2, 3, 6, 7]);
    const b2 = tf.tensor(uniform([6, 7], 8), [6, 7]);
    const c = tf.tensor(uniform([2, 3, 5, 6], 9), [2, 3, 5, 6]);
    const tensors = tf.memory().numTensors;
    const ids = backend.numDataIds();
    tf.tidy(() => {
      tf.matMul(a, b, false, true);
      tf.matMul(a, b2, false, true);
      tf.matMul(a, c, true, false);
      tf.matMul(b2, a, false, true);
      tf.fused.matMul({ a, b: b2, transposeB: true, bias: tf.ones([6]), activation: "relu" });
    });
    expect(tf.memory().numTensors).toBe(tensors);
    expect(backend.numDataIds()).toBe(ids);
    tf.dispose([a, b, b2, c]);
  });
});

describe("prefkit wasm _FusedMatMul", () => {
  const fused = (
    aShape: number[],
    bShape: number[],
    transposeA: boolean,
    transposeB: boolean,
    biasShape?: number[],
  ) => {
    return () => {
      const a = tf.tensor(uniform(aShape, 11), aShape);
      const b = tf.tensor(uniform(bShape, 12), bShape);
      const bias = biasShape ? tf.tensor(uniform(biasShape, 13), biasShape) : undefined;
      const f = (x: tf.Tensor, z: tf.Tensor) =>
        tf.sum(tf.square(tf.fused.matMul({ a: x, b: z, transposeA, transposeB, bias, activation: "relu" })));
      const y = tf.fused.matMul({ a, b, transposeA, transposeB, bias, activation: "relu" });
      const [ga, gb] = tf.grads((x: tf.Tensor, z: tf.Tensor) => f(x, z))([a, b]);
      return [y, ga!, gb!];
    };
  };

  it("matches cpu with transposeB and a bias, forward and gradient", async () => {
    await expectSameOnWasmAndCpu(fused([5, 7], [6, 7], false, true, [6]));
  });

  it("matches cpu with transposeA, no bias", async () => {
    await expectSameOnWasmAndCpu(fused([7, 5], [7, 6], true, false));
  });

  it("matches cpu with a batched a and a shared b (folded rows)", async () => {
    const f = () => {
      const a = tf.tensor(uniform([3, 5, 7], 14), [3, 5, 7]);
      const b = tf.tensor(uniform([6, 7], 15), [6, 7]);
      return tf.fused.matMul({ a, b, transposeB: true, bias: tf.tensor(uniform([6], 16)), activation: "linear" });
    };
    await expectSameOnWasmAndCpu(f);
  });
});

describe("prefkit UnsortedSegmentSum (scatter-add)", () => {
  const ids = [3, 0, 3, -1, 5, 0];
  const x = uniform([6, 4], 21);

  function reference(numSegments: number): Float32Array {
    const out = new Float32Array(numSegments * 4);
    ids.forEach((id, i) => {
      if (id < 0 || id >= numSegments) return;
      for (let j = 0; j < 4; j++) out[id * 4 + j]! += x[i * 4 + j]!;
    });
    return out;
  }

  it("scatterAdd drops negative and out-of-range ids", () => {
    const out = new Float32Array(4 * 4);
    scatterAdd(x, Int32Array.from(ids), 4, out);
    expectClose(out, reference(4));
  });

  for (const backend of ["wasm", "cpu"] as const) {
    it(`matches a plain-JS reference on ${backend}`, async () => {
      const [out] = await runOn(backend, () =>
        tf.unsortedSegmentSum(tf.tensor(x, [6, 4]), tf.tensor1d(ids, "int32"), 7),
      );
      expectClose(out!, reference(7));
    });
  }

  it("handles 2-D segment ids on wasm and cpu", async () => {
    // TensorFlow allows N-D segment ids; tfjs's typings only admit 1-D.
    const ids2d = () => tf.tensor2d(ids, [2, 3], "int32") as unknown as tf.Tensor1D;
    const fn = () => tf.unsortedSegmentSum(tf.tensor(x, [2, 3, 4]), ids2d(), 7);
    expectClose((await runOn("wasm", fn))[0]!, reference(7));
    expectClose((await runOn("cpu", fn))[0]!, reference(7));
  });

  it("matches the stock cpu kernel", async () => {
    const fn = () => tf.unsortedSegmentSum(tf.tensor(x, [6, 4]), tf.tensor1d(ids, "int32"), 6);
    const [prefkitWasm] = await runOn("wasm", fn);
    await initEngine({ backend: "cpu", builtinKernels: false });
    const stock = tf.tidy(() => fn().dataSync());
    await initEngine({ backend: "cpu" });
    expectClose(prefkitWasm!, stock);
  });
});

describe("gather gradient (UnsortedSegmentSum) on wasm", () => {
  for (const axis of [0, 1]) {
    it(`matches cpu for axis ${axis}`, async () => {
      await expectSameOnWasmAndCpu(() => {
        const table = tf.tensor(uniform([6, 5], 31), [6, 5]);
        const idx = tf.tensor1d([4, 1, 4, 0, 2], "int32");
        const outShape = axis === 0 ? [5, 5] : [6, 5];
        const w = tf.tensor(uniform(outShape, 32), outShape);
        const f = (t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, idx, axis), w));
        return [tf.gather(table, idx, axis), tf.grad(f)(table)];
      });
    });
  }
});

describe("wasm coverage of a decoder training step", () => {
  it("Einsum runs on wasm through the cpu fallback", async () => {
    await expectSameOnWasmAndCpu(() =>
      tf.einsum(
        "bij,bjk->bik",
        tf.tensor(uniform([2, 3, 4], 41), [2, 3, 4]),
        tf.tensor(uniform([2, 4, 5], 42), [2, 4, 5]),
      ),
    );
  });

  it("every op of a Llama block, forward and gradient, matches cpu", async () => {
    const T = 6;
    const D = 8;
    const V = 11;
    await expectSameOnWasmAndCpu(() => {
      const emb = tf.tensor(uniform([V, D], 51), [V, D]);
      const wq = tf.tensor(uniform([D, D], 52), [D, D]);
      const wup = tf.tensor(uniform([D, 2 * D], 53), [D, 2 * D]);
      const ids = tf.tensor1d([1, 5, 2, 9, 5, 0], "int32");
      const labels = tf.tensor1d([5, 2, 9, 5, 0, 3], "int32");
      const pos = tf.range(0, T).reshape([T, 1]);
      const freq = tf.tensor(uniform([1, D / 2], 54), [1, D / 2]);
      const angles = tf.mul(pos, freq);
      const cos = tf.cos(angles);
      const sin = tf.sin(angles);
      const loss = (e: tf.Tensor, q: tf.Tensor, up: tf.Tensor) => {
        const h = tf.gather(e, ids); // [T, D]
        const rms = tf.rsqrt(tf.add(tf.mean(tf.square(h), -1, true), 1e-5));
        const x = tf.mul(h, rms);
        const qx = tf.matMul(x, q);
        const x1 = tf.slice(qx, [0, 0], [T, D / 2]);
        const x2 = tf.slice(qx, [0, D / 2], [T, D / 2]);
        const rot = tf.concat([tf.sub(tf.mul(x1, cos), tf.mul(x2, sin)), tf.add(tf.mul(x2, cos), tf.mul(x1, sin))], -1);
        const heads = tf.transpose(tf.reshape(rot, [T, 2, D / 2]), [1, 0, 2]); // [H, T, hd]
        const scores = tf.div(tf.matMul(heads, heads, false, true), Math.sqrt(D / 2));
        const causal = tf.linalg.bandPart(tf.ones([T, T]), -1, 0);
        const masked = tf.add(scores, tf.mul(tf.sub(1, causal), -1e9));
        const attn = tf.matMul(tf.softmax(masked), heads);
        const merged = tf.reshape(tf.transpose(attn, [1, 0, 2]), [T, D]);
        const gateUp = tf.matMul(tf.add(merged, x), up);
        const [gate, upPart] = tf.split(gateUp, 2, -1);
        const act = tf.mul(tf.mul(gate!, tf.sigmoid(gate!)), upPart!);
        const logits = tf.matMul(act, e, false, true); // tied head
        const padded = tf.pad(
          logits,
          [
            [0, 0],
            [0, 1],
          ],
          -1e9,
        );
        const logProbs = tf.logSoftmax(padded);
        const nll = tf.neg(tf.sum(tf.mul(logProbs, tf.oneHot(labels, V + 1)), -1));
        const extras = tf.add(
          tf.mean(tf.neg(tf.softplus(tf.neg(tf.cumsum(nll))))),
          tf.mean(tf.sub(tf.logSumExp(logits, -1), tf.max(logits, -1))),
        );
        return tf.add(tf.mean(tf.tile(nll, [2])), tf.mul(extras, 0.1)) as tf.Scalar;
      };
      const { value, grads } = tf.valueAndGrads((e: tf.Tensor, q: tf.Tensor, up: tf.Tensor) => loss(e, q, up))([
        emb,
        wq,
        wup,
      ]);
      return [value, ...grads];
    });
  });
});
