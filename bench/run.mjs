// prefkit's benchmark harness (`npm run bench`, which builds first). Prints ONE JSON line per workload
// on stdout; progress and logs go to stderr.
//
//   npm run bench                                   # DPO step at 8 and 30 layers (+ torch peer), generation
//                                                   # (+ torch peer), one GRPO and one PPO update at 30 layers,
//                                                   # GEMM GFLOPS
//   node bench/run.mjs --quick                      # smoke test: 2 layers, 2 steps
//   node bench/run.mjs --workload dpo --layers 8 --steps 5
//   node bench/run.mjs --workload grpo --layers 2 --steps 1   # GRPO: 8 prompts × 4 generations × 64 new tokens
//   node bench/run.mjs --workload ppo --layers 30   # one PPO update (examples/ppo settings), tfjs vs native decoding
//   node bench/run.mjs --workload matmul,forward    # the engine benches (bench/matmul.mjs, bench/forward.mjs)
//   node bench/run.mjs --workload gemm              # the native GEMM's GFLOPS (bench/gemm.mjs)
//   npm run bench -- --workload scale               # the seeds' model sizes, fp32 and bf16, next to PyTorch
//                                                   # (bench/scale.mjs; needs most of 24 GiB: run it alone)
//   node bench/run.mjs --workload scale --layers 1 --seq 64 --steps 1   # smoke test of the scale pipeline
//
// Flags: --workload dpo|generate|grpo|ppo|gemm|matmul|forward|methods|scale|all (comma list; all = dpo,generate,grpo,
// ppo,gemm; methods = DPO vs ORPO/CPO/KTO steps through the trainers, bench/methods.mjs; scale = Qwen2.5-0.5B full
// DPO, Qwen2.5-1.5B LoRA DPO, Mistral-7B LoRA reward model at 1 pair × 512 tokens, prefkit fp32 and bf16-AMP and
// PyTorch fp32 and autocast-bf16, see bench/README.md; its flags: --shapes qwen2.5-0.5b,qwen2.5-1.5b,mistral-7b,
// --seq N (tokens per row, default 512), --layers N (override the real layer count), --steps N (default 2),
// --skip-peer, --scale-cache DIR (default $TMPDIR/prefkit-scale-checkpoints)), --layers 8,30 (grpo, ppo and
// generate run at the largest), --steps N (measured steps after 1 warm-up; default 3, grpo and ppo 1), --quick,
// --backend auto|native|wasm|cpu (comma list; auto = native,wasm when the native addon is built, else wasm;
// native = the fast path: cpu with the native-blas plugin and its fused decoder; wasm = the portable path,
// skipped at 30 layers where it does not fit the 4 GiB heap unless named explicitly), --threads N,
// --no-peer or --skip-peer (skip PyTorch), --stall-minutes M (kill a child that logs nothing for M minutes; default 6).
//
// Near the wasm heap's 4 GiB cap, the threaded wasm build does not fail: malloc hangs (seen on the 30-layer
// step). The watchdog turns that into an `error` line instead of a run that never ends.
//
// Every prefkit workload runs in a fresh child process (so peak RSS is per workload), and the PyTorch
// peer (bench/dpo_step_torch.py under Debian's /usr/bin/python3) runs after it, never concurrently.
// Timings on a shared 2-core machine swing by ~3x when anything else runs: compare lines of one run.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { tf } from "@prefkit/core";
import {
  attachRatios,
  cachedRandomCheckpoint,
  childScale,
  parameterCount,
  SCALE_MODELS,
  scaleCapabilities,
  scaleShape,
  scaleSkips,
  scaleSpec,
  trainingLabel,
} from "./scale.mjs";
import { randomBatch, smolConfig } from "./smol.mjs";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const SYSTEM_PYTHON = "/usr/bin/python3";
const TORCH_SCRIPT = `${HERE}dpo_step_torch.py`;

const SMOL = smolConfig();

/** Memory one `scale` row may plan on (of 24 GiB): rows whose float32 weights alone exceed it are skipped. */
const SCALE_BUDGET_GIB = 20;

/** The DPO workload's fixed shape and hyper-parameters (bench/dpo_step_torch.py uses the same). */
const DPO = { pairs: 2, seqLen: 128, prompt: 32, beta: 0.1, lr: 1e-6 };

/**
 * The GRPO workload: one update of 8 prompts × 4 generations × 64 new tokens (no eos, so every completion is
 * 64 tokens), 4 micro-batches of 8 completions, TRL's defaults otherwise (β = 0: no reference pass).
 */
const GRPO = { prompts: 8, generations: 4, newTokens: 64, prompt: 32, microBatch: 8, beta: 0, lr: 1e-6 };

/**
 * The PPO workload: examples/ppo's settings (value head on the policy, 4 PPO epochs over 2 mini-batches,
 * lr 1e-4, kl 0.05, temperature 0.7) on 8 random 16-token prompts × 64 sampled new tokens (no eos), a rule
 * reward on the ids; one warm-up update, then `--steps` measured ones. `--quick` shrinks it to a smoke test
 * (4 prompts × 16 new tokens, 1 epoch, 1 mini-batch).
 */
const PPO_FULL = {
  prompts: 8,
  prompt: 16,
  newTokens: 64,
  microBatch: 4,
  miniBatches: 2,
  epochs: 4,
  lr: 1e-4,
  klCoef: 0.05,
};

