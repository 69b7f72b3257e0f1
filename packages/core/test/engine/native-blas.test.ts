import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  engineInfo,
  initEngine,
  NATIVE_BLAS_PLUGIN,
  nativeBlasPlugin,
  nativeBlasStatus,
  shutdownEngine,
  tf,
} from "../../src/engine/index.js";
import { expectClose, uniform } from "./helpers.js";

const status = nativeBlasStatus();
const underCi = process.env.CI === "true";
if (!status.available && !underCi) {
  console.warn(`native-blas tests skipped: ${status.reason}`);
}

afterAll(() => shutdownEngine());

interface Case {
  name: string;
  /** Shapes before transposition: a is [..., m, k], b is [..., k, n]. */
  a: number[];
  b: number[];
}

const shapeCases: Case[] = [
  { name: "2-D", a: [5, 7], b: [7, 6] },
  { name: "batched", a: [3, 5, 7], b: [3, 7, 6] },
  { name: "b unbatched (folded rows)", a: [2, 3, 5, 7], b: [7, 6] },
  { name: "a unbatched", a: [5, 7], b: [4, 7, 6] },
  { name: "broadcast 1-dim of a", a: [1, 5, 7], b: [3, 7, 6] },
  { name: "broadcast 1-dim of b", a: [3, 5, 7], b: [1, 7, 6] },
  { name: "broadcast outer dim", a: [2, 3, 5, 7], b: [3, 7, 6] },
];
const combos: Array<[boolean, boolean]> = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

function swapLast2(shape: number[]): number[] {
  const s = [...shape];
  const r = s.length;
  [s[r - 2], s[r - 1]] = [s[r - 1]!, s[r - 2]!];
  return s;
}

function operands(c: Case, ta: boolean, tb: boolean, seed: number): { a: tf.Tensor; b: tf.Tensor } {
  const aShape = ta ? swapLast2(c.a) : c.a;
  const bShape = tb ? swapLast2(c.b) : c.b;
  return { a: tf.tensor(uniform(aShape, seed), aShape), b: tf.tensor(uniform(bShape, seed + 1), bShape) };
}

