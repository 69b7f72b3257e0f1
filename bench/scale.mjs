// The `scale` workload of bench/run.mjs (issue 15): the model sizes of the seeds, on random weights of their
// real configs, one pair × 512 tokens through the real trainers. This file holds the shapes and the child
// side (one prefkit measurement per process); run.mjs spawns the children and the PyTorch peer
// (bench/scale_torch.py) one after the other and adds the ratios.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** What Qwen2.5-0.5B's and Qwen2.5-1.5B's config.json share. */
const QWEN2_5 = {
  model_type: "qwen2",
  architectures: ["Qwen2ForCausalLM"],
  vocab_size: 151936,
  num_key_value_heads: 2,
  rope_theta: 1000000,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: true,
  initializer_range: 0.02,
  max_position_embeddings: 32768,
  use_sliding_window: false,
};

/** The three workloads: model config (HF config.json fields), method and what trains. */
export const SCALE_MODELS = {
  "qwen2.5-0.5b": {
    method: "dpo",
    training: "full",
    config: { ...QWEN2_5, hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14 },
  },
  "qwen2.5-1.5b": {
    method: "dpo",
    training: "lora",
    config: { ...QWEN2_5, hidden_size: 1536, intermediate_size: 8960, num_hidden_layers: 28, num_attention_heads: 12 },
  },
  "mistral-7b": {
    method: "reward",
    training: "lora",
    config: {
      model_type: "mistral",
      architectures: ["MistralForCausalLM"],
      vocab_size: 32000,
      hidden_size: 4096,
      intermediate_size: 14336,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      rope_theta: 10000,
      rms_norm_eps: 1e-5,
      sliding_window: 4096,
      tie_word_embeddings: false,
      initializer_range: 0.02,
      max_position_embeddings: 32768,
    },
  },
};

/**
 * The workload `key` with its config's layer count overridden by `layers` (smoke runs; undefined keeps the real
 * count), or throws naming the known keys.
 */
export function scaleSpec(key, { layers } = {}) {
  const spec = SCALE_MODELS[key];
  if (spec === undefined) throw new Error(`unknown scale shape "${key}" (${Object.keys(SCALE_MODELS).join(", ")})`);
  if (layers === undefined) return spec;
  if (!Number.isInteger(layers) || layers < 1) throw new Error(`--layers: expected a positive integer, got ${layers}`);
  return { ...spec, config: { ...spec.config, num_hidden_layers: layers } };
}

/** LoRA and optimizer settings of every row (the PyTorch peer uses the same). */
export const SCALE_HYPER = { lr: 1e-6, beta: 0.1, loraR: 16, loraAlpha: 32 };

/** What trains, as the lines say it: `"full"` or `"lora r16 all-linear"`. */
export function trainingLabel(spec) {
  return spec.training === "lora" ? `lora r${SCALE_HYPER.loraR} all-linear` : "full";
}

/** One pair of `seq` tokens per row: the first quarter is the prompt (128 of 512), the rest the completion. */
export function scaleShape(seq = 512) {
  if (!Number.isInteger(seq) || seq < 8) throw new Error(`--seq: expected an integer >= 8, got ${seq}`);
  const prompt = Math.floor(seq / 4);
  return { seqLen: seq, prompt, completion: seq - prompt, rows: 2 };
}

/** Parameters of a config (embedding, layers, untied head; a classifier drops the head and adds a 1-row score). */
export function parameterCount(c, classifier = false) {
  const h = c.hidden_size;
  const kv = (h / c.num_attention_heads) * c.num_key_value_heads;
  const bias = c.model_type === "qwen2" ? h + 2 * kv : 0;
  const layer = 2 * h * h + 2 * h * kv + bias + 3 * h * c.intermediate_size + 2 * h;
  const head = classifier ? h : c.tie_word_embeddings ? 0 : c.vocab_size * h;
  return c.vocab_size * h + c.num_hidden_layers * layer + h + head;
}

