// Matmul throughput of a SmolLM-sized linear layer and its two gradient products on each engine
// configuration. Prints one JSON line per (engine, product).
//
//   npx tsc -b packages/core && node bench/matmul.mjs [--reps 5] [--skip-cpu]
//
// Timings on shared machines swing by up to 3x: compare lines from one run only.
import { engineInfo, initEngine, shutdownEngine, tf } from "@prefkit/core";

const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const REPS = option("--reps", 5);

const [M, K, N] = [512, 576, 1536];
const FLOP = 2 * M * K * N;

const engines = [
  { name: "cpu", options: { backend: "cpu", threads: 1 }, reps: 1, warmup: 0 },
  { name: "wasm-stock-1t", options: { backend: "wasm", threads: 1, builtinKernels: false }, reps: 2, warmup: 1 },
  { name: "wasm-prefkit-1t", options: { backend: "wasm", threads: 1 }, reps: REPS, warmup: 2 },
  { name: "wasm-prefkit-2t", options: { backend: "wasm", threads: 2 }, reps: REPS, warmup: 2 },
].filter((e) => !(flag("--skip-cpu") && e.name === "cpu"));

const products = {
  // Y = A·B, the forward of a linear layer with B as [in, out].
  "Y=A·B": (t) => tf.matMul(t.a, t.b),
  // dA = dY·Bᵀ and dB = Aᵀ·dY, what the gradient of Y asks for.
  "dA=dY·Bᵀ": (t) => tf.matMul(t.dy, t.b, false, true),
  "dB=Aᵀ·dY": (t) => tf.matMul(t.a, t.dy, true, false),
};

function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

for (const engine of engines) {
  await initEngine(engine.options);
  const info = engineInfo();
  const t = {
    a: tf.randomUniform([M, K], -1, 1, "float32", 1),
    b: tf.randomUniform([K, N], -1, 1, "float32", 2),
    dy: tf.randomUniform([M, N], -1, 1, "float32", 3),
  };
  for (const [product, run] of Object.entries(products)) {
    const times = [];
    for (let i = 0; i < engine.warmup + engine.reps; i++) {
      // dY is new every training step. A fresh tensor id keeps XNNPACK from reusing weights
      // it packed for an earlier rep, so gradient products pay their packing as in training.
      const dy = tf.add(t.dy, 0);
      dy.dataSync();
      const start = performance.now();
      const y = run({ ...t, dy });
      y.dataSync();
      const ms = performance.now() - start;
      tf.dispose([y, dy]);
      if (i >= engine.warmup) times.push(ms);
    }
    const ms = median(times);
    const line = {
      engine: engine.name,
      backend: info.backend,
      threads: info.threads,
      product,
      shape: `[${M}x${K}]x[${K}x${N}]`,
      ms: Number(ms.toFixed(1)),
      gflops: Number((FLOP / ms / 1e6).toFixed(2)),
      reps: times.length,
    };
    console.log(JSON.stringify(line));
  }
  tf.dispose(Object.values(t));
}
shutdownEngine();