/** Every computation of the suite, run once on stock cpu and once with the plugin. */
function computations(): Array<[string, () => tf.Tensor[]]> {
  const list: Array<[string, () => tf.Tensor[]]> = [];
  let seed = 1;
  for (const c of shapeCases) {
    for (const [ta, tb] of combos) {
      seed += 2;
      const s = seed;
      const n = c.b[c.b.length - 1]!;
      const m = c.a[c.a.length - 2]!;
      list.push([
        `BatchMatMul ${c.name} tA=${ta} tB=${tb}`,
        () => {
          const { a, b } = operands(c, ta, tb, s);
          return [tf.matMul(a, b, ta, tb)];
        },
      ]);
      // tf.fused.matMul folds batch dims to one before the kernel, so it cannot broadcast [2,3] with [3].
      if (c.a.length > 3 && c.b.length > 2) continue;
      list.push([
        `_FusedMatMul ${c.name} tA=${ta} tB=${tb} (none, row bias, scalar bias, full bias, relu)`,
        () => {
          const { a, b } = operands(c, ta, tb, s);
          const rowBias = tf.tensor(uniform([n], s + 7), [n]);
          const fullBias = tf.tensor(uniform([m, n], s + 8), [m, n]);
          return [
            tf.fused.matMul({ a, b, transposeA: ta, transposeB: tb }),
            tf.fused.matMul({ a, b, transposeA: ta, transposeB: tb, bias: rowBias }),
            tf.fused.matMul({ a, b, transposeA: ta, transposeB: tb, bias: tf.scalar(0.25) }),
            tf.fused.matMul({ a, b, transposeA: ta, transposeB: tb, bias: fullBias }),
            tf.fused.matMul({ a, b, transposeA: ta, transposeB: tb, bias: rowBias, activation: "relu" }),
          ];
        },
      ]);
    }
  }
  const binaryShapes: Array<[number[], number[]]> = [
    [
      [4, 6],
      [4, 6],
    ],
    [
      [4, 6],
      [4, 1],
    ],
    [
      [4, 1],
      [4, 6],
    ],
    [[4, 6], [6]],
    [
      [2, 3, 4, 5],
      [1, 3, 1, 5],
    ],
    [
      [2, 1, 4, 1],
      [3, 1, 5],
    ],
    [[3, 5], []],
    [[], [3, 5]],
  ];
  const ops: Array<[string, (x: tf.Tensor, y: tf.Tensor) => tf.Tensor]> = [
    ["Add", tf.add],
    ["Sub", tf.sub],
    ["Multiply", tf.mul],
    ["RealDiv", (x, y) => tf.div(x, tf.add(tf.abs(y), 0.5))],
  ];
  for (const [opName, op] of ops) {
    binaryShapes.forEach(([as, bs], i) => {
      list.push([
        `${opName} ${JSON.stringify(as)} with ${JSON.stringify(bs)}, and its gradient`,
        () => {
          const x = tf.tensor(uniform(as, 200 + i), as);
          const y = tf.tensor(uniform(bs, 300 + i), bs);
          const { value, grads } = tf.valueAndGrads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.square(op(p, q))))([
            x,
            y,
          ]);
          return [op(x, y), value, ...grads];
        },
      ]);
    });
  }
  list.push([
    "int32 Add and Sub keep the stock kernels",
    () => [tf.add(tf.tensor1d([1, 2, 3], "int32"), tf.scalar(2, "int32")), tf.sub(tf.tensor1d([5, 6], "int32"), 1)],
  ]);
  list.push([
    "Exp and its gradient",
    () => {
      const x = tf.mul(tf.tensor(uniform([6, 33], 600), [6, 33]), 8);
      return [tf.exp(x), tf.grad((p: tf.Tensor) => tf.sum(tf.mul(tf.exp(p), 0.5)))(x)];
    },
  ]);
  list.push([
    "Sigmoid and last-axis Softmax (with masked −1e9 entries, any rank), and their gradients",
    () => {
      const x = tf.mul(tf.tensor(uniform([3, 4, 17], 700), [3, 4, 17]), 12);
      const masked = tf.where(tf.greater(x, 4), tf.fill(x.shape, -1e9), x);
      const w = tf.tensor(uniform([3, 4, 17], 701), [3, 4, 17]);
      return [
        tf.sigmoid(x),
        tf.softmax(masked),
        tf.softmax(tf.tensor1d([1, 2, 3])),
        tf.grad((p: tf.Tensor) => tf.sum(tf.mul(tf.sigmoid(p), w)))(x),
        tf.grad((p: tf.Tensor) => tf.sum(tf.mul(tf.softmax(p), w)))(masked),
      ];
    },
  ]);
  const perms: Array<[number[], number[]]> = [
    [
      [5, 7],
      [1, 0],
    ],
    [
      [2, 3, 4, 5],
      [0, 2, 1, 3],
    ],
    [
      [2, 3, 4, 5],
      [3, 2, 1, 0],
    ],
    [
      [2, 3, 4, 5],
      [0, 1, 3, 2],
    ],
    [
      [2, 3, 4],
      [0, 1, 2],
    ],
    [
      [1, 40, 70],
      [0, 2, 1],
    ],
    [
      [3, 1, 4],
      [1, 0, 2],
    ],
  ];
  perms.forEach(([shape, perm], i) => {
    list.push([
      `Transpose ${JSON.stringify(shape)} by ${JSON.stringify(perm)}, and its gradient`,
      () => {
        const x = tf.tensor(uniform(shape, 400 + i), shape);
        const w = tf.tensor(
          uniform(
            perm.map((p) => shape[p]!),
            500 + i,
          ),
          perm.map((p) => shape[p]!),
        );
        const g = tf.grad((p: tf.Tensor) => tf.sum(tf.mul(tf.transpose(p, perm), w)))(x);
        return [tf.transpose(x, perm), g];
      },
    ]);
  });
  const slices: Array<[number[], number[], number[]]> = [
    [
      [4, 10, 7],
      [0, 3, 0],
      [4, 5, 7],
    ], // response positions of [b, T, V] logits (PPO's cut)
    [
      [4, 10, 7],
      [1, 3, 2],
      [2, 5, 4],
    ],
    [
      [6, 9],
      [0, 2],
      [6, 5],
    ], // a column band
    [
      [6, 9],
      [2, 0],
      [3, 9],
    ], // whole rows: one contiguous range (the stock kernel's view)
    [
      [2, 3, 4, 5],
      [1, 0, 1, 0],
      [1, -1, 2, -1],
    ], // size −1: to the end
    [[5], [1], [3]],
    [
      [3, 4, 6],
      [0, 0, 0],
      [3, 4, 0],
    ], // empty
  ];
  slices.forEach(([shape, begin, size], i) => {
    list.push([
      `Slice ${JSON.stringify(shape)} from ${JSON.stringify(begin)} size ${JSON.stringify(size)}, and its gradient (PadV2)`,
      () => {
        const x = tf.tensor(uniform(shape, 800 + i), shape);
        const y = tf.slice(x, begin, size);
        const w = tf.tensor(uniform(y.shape, 900 + i), y.shape);
        const g = tf.grad((p: tf.Tensor) => tf.sum(tf.mul(tf.slice(p, begin, size), w)))(x);
        return [y, tf.tensor1d(y.shape), g];
      },
    ]);
  });
  list.push([
    "PadV2 with constants, any rank; int32 Slice and PadV2 keep the stock kernels",
    () => {
      const x = tf.tensor(uniform([3, 4, 5], 950), [3, 4, 5]);
      const ints = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3], "int32");
      return [
        tf.pad(
          x,
          [
            [1, 0],
            [0, 2],
            [2, 1],
          ],
          -1.5,
        ),
        tf.pad(x, [
          [0, 0],
          [0, 0],
          [0, 3],
        ]),
        tf.pad(tf.tensor1d([1, 2]), [[2, 1]], 7),
        tf.pad(x, [
          [0, 0],
          [0, 0],
          [0, 0],
        ]),
        tf.slice(ints, [0, 1], [2, 2]),
        tf.pad(
          ints,
          [
            [1, 0],
            [0, 1],
          ],
          9,
        ),
      ];
    },
  ]);
  for (const [ta, tb] of combos) {
    list.push([
      `gradients of a matmul chain tA=${ta} tB=${tb}`,
      () => {
        const x = tf.tensor(uniform([8, 6], 101), [8, 6]);
        const w1Shape = ta ? [8, 6] : [6, 8];
        const w2Shape = tb ? [5, 8] : [8, 5];
        const w1 = tf.tensor(uniform(w1Shape, 102), w1Shape);
        const w2 = tf.tensor(uniform(w2Shape, 103), w2Shape);
        const bias = tf.tensor(uniform([5], 104), [5]);
        const f = (xx: tf.Tensor, a: tf.Tensor, b: tf.Tensor, c: tf.Tensor): tf.Tensor => {
          // TF.js's matMul gradient ignores broadcasting, so the chain keeps batched operands matched.
          const h = tf.matMul(xx, a, false, ta);
          const y = tf.fused.matMul({ a: tf.tanh(h), b, transposeB: tb, bias: c });
          const scores = tf.matMul(tf.reshape(y, [2, 4, 5]), tf.reshape(y, [2, 4, 5]), false, true);
          return tf.sum(tf.square(scores));
        };
        const { value, grads } = tf.valueAndGrads(f)([x, w1, w2, bias]);
        return [value, ...grads];
      },
    ]);
  }
  return list;
}