/** What this build offers the bf16 rows: AmpPlugin's `compute` option and TrainingArgs' `gradientCheckpointing`. */
export async function scaleCapabilities() {
  const { DEFAULT_TRAINING_ARGS } = await import("@prefkit/core");
  const { AmpPlugin } = await import("@prefkit/models");
  let bf16Compute = false;
  try {
    bf16Compute = new AmpPlugin({ dtype: "bfloat16", compute: "bfloat16" }).compute === "bfloat16";
  } catch {}
  return { bf16Compute, gradientCheckpointing: Object.hasOwn(DEFAULT_TRAINING_ARGS, "gradientCheckpointing") };
}

/**
 * Which prefkit rows of `spec` cannot run, and why: float32 weights over `budgetGiB`; bf16 compute or gradient
 * checkpointing (which the reward-model row needs) missing from this build. `{ fp32?, bf16? }` of reasons.
 */
export function scaleSkips(spec, { bf16Compute, gradientCheckpointing }, budgetGiB) {
  const skip = {};
  const gib = (4 * parameterCount(spec.config, spec.method === "reward")) / 2 ** 30;
  if (gib > budgetGiB) skip.fp32 = `float32 weights alone are ${gib.toFixed(1)} GiB (budget ${budgetGiB} GiB)`;
  if (!bf16Compute) {
    skip.bf16 =
      'this build has no bf16 compute (AmpPlugin has no compute: "bfloat16" option; it comes with the bf16 branch)';
  }
  if (spec.method === "reward" && !gradientCheckpointing) {
    const why = "this build has no gradientCheckpointing in TrainingArgs (it comes with the bf16 branch)";
    skip.fp32 ??= why;
    skip.bf16 ??= why;
  }
  return skip;
}

/**
 * Add to each prefkit line with a measurement its ratios to the peer's lines of the same run: tokens/s over the
 * peer's (`speedupVsTorchFp32`, `speedupVsTorchAutocast`: above 1 = prefkit faster) and peak RSS over the peer's
 * (`rssVsTorchFp32`, `rssVsTorchAutocast`). A peer that completed its warm-up step and then ran out of memory
 * (an `error` line with `warmupSeconds`) gives the warm-up steps' ratio (`warmupSpeedupVsTorchFp32`: the peer's
 * warm-up seconds over ours) and peak RSS over the peer's at the failure (`rssVsTorchFp32AtFailure`: the peer needed
 * more than that, so the ratio is an upper bound). Other peer lines without a measurement add nothing.
 */
export function attachRatios(ours, peers) {
  const r3 = (x) => Number(x.toFixed(3));
  const names = { fp32: "TorchFp32", autocast: "TorchAutocast" };
  return ours.map((line) => {
    if (line.tokensPerSecond === undefined) return line;
    const out = { ...line };
    for (const [mode, peer] of Object.entries(peers)) {
      if (names[mode] === undefined) continue;
      if (peer?.tokensPerSecond === undefined && peer?.error !== undefined && peer.warmupSeconds !== undefined) {
        if (line.warmupSeconds !== undefined)
          out[`warmupSpeedupVs${names[mode]}`] = r3(peer.warmupSeconds / line.warmupSeconds);
        if (line.peakRssMB !== undefined && peer.peakRssMB !== undefined)
          out[`rssVs${names[mode]}AtFailure`] = r3(line.peakRssMB / peer.peakRssMB);
        continue;
      }
      if (peer?.tokensPerSecond === undefined) continue;
      out[`speedupVs${names[mode]}`] = r3(line.tokensPerSecond / peer.tokensPerSecond);
      if (line.peakRssMB !== undefined && peer.peakRssMB !== undefined)
        out[`rssVs${names[mode]}`] = r3(line.peakRssMB / peer.peakRssMB);
    }
    return out;
  });
}

/** Version of random-checkpoint.mjs's output: part of the cache key, bump it when the generator changes. */
const CHECKPOINT_VERSION = 1;

/**
 * The cache directory of `config`'s random checkpoint under `root`: named after the shape, its layer count and a
 * hash of the config, the seed and the generator version, so a changed config never reuses stale weights.
 */