const { values: opts } = parseArgs({
  options: {
    workload: { type: "string", default: "all" },
    layers: { type: "string" },
    steps: { type: "string" },
    quick: { type: "boolean", default: false },
    backend: { type: "string", default: "auto" },
    threads: { type: "string", default: "2" },
    "no-peer": { type: "boolean", default: false },
    "stall-minutes": { type: "string", default: "6" },
    "skip-peer": { type: "boolean", default: false },
    shapes: { type: "string", default: Object.keys(SCALE_MODELS).join(",") },
    seq: { type: "string" },
    "scale-cache": { type: "string" },
    child: { type: "string" }, // internal: run one workload in this process
    mode: { type: "string" }, // internal (scale child): fp32 | bf16
    checkpoint: { type: "string" }, // internal (scale child): the checkpoint directory
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});

const PPO = opts.quick ? { ...PPO_FULL, prompts: 4, newTokens: 16, miniBatches: 1, epochs: 1 } : PPO_FULL;

const log = (...args) => console.error("[bench]", ...args);

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const round = (x, digits = 4) => Number(x.toFixed(digits));

function peakRssMB() {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
    if (m) return round(Number(m[1]) / 1024, 1);
  } catch {}
  return round(process.resourceUsage().maxRSS / 1024, 1); // maxRSS is in KiB
}

/** Forward+backward+reference FLOPs of one DPO step (matmuls only; 2·params·tokens per forward). */
function dpoGflop(layers, rows, t) {
  const h = SMOL.hidden_size;
  const kv = (h / SMOL.num_attention_heads) * SMOL.num_key_value_heads;
  const perLayer = 2 * h * h + 2 * h * kv + 3 * h * SMOL.intermediate_size;
  const tokens = rows * t;
  const forward = 2 * tokens * (layers * perLayer + h * SMOL.vocab_size) + layers * 4 * rows * t * t * h;
  return (4 * forward) / 1e9; // policy forward (1) + backward (2) + reference forward (1)
}

// ---------------------------------------------------------------------------------------------
// Child side: one workload in this process.

/** The child's engine per `--backend` (native = cpu + the native-blas plugin); what the result line says of it. */
async function initChildEngine() {
  const { initEngine, nativeBlasPlugin } = await import("@prefkit/core");
  const native = opts.backend === "native";
  const info = await initEngine({
    backend: native ? "cpu" : opts.backend,
    threads: Number(opts.threads),
    ...(native ? { plugins: [nativeBlasPlugin()] } : {}),
  });
  if (native && !info.kernelPlugins.some((p) => p.name === "native-blas")) {
    throw new Error(`the native addon is not available: ${info.notes.join("; ")}`);
  }
  return {
    backend: info.backend,
    path: native ? "fast (cpu + native-blas fused decoder)" : `portable (${info.backend})`,
    threads: info.threads,
  };
}

/** The wasm heap's size in MB (undefined on other backends). */
function wasmHeapMB() {
  const bytes = tf.backend()?.wasm?.HEAPU8?.buffer?.byteLength;
  return bytes === undefined ? undefined : round(bytes / 2 ** 20, 1);
}

async function childDpo() {
  const { engineInfo, AdamW, fusedSequenceLogProbs } = await import("@prefkit/core");
  const { PreTrainedModelForCausalLM } = await import("@prefkit/models");
  const { dpoLoss } = await import("@prefkit/losses");
  const layers = Number(opts.layers);
  const steps = Number(opts.steps);
  const rows = 2 * DPO.pairs;
  const T = DPO.seqLen;
  const base = { workload: "dpo", layers, batch: rows, seqLen: T, steps, ...(await initChildEngine()) };
  log(`dpo ${layers}L on ${base.backend} (${base.threads} thread(s)): building the model`);

  const policy = PreTrainedModelForCausalLM.fromConfig({ ...SMOL, num_hidden_layers: layers }, { seed: 0 });
  const reference = policy.frozenCopy();
  log(`dpo ${layers}L: policy and reference built, wasm heap ${wasmHeapMB() ?? "n/a"} MB, rss ${peakRssMB()} MB`);
  const optimizer = new AdamW({ learningRate: DPO.lr, weightDecay: 0 });
  // Rows 0..pairs-1 are the chosen completions, pairs..2·pairs-1 the rejected ones (DPOTrainer's concat).
  const { ids, completion } = randomBatch({ rows, seqLen: T, prompt: DPO.prompt, vocab: SMOL.vocab_size });
  const vars = policy.trainableVariables();

  const step = () =>
    tf.tidy(() => {
      // Chunked LM head + log-probs (core's lmHeadLogProbs): no [rows·T, vocab] logits in either pass.
      const ref = tf.tidy(() => fusedSequenceLogProbs(reference, ids, completion).sums);
      const refChosen = tf.slice(ref, [0], [DPO.pairs]);
      const refRejected = tf.slice(ref, [DPO.pairs], [DPO.pairs]);
      const { value, grads } = tf.variableGrads(() => {
        const logps = fusedSequenceLogProbs(policy, ids, completion).sums;
        const chosen = tf.slice(logps, [0], [DPO.pairs]);
        const rejected = tf.slice(logps, [DPO.pairs], [DPO.pairs]);
        const { losses } = dpoLoss(chosen, rejected, refChosen, refRejected, { beta: DPO.beta, lossType: "sigmoid" });
        return tf.mean(losses);
      }, vars);
      optimizer.applyGradients(grads);
      const loss = value.dataSync()[0];
      // Reading one updated weight back makes sure the update ran (backends are synchronous here anyway).
      vars[0].dataSync();
      return loss;
    });

  const losses = [];
  const times = [];
  let afterWarmup = 0;
  for (let i = 0; i < 1 + steps; i++) {
    const t0 = performance.now();
    const loss = step();
    const sec = (performance.now() - t0) / 1000;
    losses.push(round(loss, 6));
    if (i > 0) times.push(sec);
    else afterWarmup = tf.memory().numTensors;
    const heap = wasmHeapMB();
    log(
      `dpo ${layers}L step ${i}${i === 0 ? " (warm-up)" : ""}: ${sec.toFixed(2)}s loss ${loss.toFixed(6)}` +
        (heap !== undefined ? `, wasm heap ${heap} MB` : "") +
        `, rss ${peakRssMB()} MB`,
    );
  }
  const stepSeconds = median(times);
  const gflop = dpoGflop(layers, rows, T);
  const result = {
    ...base,
    stepSeconds: round(stepSeconds),
    stepSecondsAll: times.map((t) => round(t)),
    tokensPerSecond: round((rows * T) / stepSeconds, 2),
    peakRssMB: peakRssMB(),
    ...(wasmHeapMB() !== undefined ? { wasmHeapMB: wasmHeapMB() } : {}),
    gflopPerStep: round(gflop, 1),
    effectiveGflops: round(gflop / stepSeconds, 2),
    losses,
    tensorsAfterWarmup: afterWarmup,
    tensorsAtEnd: tf.memory().numTensors,
    engine: { tfjs: engineInfo().tfjsVersion, plugins: engineInfo().kernelPlugins.map((p) => p.name) },
  };
  console.log(JSON.stringify(result));
}

