// GFLOPS of the native addon's GEMM on the fused decoder's shapes: the built-in fp32 GEMM, the built-in
// bf16 GEMM (bf16 × bf16 → fp32; the weight packed once with gemmPack, the activations rounded while
// packing, as 16-bit weights will run), and OpenBLAS (loaded at run time when libopenblas.so.0 is
// installed), interleaved rep by rep so that load hits all three alike. One JSON line per measurement
// on stdout; progress on stderr. Not a test.
//
//   npm run build:native && node bench/gemm.mjs [--threads 2] [--reps 3] [--models smol,qwen1.5b] [--m 512,1024]
//   node bench/gemm.mjs --quick        # SmolLM-135M shapes at M = 512, 2 reps
//
// Per weight W [out, in] (HF layout) of each model (the MLP's up/gate and down projections, the LM
// head) and M tokens, the three products of a linear layer:
//   forward  y  = x·Wᵀ   (m = M,   n = out, k = in)
//   dx       dx = dy·W   (m = M,   n = in,  k = out)
//   dW       dW = dyᵀ·x  (m = out, n = in,  k = M)   (no weight operand: bf16 rounds both while packing)
// Each line has the best and the median GFLOPS of --reps timed runs after one warm-up, and the 1-minute
// load average. Timings on a shared 2-core machine swing: compare lines of one run. OpenBLAS runs with
// OPENBLAS_THREAD_TIMEOUT=4 unless set, so that its spinning idle threads do not slow the others' reps.
import { createRequire } from "node:module";
import os from "node:os";
import { parseArgs } from "node:util";
import { nativeBlasStatus } from "@prefkit/core";

const { values: opts } = parseArgs({
  options: {
    threads: { type: "string", default: "2" },
    reps: { type: "string" },
    models: { type: "string" },
    m: { type: "string" },
    quick: { type: "boolean", default: false },
  },
});

const MODELS = {
  "smollm-135m": { hidden: 576, intermediate: 1536, vocab: 49152 },
  "qwen2.5-1.5b": { hidden: 1536, intermediate: 8960, vocab: 151936 },
};
const alias = { smol: "smollm-135m", "qwen1.5b": "qwen2.5-1.5b" };
const models = (opts.models ?? (opts.quick ? "smol" : "smol,qwen1.5b")).split(",").map((m) => alias[m] ?? m);
const tokens = (opts.m ?? (opts.quick ? "512" : "512,1024")).split(",").map(Number);
const reps = Number(opts.reps ?? (opts.quick ? 2 : 3));
const threads = Number(opts.threads);

const log = (msg) => console.error(`[gemm] ${msg}`);
const load1 = () => Math.round(os.loadavg()[0] * 100) / 100;
const status = nativeBlasStatus();
if (!status.available) {
  console.log(JSON.stringify({ bench: "gemm", skipped: `native addon unavailable: ${status.reason}` }));
  process.exit(0);
}
const addon = createRequire(import.meta.url)(status.path);
addon.setNumThreads(threads);
// OpenBLAS's idle threads spin for ~2^28 cycles after each call (its THREAD_TIMEOUT), which here would sit
// on a core through the next, interleaved built-in product and halve it. Read when OpenBLAS loads (below).
process.env.OPENBLAS_THREAD_TIMEOUT ??= "4";
let openblas = true;
try {
  addon.gemm({
    m: 1,
    n: 1,
    k: 1,
    a: new Float32Array(1),
    b: new Float32Array(1),
    c: new Float32Array(1),
    blas: "openblas",
  });
} catch (e) {
  openblas = false;
  log(`OpenBLAS not measured: ${e.message}`);
}
const info = addon.gemmInfo();
console.log(JSON.stringify({ bench: "gemm-info", ...info, openblas, load1: load1() }));

/** Values in [-1, 1) without Math.random's cost on hundreds of millions of elements. */
function filled(n, seed) {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

for (const model of models) {
  const dims = MODELS[model];
  if (dims === undefined) throw new Error(`--models: unknown "${model}" (smol, qwen1.5b)`);
  const weights = [
    { weight: "mlp.up", inF: dims.hidden, outF: dims.intermediate },
    { weight: "mlp.down", inF: dims.intermediate, outF: dims.hidden },
    { weight: "lm_head", inF: dims.hidden, outF: dims.vocab },
  ];
  for (const { weight, inF, outF } of weights) {
    const w = filled(outF * inF, 1);
    // W packed once per product that reads it, as a frozen bf16 weight would be.
    const packed = {
      forward: addon.gemmPack({ b: w, k: inF, n: outF, transB: true, dtype: "bfloat16" }),
      dx: addon.gemmPack({ b: w, k: outF, n: inF, dtype: "bfloat16" }),
    };
    for (const M of tokens) {
      const x = filled(M * inF, 2);
      const dy = filled(M * outF, 3);
      const products = {
        forward: { m: M, n: outF, k: inF, a: x, b: w, transB: true },
        dx: { m: M, n: inF, k: outF, a: dy, b: w },
        dW: { m: outF, n: inF, k: M, a: dy, transA: true, b: x },
      };
      for (const [product, p] of Object.entries(products)) {
        const c = new Float32Array(p.m * p.n);
        const impls = {
          "fp32-builtin": () => addon.gemm({ ...p, c, blas: "builtin" }),
          "bf16-builtin":
            packed[product] !== undefined
              ? () => addon.gemm({ m: p.m, n: p.n, k: p.k, a: p.a, transA: p.transA, b: packed[product], c })
              : () => addon.gemm({ ...p, c, dtype: "bfloat16", blas: "builtin" }),
          ...(openblas ? { "fp32-openblas": () => addon.gemm({ ...p, c, blas: "openblas" }) } : {}),
        };
        const flop = 2 * p.m * p.n * p.k;
        const times = Object.fromEntries(Object.keys(impls).map((k) => [k, []]));
        for (const run of Object.values(impls)) run(); // warm-up: page faults of c, pack buffers
        for (let r = 0; r < reps; r++) {
          for (const [name, run] of Object.entries(impls)) {
            const t0 = performance.now();
            run();
            times[name].push((performance.now() - t0) / 1000);
          }
        }
        for (const [impl, ts] of Object.entries(times)) {
          const line = {
            bench: "gemm",
            model,
            weight,
            product,
            m: p.m,
            n: p.n,
            k: p.k,
            impl,
            isa: impl === "fp32-openblas" ? "openblas" : info.isa,
            threads,
            gflopsBest: Math.round(flop / Math.min(...ts) / 1e8) / 10,
            gflopsMedian: Math.round(flop / median(ts) / 1e8) / 10,
            seconds: ts.map((t) => Math.round(t * 1e4) / 1e4),
            load1: load1(),
          };
          console.log(JSON.stringify(line));
        }
        log(`${model} ${weight} ${product} M=${M} done`);
      }
    }
  }
}