export function checkpointCacheDir(root, key, config, seed = 1) {
  const fields = Object.entries(config).sort(([a], [b]) => (a < b ? -1 : 1)); // key order does not matter
  const text = JSON.stringify({ config: fields, seed, version: CHECKPOINT_VERSION });
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return join(root, `${key}-${config.num_hidden_layers}L-${(h >>> 0).toString(16).padStart(8, "0")}`);
}

/**
 * The random bf16 checkpoint of `config` in its cache directory under `root`, written once (into a temporary
 * sibling renamed into place when complete, so an interrupted run leaves no half checkpoint to be reused).
 * @returns {Promise<{ dir: string, cached: boolean, bytes: number, seconds: number }>}
 */
export async function cachedRandomCheckpoint(root, key, config, { seed = 1, log = () => {} } = {}) {
  const { mkdir, rename, rm } = await import("node:fs/promises");
  const { existsSync } = await import("node:fs");
  const { writeRandomCheckpoint } = await import("./random-checkpoint.mjs");
  const dir = checkpointCacheDir(root, key, config, seed);
  if (existsSync(join(dir, "config.json"))) return { dir, cached: true, bytes: directoryBytes(dir), seconds: 0 };
  await mkdir(root, { recursive: true });
  const tmp = `${dir}.partial-${process.pid}`;
  log(
    `scale ${key}: writing a random bf16 checkpoint (${(parameterCount(config) / 1e9).toFixed(2)}B parameters) to ${dir}`,
  );
  const t0 = performance.now();
  try {
    const { bytes } = await writeRandomCheckpoint(tmp, config, { seed });
    await rename(tmp, dir);
    return { dir, cached: false, bytes, seconds: (performance.now() - t0) / 1000 };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }); // only the directory this call created
    throw e;
  }
}

function status() {
  const s = readFileSync("/proc/self/status", "utf8");
  const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)[1]);
  return { hwmMB: kb("VmHWM") / 1024, rssMB: kb("VmRSS") / 1024 };
}

function directoryBytes(dir) {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".safetensors"))
    .reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
}

/** Random pairs of token ids in [3, vocab): `count` pairs of `shape` (scaleShape). */
function randomPairs(count, vocab, shape, seed) {
  let x = seed | 1;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return 3 + ((x >>> 0) % (vocab - 3));
  };
  const ids = (n) => Array.from({ length: n }, next);
  return Array.from({ length: count }, () => ({
    promptIds: ids(shape.prompt),
    chosenIds: ids(shape.completion),
    rejectedIds: ids(shape.completion),
  }));
}

/**
 * One measurement in this process: load `checkpoint` in float32 (`mode` fp32) or bfloat16 (`mode` bf16, with
 * `AmpPlugin({ compute: "bfloat16" })`), then 1 warm-up + `steps` optimizer steps of the shape's method through
 * the real trainer (the reward-model row with `gradientCheckpointing`). Prints one JSON line.
 */