/** The on-policy workloads' tokenizer: ids as text, no eos (every completion runs to its length). */
const IDS_TOKENIZER = {
  encode: (text) => text.split(" ").map(Number),
  decode: (ids) => ids.join(" "),
  applyChatTemplate: () => "",
  hasChatTemplate: false,
  padTokenId: 0,
};

/** The on-policy workloads' reward function: the share of even ids in each completion. */
const evenShare = (_texts, _prompts, { completionIds }) =>
  completionIds.map((ids) => ids.filter((id) => id % 2 === 0).length / Math.max(ids.length, 1));

/** Random prompts of `length` ids in [3, vocab) drawn from `rng`. */
const promptSampler = (rng, length) => () => Array.from({ length }, () => 3 + rng.int(SMOL.vocab_size - 3));

/**
 * One GRPO update per measured step through the real `GRPOTrainer` (1 warm-up update first): generation with
 * the KV cache, the reward function, and the policy passes (4 micro-batches forward + backward, one AdamW
 * step), each timed by the task (`trainer.lastTimings`).
 */
async function childGrpo() {
  const { engineInfo, Rng } = await import("@prefkit/core");
  const { PreTrainedModelForCausalLM } = await import("@prefkit/models");
  const { GRPOTrainer } = await import("@prefkit/losses");
  const layers = Number(opts.layers);
  const steps = Number(opts.steps);
  const completions = GRPO.prompts * GRPO.generations;
  const base = {
    workload: "grpo",
    layers,
    prompts: GRPO.prompts,
    generations: GRPO.generations,
    promptLen: GRPO.prompt,
    newTokens: GRPO.newTokens,
    beta: GRPO.beta,
    steps,
    ...(await initChildEngine()),
  };
  log(`grpo ${layers}L on ${base.backend} (${base.threads} thread(s)): building the model`);
  const policy = PreTrainedModelForCausalLM.fromConfig({ ...SMOL, num_hidden_layers: layers }, { seed: 0 });
  const prompt = promptSampler(new Rng(1), GRPO.prompt);
  const updates = [];
  const trainer = new GRPOTrainer({
    model: policy,
    rewardFuncs: { even_share: evenShare },
    trainDataset: Array.from({ length: GRPO.prompts * (1 + steps) }, () => ({ inputIds: prompt() })),
    processingClass: IDS_TOKENIZER,
    args: {
      outputDir: "/tmp/prefkit-bench-grpo",
      maxSteps: 1 + steps,
      numGenerations: GRPO.generations,
      perDeviceTrainBatchSize: GRPO.microBatch,
      gradientAccumulationSteps: completions / GRPO.microBatch,
      maxCompletionLength: GRPO.newTokens,
      beta: GRPO.beta,
      learningRate: GRPO.lr,
      loggingSteps: 1,
      saveStrategy: "no",
    },
    callbacks: [
      {
        onStepBegin: () => updates.push({ started: performance.now() }),
        onStepEnd: (_args, state) => {
          const u = updates.at(-1);
          u.seconds = (performance.now() - u.started) / 1000;
          u.timings = trainer.lastTimings;
          u.reward = state.logHistory.at(-1)?.reward;
          const t = u.timings;
          log(
            `grpo ${layers}L update ${updates.length - 1}${updates.length === 1 ? " (warm-up)" : ""}: ` +
              `${u.seconds.toFixed(2)}s (generation ${t.generation.toFixed(2)}s, reference ${t.reference.toFixed(2)}s, ` +
              `scoring ${t.scoring.toFixed(3)}s, policy passes ${t.policy.toFixed(2)}s), rss ${peakRssMB()} MB`,
          );
        },
      },
    ],
  });
  await trainer.train();
  const measured = updates.slice(1);
  const split = (k) => round(median(measured.map((u) => u.timings[k])));
  const updateSeconds = median(measured.map((u) => u.seconds));
  console.log(
    JSON.stringify({
      ...base,
      updateSeconds: round(updateSeconds),
      updateSecondsAll: measured.map((u) => round(u.seconds)),
      split: {
        generationSeconds: split("generation"),
        referenceSeconds: split("reference"),
        scoringSeconds: split("scoring"),
        policySeconds: split("policy"),
      },
      generatedTokensPerSecond: round((completions * GRPO.newTokens) / split("generation"), 2),
      peakRssMB: peakRssMB(),
      ...(wasmHeapMB() !== undefined ? { wasmHeapMB: wasmHeapMB() } : {}),
      tensorsAtEnd: tf.memory().numTensors,
      engine: { tfjs: engineInfo().tfjsVersion, plugins: engineInfo().kernelPlugins.map((p) => p.name) },
    }),
  );
  trainer.dispose();
}