const missing = nativeBlasPlugin({ addonPath: "/nonexistent/prefkit_native.node" });

describe("native-blas fallback", () => {
  it("PREFKIT_NATIVE=1 adds the plugin, or notes why it cannot", async () => {
    const previous = process.env.PREFKIT_NATIVE;
    process.env.PREFKIT_NATIVE = "1";
    try {
      const info = await initEngine({ backend: "cpu", threads: 1 });
      const names = info.kernelPlugins.map((p) => p.name);
      if (status.available) {
        expect(names).toContain(NATIVE_BLAS_PLUGIN);
      } else {
        expect(names).not.toContain(NATIVE_BLAS_PLUGIN);
        expect(info.notes).toContain(`kernel plugin native-blas is not available: ${status.reason}`);
      }
    } finally {
      process.env.PREFKIT_NATIVE = previous;
    }
  });

  it("reports a missing addon and keeps the stock kernels", async () => {
    const bad = nativeBlasStatus("/nonexistent/prefkit_native.node");
    expect(bad.available).toBe(false);
    expect(bad.reason).toBe(
      "/nonexistent/prefkit_native.node is not built (run `npm run build:native`; needs g++ and make)",
    );
    const info = await initEngine({ backend: "cpu", threads: 1, plugins: [missing] });
    expect(info.backend).toBe("cpu");
    expect(info.threads).toBe(1);
    expect(info.kernelPlugins.map((p) => p.name)).not.toContain(NATIVE_BLAS_PLUGIN);
    expect(info.nativeGemm).toBeUndefined();
    expect(info.notes).toContain(`kernel plugin native-blas is not available: ${bad.reason}`);
    const y = tf.tidy(() => tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([1, 0, 0, 1], [2, 2])));
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3, 4]);
    y.dispose();
  });
});