export async function childScale({ shape: key, mode, checkpoint, steps, seq, layers, engine, log }) {
  const round = (x, d = 4) => Number(x.toFixed(d));
  const spec = scaleSpec(key, { layers });
  const shape = scaleShape(seq);
  const { engineInfo, tf } = await import("@prefkit/core");
  const models = await import("@prefkit/models");
  const { DPOTrainer, RewardTrainer } = await import("@prefkit/losses");
  const caps = await scaleCapabilities();
  const skip = scaleSkips(spec, caps, Number.POSITIVE_INFINITY)[mode];
  if (skip !== undefined) throw new Error(`cannot run: ${skip}`);
  const dtype = mode === "bf16" ? "bfloat16" : "float32";
  const checkpointing = spec.method === "reward";
  const base = {
    workload: "scale",
    shape: key,
    method: spec.method,
    training: trainingLabel(spec),
    engine: "prefkit",
    mode,
    storage: dtype,
    compute: mode === "bf16" ? "bfloat16" : "float32",
    gradientCheckpointing: checkpointing,
    layers: spec.config.num_hidden_layers,
    rows: shape.rows,
    seqLen: shape.seqLen,
    steps,
    ...engine,
  };

  const before = status();
  const t0 = performance.now();
  const fileBytes = directoryBytes(checkpoint);
  const model =
    spec.method === "reward"
      ? await models.AutoModelForSequenceClassification.fromPretrained(checkpoint, { dtype, numLabels: 1, seed: 0 })
      : await models.AutoModelForCausalLM.fromPretrained(checkpoint, { dtype });
  const loaded = status();
  const load = {
    seconds: round((performance.now() - t0) / 1000, 2),
    fileMB: round(fileBytes / 2 ** 20, 1),
    peakRssMB: round(loaded.hwmMB, 1),
    rssBeforeMB: round(before.rssMB, 1),
    peakOverFile: round((loaded.hwmMB * 2 ** 20) / fileBytes, 3),
  };
  log(
    `scale ${key} ${mode}: loaded in ${load.seconds}s, peak rss ${load.peakRssMB} MB for ${load.fileMB} MB of weights`,
  );

  // LoRA keeps the base frozen: its bf16 packs become the weights' only storage (Decoder.packedStorage).
  const packedStorage = mode === "bf16" && spec.training === "lora" && model.decoder !== undefined;
  if (packedStorage) model.decoder.packedStorage = true;
  const plugins = [];
  if (spec.training === "lora") {
    plugins.push(
      new models.LoraPlugin(
        { r: SCALE_HYPER.loraR, loraAlpha: SCALE_HYPER.loraAlpha, loraDropout: 0, targetModules: "all-linear" },
        { seed: 0 },
      ),
    );
  }
  if (mode === "bf16") plugins.push(new models.AmpPlugin({ dtype: "bfloat16", compute: "bfloat16" }));
  const times = [];
  const losses = [];
  let started = 0;
  let tensorsAfterWarmup;
  const timer = {
    onStepBegin: () => {
      started = performance.now();
    },
    onStepEnd: () => {
      const seconds = (performance.now() - started) / 1000;
      times.push(seconds);
      if (times.length === 1) tensorsAfterWarmup = tf.memory().numTensors;
      log(
        `scale ${key} ${mode} step ${times.length - 1}${times.length === 1 ? " (warm-up)" : ""}: ` +
          `${seconds.toFixed(2)}s, peak rss ${status().hwmMB.toFixed(0)} MB`,
      );
    },
    // The trainer logs a step after its onStepEnd.
    onLog: (_args, _state, _control, { logs }) => {
      if ("loss" in logs) losses.push(round(logs.loss, 6));
    },
  };
  const args = {
    outputDir: `/tmp/prefkit-bench-scale-${process.pid}`,
    maxSteps: 1 + steps,
    perDeviceTrainBatchSize: 1,
    learningRate: SCALE_HYPER.lr,
    lrSchedulerType: "constant",
    loggingSteps: 1,
    saveStrategy: "no",
    ...(checkpointing ? { gradientCheckpointing: true } : {}),
  };
  const trainDataset = randomPairs(1 + steps, spec.config.vocab_size, shape, 17);
  const callbacks = [timer];
  const trainer =
    spec.method === "reward"
      ? new RewardTrainer({ model, args, trainDataset, plugins, callbacks })
      : new DPOTrainer({ model, args: { ...args, beta: SCALE_HYPER.beta }, trainDataset, plugins, callbacks });
  await trainer.train();
  const measured = times.slice(1);
  const sorted = [...measured].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const stepSeconds = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  console.log(
    JSON.stringify({
      ...base,
      packedStorage,
      stepSeconds: round(stepSeconds),
      stepSecondsAll: measured.map((t) => round(t)),
      warmupSeconds: round(times[0]),
      tokensPerSecond: round((shape.rows * shape.seqLen) / stepSeconds, 2),
      peakRssMB: round(status().hwmMB, 1),
      load,
      losses,
      tensorsAfterWarmup,
      tensorsAtEnd: tf.memory().numTensors,
      tfjs: engineInfo().tfjsVersion,
      plugins: engineInfo().kernelPlugins.map((p) => p.name),
    }),
  );
}