/**
 * One PPO update per measured step through the real `PPOTrainer` (1 warm-up update first), its time split
 * read from the `time/*` metrics it logs. `PREFKIT_NATIVE_GENERATION=0` in the environment makes the
 * rollout decode with the tfjs ops (the "before" line).
 */
async function childPpo() {
  const { engineInfo, Rng } = await import("@prefkit/core");
  const { PreTrainedModelForCausalLM } = await import("@prefkit/models");
  const { PPOTrainer } = await import("@prefkit/losses");
  const layers = Number(opts.layers);
  const steps = Number(opts.steps);
  const engine = await initChildEngine();
  const policy = PreTrainedModelForCausalLM.fromConfig({ ...SMOL, num_hidden_layers: layers }, { seed: 0 });
  const probe = policy.startDecoding(1, 2);
  const decode = probe?.kind ?? "tfjs";
  probe?.dispose();
  const base = {
    workload: "ppo",
    layers,
    decode,
    prompts: PPO.prompts,
    promptLen: PPO.prompt,
    newTokens: PPO.newTokens,
    epochs: PPO.epochs,
    miniBatches: PPO.miniBatches,
    steps,
    ...engine,
  };
  log(`ppo ${layers}L on ${base.backend} (${base.threads} thread(s)), ${decode} decoding`);
  const prompt = promptSampler(new Rng(1), PPO.prompt);
  const updates = [];
  const trainer = new PPOTrainer({
    model: policy,
    rewardModel: evenShare,
    trainDataset: Array.from({ length: PPO.prompts * (1 + steps) }, () => ({ inputIds: prompt() })),
    processingClass: IDS_TOKENIZER,
    args: {
      outputDir: "/tmp/prefkit-bench-ppo",
      maxSteps: 1 + steps,
      perDeviceTrainBatchSize: PPO.microBatch,
      numMiniBatches: PPO.miniBatches,
      numPpoEpochs: PPO.epochs,
      responseLength: PPO.newTokens,
      learningRate: PPO.lr,
      klCoef: PPO.klCoef,
      valueHead: "policy",
      missingEosPenalty: null,
      loggingSteps: 1,
      saveStrategy: "no",
      seed: 42,
    },
    callbacks: [
      {
        onLog: (_args, state, _control, { logs }) => {
          if (!("time/update" in logs)) return;
          const split = Object.fromEntries(
            Object.entries(logs)
              .filter(([k]) => k.startsWith("time/"))
              .map(([k, v]) => [k.slice("time/".length), v]),
          );
          updates.push(split);
          log(
            `ppo ${layers}L update ${updates.length - 1}${updates.length === 1 ? " (warm-up)" : ""}: ` +
              Object.entries(split)
                .map(([k, v]) => `${k} ${v.toFixed(2)}s`)
                .join(", ") +
              `, rss ${peakRssMB()} MB (step ${state.globalStep})`,
          );
        },
      },
    ],
  });
  await trainer.train();
  const measured = updates.slice(1);
  const split = (k) => round(median(measured.map((u) => u[k])), 3);
  const names = ["generation", "reference", "value", "scoring", "rollout", "optimization", "update"];
  const seconds = Object.fromEntries(names.map((k) => [k, split(k)]));
  console.log(
    JSON.stringify({
      ...base,
      updateSeconds: seconds.update,
      split: seconds,
      generationShare: round(seconds.generation / seconds.update, 3),
      rolloutShare: round(seconds.rollout / seconds.update, 3),
      generatedTokensPerSecond: round((PPO.prompts * PPO.newTokens) / seconds.generation, 2),
      warmup: updates[0],
      peakRssMB: peakRssMB(),
      tensorsAtEnd: tf.memory().numTensors,
      engine: { tfjs: engineInfo().tfjsVersion, plugins: engineInfo().kernelPlugins.map((p) => p.name) },
    }),
  );
  trainer.dispose();
}