describe.skipIf(!status.available && !underCi)("native-blas plugin (cpu, the addon's GEMM)", () => {
  const list = computations();
  const stock = new Map<string, Float32Array[]>();
  let baseline = 0;

  beforeAll(async () => {
    // Stock cpu results first: the missing-addon plugin leaves every stock kernel in place.
    await initEngine({ backend: "cpu", threads: 1, plugins: [missing] });
    for (const [name, fn] of list) {
      stock.set(
        name,
        tf
          .tidy(() => fn())
          .map((t) => {
            const v = Float32Array.from(t.dataSync());
            t.dispose();
            return v;
          }),
      );
    }
    baseline = tf.memory().numTensors;
  });

  it("is built under CI", () => {
    expect(status.reason).toBeUndefined();
    expect(status.available).toBe(true);
    // The built-in GEMM, or OpenBLAS when the CI pass asks for it.
    expect(status.config).toMatch(process.env.PREFKIT_BLAS === "openblas" ? /^OpenBLAS/ : /^prefkit GEMM /);
  });

  it("registers on cpu, runs its GEMM on the engine's threads and names it in engineInfo()", async () => {
    const info = await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
    const plugin = info.kernelPlugins.find((p) => p.name === NATIVE_BLAS_PLUGIN);
    expect(plugin).toEqual({
      name: "native-blas",
      backend: "cpu",
      kernels: [
        "BatchMatMul",
        "_FusedMatMul",
        "Add",
        "Sub",
        "Multiply",
        "RealDiv",
        "Transpose",
        "Exp",
        "Sigmoid",
        "Softmax",
        "Slice",
        "PadV2",
      ],
    });
    expect(info.threads).toBe(2);
    expect(nativeBlasStatus().threads).toBe(2);
    expect(info.nativeGemm).toEqual(nativeBlasStatus().gemm);
    expect(info.nativeGemm?.threads).toBe(2);
    expect(info.nativeGemm?.isas).toContain(info.nativeGemm?.isa);
    expect(info.nativeGemm?.blas).toBe(process.env.PREFKIT_BLAS === "openblas" ? "openblas" : "builtin");
    await initEngine({ backend: "cpu", threads: 1 });
    expect(engineInfo().threads).toBe(1);
    expect(nativeBlasStatus().threads).toBe(1);
    expect(engineInfo().nativeGemm?.threads).toBe(1);
  });

  it.each(list.map(([name]) => [name]))("%s equals the stock cpu kernel to 1e-4", async (name) => {
    await initEngine({ backend: "cpu", threads: 1, plugins: [nativeBlasPlugin()] });
    expect(engineInfo().kernelPlugins.map((p) => p.name)).toContain(NATIVE_BLAS_PLUGIN);
    const fn = list.find(([n]) => n === name)![1];
    const outs = tf.tidy(() => fn());
    const expected = stock.get(name)!;
    expect(outs.length).toBe(expected.length);
    outs.forEach((t, i) => {
      expectClose(t.dataSync(), expected[i]!, 1e-4);
    });
    tf.dispose(outs);
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it("keeps stock error messages for mismatched shapes", async () => {
    await initEngine({ backend: "cpu", threads: 1, plugins: [nativeBlasPlugin()] });
    expect(() => tf.tidy(() => tf.matMul(tf.zeros([2, 3]), tf.zeros([4, 5])))).toThrow(/inner shapes \(3\) and \(4\)/);
    expect(tf.memory().numTensors).toBe(baseline);
  });
});