async function runChild() {
  try {
    if (opts.child === "dpo") await childDpo();
    else if (opts.child === "grpo") await childGrpo();
    else if (opts.child === "ppo") await childPpo();
    else if (opts.child === "scale") {
      await childScale({
        shape: opts.shapes,
        mode: opts.mode,
        checkpoint: opts.checkpoint,
        steps: Number(opts.steps),
        seq: Number(opts.seq),
        layers: opts.layers === undefined ? undefined : Number(opts.layers),
        engine: await initChildEngine(),
        log,
      });
    } else throw new Error(`unknown child workload "${opts.child}"`);
  } catch (e) {
    const message = String(e?.message ?? e);
    // The single-thread wasm build aborts when the heap cannot grow past its 4 GiB cap.
    const outOfMemory =
      /out of memory|OOM|Cannot enlarge memory|Array buffer allocation failed|Aborted\(/i.test(message) ||
      e instanceof RangeError;
    const what = opts.backend === "wasm" ? "the 4 GiB wasm heap" : "memory";
    console.log(
      JSON.stringify({
        workload: opts.child,
        ...(opts.child === "scale" ? { shape: opts.shapes, mode: opts.mode } : { layers: Number(opts.layers) }),
        backend: opts.backend,
        threads: Number(opts.threads),
        error: outOfMemory ? `does not fit in ${what}: ${message}` : message,
        peakRssMB: peakRssMB(),
      }),
    );
  }
  // wasm pthread workers are unref'ed, but exit explicitly: the parent waits for this process.
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// Parent side: spawn children and the PyTorch peer, one at a time.

/** Run a command, stream its stderr through, collect JSON lines from its stdout. */
function runJsonLines(cmd, args, label, stallMs = Number.POSITIVE_INFINITY, env = process.env) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], cwd: `${HERE}..`, env });
    let out = "";
    let errTail = "";
    let errAll = "";
    let stalled;
    let timer;
    const arm = () => {
      if (!Number.isFinite(stallMs)) return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = { minutes: stallMs / 60000, rssMB: childRssMB(child.pid) };
        log(`${label}: no progress for ${stalled.minutes} min (rss ${stalled.rssMB} MB): killing pid ${child.pid}`);
        child.kill("SIGKILL");
      }, stallMs);
    };
    arm();
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      process.stderr.write(d);
      errTail = (errTail + d).slice(-2000);
      if (errAll.length < 1e6) errAll += d;
      arm();
    });
    child.on("error", (e) => resolve({ lines: [], code: -1, signal: null, errTail: String(e.message), errAll: "" }));
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const lines = [];
      for (const line of out.split("\n")) {
        const s = line.trim();
        if (!s.startsWith("{")) continue;
        try {
          lines.push(JSON.parse(s));
        } catch {
          log(`${label}: unparsable line ${s.slice(0, 200)}`);
        }
      }
      resolve({ lines, code, signal, errTail, errAll, stalled });
    });
  });
}

/** Peak RSS of a running process (VmHWM), or undefined when it cannot be read. */
function childRssMB(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? round(Number(m[1]) / 1024, 1) : undefined;
  } catch {
    return undefined;
  }
}

let torchProbe;
/** Whether Debian's system Python can import torch (probed once), with a reason when it cannot. */
function torchAvailable() {
  if (torchProbe !== undefined) return torchProbe;
  if (!existsSync(SYSTEM_PYTHON)) {
    torchProbe = { ok: false, reason: `${SYSTEM_PYTHON} not found` };
    return torchProbe;
  }
  const r = spawnSync(SYSTEM_PYTHON, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8" });
  torchProbe =
    r.status === 0
      ? { ok: true, version: r.stdout.trim() }
      : {
          ok: false,
          reason: `${SYSTEM_PYTHON} cannot import torch (install Debian's python3-torch): ${(r.stderr || "").trim().split("\n").pop()}`,
        };
  return torchProbe;
}

async function runTorch(args, label, script = TORCH_SCRIPT) {
  const probe = torchAvailable();
  if (opts["no-peer"] || opts["skip-peer"]) return { skipped: "--no-peer/--skip-peer given" };
  if (!probe.ok) return { skipped: probe.reason };
  log(`${label}: running the PyTorch peer (torch ${probe.version})`);
  const r = await runJsonLines(SYSTEM_PYTHON, [script, ...args], label);
  if (r.lines.length === 0) return { error: `torch exited ${r.code ?? r.signal}: ${r.errTail.trim().slice(-500)}` };
  return { lines: r.lines };
}

/** The prefkit backends to run: `auto` is native (when built) + wasm. */
async function backendList() {
  const list = opts.backend.split(",").map((b) => b.trim());
  if (!list.includes("auto")) return { list, explicit: true };
  const { nativeBlasStatus } = await import("@prefkit/core");
  const status = nativeBlasStatus();
  if (!status.available) log(`native addon unavailable (${status.reason}): benchmarking wasm only`);
  return { list: status.available ? ["native", "wasm"] : ["wasm"], explicit: false };
}

async function benchDpo(layers, steps) {
  const { list, explicit } = await backendList();
  const lines = [];
  for (const backend of list) {
    if (backend === "wasm" && layers >= 30 && !explicit) {
      lines.push({
        workload: "dpo",
        layers,
        backend: "wasm",
        path: "portable (wasm)",
        skipped:
          "the 30-layer step does not fit the 4 GiB wasm heap (the threaded build's malloc hangs near 3.3 GB); run --backend wasm to try",
      });
      continue;
    }
    lines.push(await benchChildOn("dpo", backend, layers, steps));
  }
  const peer = await runTorch(["--layers", String(layers), "--steps", String(steps)], `dpo ${layers}L`);
  for (const line of lines) {
    if (peer.lines) {
      const t = peer.lines[0];
      line.peer = "torch";
      line.torch = {
        version: t.torch,
        threads: t.threads,
        stepSeconds: t.stepSeconds,
        stepSecondsAll: t.stepSecondsAll,
        tokensPerSecond: t.tokensPerSecond,
        peakRssMB: t.peakRssMB,
        losses: t.losses,
      };
      if (line.tokensPerSecond !== undefined) line.ratio = round(line.tokensPerSecond / t.tokensPerSecond, 3);
    } else {
      line.peer = "skipped";
      line.reason = peer.skipped ?? peer.error;
    }
    console.log(JSON.stringify(line));
  }
}

/** Run `workload` ("dpo", "grpo" or "ppo") in a child process on `backend`; its result line, or an error line. */
async function benchChildOn(workload, backend, layers, steps, env = process.env) {
  log(`${workload} ${layers} layers: prefkit (${backend}) in a child process`);
  const childArgs = [
    fileURLToPath(import.meta.url),
    "--child",
    workload,
    "--layers",
    String(layers),
    "--steps",
    String(steps),
    "--backend",
    backend,
    "--threads",
    opts.threads,
    ...(opts.quick ? ["--quick"] : []),
  ];
  const stallMs = Number(opts["stall-minutes"]) * 60000;
  const r = await runJsonLines(process.execPath, childArgs, `${workload} ${layers}L`, stallMs, env);
  let line = r.lines.at(-1);
  const heaps = [...r.errTail.matchAll(/wasm heap ([\d.]+) MB/g)].map((m) => Number(m[1]));
  if (line === undefined && r.stalled !== undefined) {
    line = {
      workload,
      layers,
      backend: backend,
      threads: Number(opts.threads),
      error:
        `no progress for ${r.stalled.minutes} min, killed (peak rss ${r.stalled.rssMB} MB` +
        (heaps.length > 0 ? `, wasm heap ${heaps.at(-1)} MB at the last log` : "") +
        (backend === "wasm"
          ? "): on wasm the threaded build's malloc hangs at the 4 GiB heap cap, so the step most likely does not fit"
          : ")"),
      peakRssMB: r.stalled.rssMB,
    };
  } else if (line === undefined) {
    line = {
      workload,
      layers,
      backend: backend,
      error: `child exited ${r.code ?? r.signal} without a result${/memory|OOM/i.test(r.errTail) ? " (out of memory)" : ""}: ${r.errTail.trim().slice(-400)}`,
    };
  }
  if (line.error !== undefined) {
    // What the child logged before failing: step times, losses and the wasm heap.
    const done = [
      ...r.errAll.matchAll(/step (\d+)(?: \(warm-up\))?: ([\d.]+)s loss ([\d.]+)(?:, wasm heap ([\d.]+) MB)?/g),
    ];
    if (done.length > 0) {
      line.completedSteps = done.length;
      line.warmupSeconds = Number(done[0][2]);
      line.stepSecondsAll = done.slice(1).map((m) => Number(m[2]));
      line.losses = done.map((m) => Number(m[3]));
      if (done.at(-1)[4] !== undefined) line.wasmHeapMBAtLastStep = Number(done.at(-1)[4]);
    }
    if (/Aborted\(/.test(r.errAll) && !/Aborted/.test(line.error)) line.error += " (wasm Aborted(): out of heap)";
  }
  if (line.error !== undefined && backend === "wasm") {
    line.fallback = {
      backend: "native",
      reason: "the fast path (cpu + native-blas) keeps tensors in JS memory, without the wasm heap's 4 GiB cap",
    };
  }
  return line;
}

/**
 * The `scale` workload (bench/scale.mjs): per shape, its random bf16 checkpoint (cached under the temp dir), then
 * one process per row, one after the other: prefkit fp32 (the checkpoint loaded as float32), prefkit bf16
 * (loaded as bfloat16, `AmpPlugin({ compute: "bfloat16" })`), PyTorch fp32 and PyTorch autocast-bf16
 * (bench/scale_torch.py). One JSON line per row; prefkit's lines carry the ratios to the peer's lines.
 */
async function benchScale() {
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const keys = opts.shapes.split(",").map((k) => k.trim());
  for (const k of keys) scaleSpec(k); // unknown names fail before anything runs
  const layers = opts.layers === undefined ? (opts.quick ? 1 : undefined) : Number(opts.layers);
  const seq = Number(opts.seq ?? (opts.quick ? 64 : 512));
  const steps = Number(opts.steps ?? 2);
  const shape = scaleShape(seq);
  const cacheRoot = opts["scale-cache"] ?? join(tmpdir(), "prefkit-scale-checkpoints");
  const { list } = await backendList();
  const backend = list.includes("native") ? "native" : list[0];
  const caps = await scaleCapabilities();
  const stallMs = Math.max(45, Number(opts["stall-minutes"])) * 60000;
  log(
    `scale: bf16 compute ${caps.bf16Compute ? "available" : "absent"}, gradient checkpointing ${caps.gradientCheckpointing ? "available" : "absent"}; checkpoints cached in ${cacheRoot}`,
  );
  for (const key of keys) {
    const spec = scaleSpec(key, { layers });
    const common = {
      workload: "scale",
      shape: key,
      method: spec.method,
      training: trainingLabel(spec),
      layers: spec.config.num_hidden_layers,
      seqLen: seq,
      parameters: parameterCount(spec.config, spec.method === "reward"),
    };
    // What cannot run here, said up front instead of crashing a 24 GiB machine.
    const skip = scaleSkips(spec, caps, SCALE_BUDGET_GIB);
    const ours = [];
    let checkpoint;
    if (!(skip.fp32 && skip.bf16)) {
      try {
        checkpoint = await cachedRandomCheckpoint(cacheRoot, key, spec.config, { log });
        log(
          `scale ${key}: ${checkpoint.cached ? "reusing" : "wrote"} ${(checkpoint.bytes / 2 ** 30).toFixed(2)} GiB in ${checkpoint.dir}` +
            (checkpoint.cached ? "" : ` (${checkpoint.seconds.toFixed(1)}s)`),
        );
      } catch (e) {
        skip.fp32 ??= `the random checkpoint could not be written: ${e.message}`;
        skip.bf16 ??= skip.fp32;
      }
    }
    for (const mode of ["fp32", "bf16"]) {
      if (skip[mode]) {
        ours.push({ ...common, engine: "prefkit", mode, backend, skipped: skip[mode] });
        continue;
      }
      log(`scale ${key}: prefkit ${mode} (${backend}) in a child process`);
      const args = [fileURLToPath(import.meta.url), "--child", "scale", "--shapes", key, "--mode", mode];
      args.push("--checkpoint", checkpoint.dir, "--steps", String(steps), "--seq", String(seq));
      args.push("--backend", backend, "--threads", opts.threads);
      if (layers !== undefined) args.push("--layers", String(layers));
      const r = await runJsonLines(process.execPath, args, `scale ${key} ${mode}`, stallMs);
      const killed = r.signal === "SIGKILL" && !r.stalled ? " (SIGKILL: most likely the kernel's OOM killer)" : "";
      ours.push(
        r.lines.at(-1) ?? {
          ...common,
          engine: "prefkit",
          mode,
          error: r.stalled
            ? `no progress for ${r.stalled.minutes} min, killed (peak rss ${r.stalled.rssMB} MB)`
            : `did not finish: exited ${r.code ?? r.signal}${killed}: ${r.errTail.trim().slice(-400)}`,
        },
      );
    }
    const peers = {};
    for (const mode of ["fp32", "autocast"]) {
      const args = ["--config", JSON.stringify(spec.config), "--name", key, "--method", spec.method];
      args.push("--training", spec.training, "--mode", mode, "--steps", String(steps), "--seq", String(seq));
      args.push("--threads", opts.threads, "--budget-gib", String(SCALE_BUDGET_GIB));
      // The reward-model row recomputes layers in the backward pass (as prefkit's); under autocast its frozen
      // weights are stored in bf16, what a PyTorch user does when float32 weights would not fit.
      if (spec.method === "reward") args.push("--gradient-checkpointing");
      if (spec.method === "reward" && mode === "autocast") args.push("--frozen-bf16");
      const r = await runTorch(args, `scale ${key} torch ${mode}`, `${HERE}scale_torch.py`);
      const oom = /SIGKILL|MemoryError|alloc/i.test(r.error ?? "") ? "did not fit / OOM: " : "";
      peers[mode] = r.lines?.at(-1) ?? {
        ...common,
        engine: "torch",
        mode,
        ...(r.skipped ? { skipped: r.skipped } : { error: `${oom}${r.error}` }),
      };
    }
    for (const line of attachRatios(ours, peers)) console.log(JSON.stringify(line));
    for (const peer of Object.values(peers)) console.log(JSON.stringify(peer));
  }
  log(
    `scale: ${shape.rows} rows × ${seq} tokens (prompt ${shape.prompt}); checkpoints kept in ${cacheRoot} for the next run`,
  );
}

async function benchGrpo(layers, steps) {
  const { list, explicit } = await backendList();
  for (const backend of list) {
    if (backend === "wasm" && layers >= 30 && !explicit) {
      console.log(
        JSON.stringify({
          workload: "grpo",
          layers,
          backend: "wasm",
          path: "portable (wasm)",
          skipped: "the 30-layer update does not fit the 4 GiB wasm heap (as the DPO step); run --backend wasm to try",
        }),
      );
      continue;
    }
    console.log(JSON.stringify(await benchChildOn("grpo", backend, layers, steps)));
  }
}

/** One PPO update on the fast path, decoding with the tfjs ops (before issue 16) and on the native step. */
async function benchPpo(layers, steps) {
  const { list } = await backendList();
  if (!list.includes("native")) {
    console.log(JSON.stringify({ workload: "ppo", layers, skipped: "needs the native backend (the fast path)" }));
    return;
  }
  const lines = [];
  for (const decode of ["tfjs", "native"]) {
    const env = { ...process.env, PREFKIT_NATIVE_GENERATION: decode === "native" ? "1" : "0" };
    lines.push(await benchChildOn("ppo", "native", layers, steps, env));
  }
  const [before, after] = lines;
  if (before.updateSeconds !== undefined && after.updateSeconds !== undefined) {
    after.before = {
      updateSeconds: before.updateSeconds,
      split: before.split,
      generationShare: before.generationShare,
    };
    after.speedup = round(before.updateSeconds / after.updateSeconds, 3);
    after.generationSpeedup = round(before.split.generation / after.split.generation, 3);
  }
  for (const line of lines) console.log(JSON.stringify(line));
}

async function benchGenerate(layers) {
  const script = `${HERE}generate.mjs`;
  const ours = [];
  if (existsSync(script)) {
    log("generate: running bench/generate.mjs in a child process");
    const { list } = await backendList();
    const engines = list.filter((b) => b === "native" || b === "wasm").join(",") || "wasm";
    const args = [
      "--engines",
      engines,
      "--gen-engines",
      engines,
      "--threads",
      opts.threads,
      "--smol-layers",
      String(layers),
      "--decodes",
      "native,tfjs",
      "--rss-calls",
      opts.quick ? "10" : "100",
    ];
    if (opts.quick) args.push("--models", "smol", "--reps", "1");
    const r = await runJsonLines(process.execPath, [script, ...args], "generate");
    if (r.lines.length === 0) ours.push({ workload: "generate", error: `generate.mjs exited ${r.code ?? r.signal}` });
    for (const l of r.lines) ours.push({ workload: "generate", ...l });
  } else {
    ours.push({ workload: "generate", engine: "prefkit", skipped: "bench/generate.mjs does not exist yet" });
  }
  const peer = await runTorch(["--workload", "generate", "--layers", String(layers)], "generate");
  const torchLines = peer.lines ?? [];
  for (const l of ours) {
    // generate.mjs: {kind:"generate", model:"smollm-135m…", layers, batch, promptLen, newTokens, tokensPerSec}.
    const match = torchLines.find(
      (t) =>
        l.kind === "generate" &&
        String(l.model).startsWith("smollm") &&
        t.batch === l.batch &&
        t.layers === l.layers &&
        t.newTokens === l.newTokens &&
        t.promptLen === l.promptLen,
    );
    if (match && typeof l.tokensPerSec === "number") {
      l.peer = "torch";
      l.torch = { tokensPerSecond: match.tokensPerSecond, seconds: match.seconds, peakRssMB: match.peakRssMB };
      l.ratio = round(l.tokensPerSec / match.tokensPerSecond, 3);
    }
    console.log(JSON.stringify(l));
  }
  if (peer.lines) for (const t of torchLines) console.log(JSON.stringify({ ...t, peer: "torch" }));
  else console.log(JSON.stringify({ workload: "generate", peer: "skipped", reason: peer.skipped ?? peer.error }));
}

async function passThrough(workload, script, args) {
  log(`${workload}: running bench/${script}`);
  const r = await runJsonLines(process.execPath, [`${HERE}${script}`, ...args], workload);
  if (r.lines.length === 0) console.log(JSON.stringify({ workload, error: `${script} exited ${r.code ?? r.signal}` }));
  for (const l of r.lines) console.log(JSON.stringify({ workload, ...l }));
}

async function main() {
  if (opts.help) {
    console.error(readFileSync(fileURLToPath(import.meta.url), "utf8").split("\nimport")[0]);
    return;
  }
  const layerList = (opts.layers ?? (opts.quick ? "2" : "8,30")).split(",").map(Number);
  if (layerList.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--layers: bad list "${opts.layers}"`);
  const steps = Number(opts.steps ?? (opts.quick ? 2 : 3));
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`--steps: expected a positive integer, got ${opts.steps}`);
  const known = ["dpo", "generate", "grpo", "ppo", "gemm", "matmul", "forward", "methods", "scale"];
  const workloads = opts.workload
    .split(",")
    .flatMap((w) => (w === "all" ? ["dpo", "generate", "grpo", "ppo", "gemm"] : [w]));
  for (const w of workloads) if (!known.includes(w)) throw new Error(`--workload: unknown "${w}" (${known}, all)`);
  log(`load before: ${readFileSync("/proc/loadavg", "utf8").trim()}`);
  for (const w of workloads) {
    if (w === "dpo") for (const layers of layerList) await benchDpo(layers, steps);
    if (w === "generate") await benchGenerate(opts.quick ? 2 : Math.max(...layerList));
    if (w === "grpo") await benchGrpo(Math.max(...layerList), Number(opts.steps ?? 1));
    if (w === "ppo") await benchPpo(Math.max(...layerList), Number(opts.steps ?? 1));
    if (w === "gemm")
      await passThrough("gemm", "gemm.mjs", ["--threads", opts.threads, ...(opts.quick ? ["--quick"] : [])]);
    if (w === "matmul") await passThrough("matmul", "matmul.mjs", ["--skip-cpu"]);
    if (w === "methods") await passThrough("methods", "methods.mjs", ["--layers", String(layerList.at(-1))]);
    if (w === "scale") await benchScale();
    if (w === "forward")
      await passThrough("forward", "forward.mjs", ["--smol", "--batch", "2", "--seq", "128", "--skip-cpu"]);
  }
  log(`load after: ${readFileSync("/proc/loadavg", "utf8").trim()}`);
}

if (opts.child !== undefined) await runChild();
else await main();
