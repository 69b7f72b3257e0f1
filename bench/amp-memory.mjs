// Resident memory of frozen weights with and without 16-bit storage (AMP plugin), and of a DPO/PPO
// reference made as a frozen copy vs LoRA's "same model with adapters off".
//
//   npm run build && node --expose-gc bench/amp-memory.mjs [--layers 30] [--lora-ref] [--stories]
//
// Each configuration runs in its own child process (peak RSS is per process). In the child: build the
// model (cpu backend: weights in JS memory), apply the configuration, GC, reset the kernel's peak-RSS
// counter (/proc/self/clear_refs = 5), run two no-grad forwards at 1 × 32 tokens, then read VmHWM (the
// peak RSS of that phase) and VmRSS. "baseline" is the same process without a model. Model: SmolLM-135M
// shape (30 layers, hidden 576, 9/3 heads, intermediate 1536, vocab 49152, tied), random init.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { smolConfig } from "./smol.mjs";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const LAYERS = Number(option("--layers", 30));
const SMOL = smolConfig(LAYERS);

function status() {
  const s = readFileSync("/proc/self/status", "utf8");
  const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)[1]);
  return { hwmMB: kb("VmHWM") / 1024, rssMB: kb("VmRSS") / 1024 };
}

/** Give every trainable variable a new buffer, as an optimizer step does (`assign` of a fresh tensor). */
function updateTrainable(tf, model) {
  for (const v of model.trainableVariables()) tf.tidy(() => v.assign(tf.mul(v, 1)));
}

async function child(mode) {
  const { tf } = await import("@prefkit/core");
  const models = await import("@prefkit/models");
  await tf.setBackend("cpu");
  const source = option("--stories", undefined) !== undefined ? "stories" : "smol";
  const stories = fileURLToPath(new URL("../../shared/assets/stories260K", import.meta.url));
  const load = async () =>
    source === "stories"
      ? models.AutoModelForCausalLM.fromPretrained(stories)
      : models.AutoModelForCausalLM.fromConfig(SMOL, { seed: 0 });
  const ids = [Array.from({ length: 32 }, (_, i) => (i * 37 + 1) % (source === "stories" ? 512 : 49152))];
  let run = () => {};
  let extra = {};
  if (mode !== "baseline") {
    const model = await load();
    const weightBytes = [...model.namedParameters().values()].reduce((s, v) => s + 4 * v.size, 0);
    const embedBytes = 4 * model.namedParameters().get("model.embed_tokens.weight").size;
    extra = { weightMB: weightBytes / 2 ** 20, embedMB: embedBytes / 2 ** 20 };
    if (mode === "fp32" || mode === "bf16" || mode === "f16") {
      for (const v of model.namedParameters().values()) v.trainable = false; // a reference model: all frozen
      if (mode !== "fp32") {
        const r = models.enableHalfPrecisionStorage(model, { dtype: mode === "bf16" ? "bfloat16" : "float16" });
        extra.convertedMB = r.bytesBefore / 2 ** 20;
      }
      run = () => tf.tidy(() => model.forward({ inputIds: ids }).logits.dataSync());
    } else if (mode === "copy-ref") {
      const ref = model.frozenCopy(); // what the DPO trainer makes without LoRA
      // tfjs clones share buffers until written: one optimizer-like update gives the policy its own
      // weights, as the first training step does, so the copy's cost shows.
      updateTrainable(tf, model);
      run = () => {
        tf.tidy(() => model.forward({ inputIds: ids }).logits.dataSync());
        tf.tidy(() => ref.forward({ inputIds: ids }).logits.dataSync());
      };
    } else if (mode === "lora-ref" || mode === "lora-ref-bf16") {
      const peft = models.getPeftModel(model, { r: 16, loraAlpha: 32, targetModules: "all-linear" });
      if (mode === "lora-ref-bf16") models.enableHalfPrecisionStorage(peft);
      extra.adapterMB = (peft.trainableParameterCounts().trainable * 4) / 2 ** 20;
      updateTrainable(tf, peft); // only the adapters get new buffers
      run = () => {
        tf.tidy(() => peft.forward({ inputIds: ids }).logits.dataSync());
        peft.withAdaptersDisabled(() => tf.tidy(() => peft.forward({ inputIds: ids }).logits.dataSync()));
      };
    }
  }
  globalThis.gc?.();
  try {
    writeFileSync("/proc/self/clear_refs", "5");
  } catch {}
  run();
  run();
  const s = status();
  process.stdout.write(JSON.stringify({ mode, ...s, ...extra }) + "\n");
}

const mode = option("--child", undefined);
if (mode !== undefined) {
  await child(mode);
} else {
  const modes = args.includes("--lora-ref")
    ? ["baseline", "copy-ref", "lora-ref", "lora-ref-bf16"]
    : ["baseline", "fp32", "bf16", "f16"];
  const rows = {};
  for (const m of modes) {
    const out = execFileSync(process.execPath, ["--expose-gc", fileURLToPath(import.meta.url), ...args, "--child", m], {
      encoding: "utf8",
      maxBuffer: 1 << 24,
    });
    const row = JSON.parse(out.trim().split("\n").at(-1));
    rows[m] = row;
    console.log(JSON.stringify(row));
  }
  const base = rows.baseline.hwmMB;
  if (rows.fp32) {
    for (const m of ["bf16", "f16"]) {
      const total = (rows[m].hwmMB - base) / (rows.fp32.hwmMB - base);
      // Embeddings (and norms) stay float32 in both runs; the ratio "for those weights" removes them.
      const keep = rows.fp32.embedMB;
      const converted = (rows[m].hwmMB - base - keep) / (rows.fp32.hwmMB - base - keep);
      console.log(
        JSON.stringify({
          ratio: m,
          peakAboveBaselineRatio: +total.toFixed(3),
          convertedWeightsRatio: +converted.toFixed(3),
        }),
      );
    }
  }
  if (rows["copy-ref"]) {
    console.log(
      JSON.stringify({
        referenceExtraMB_copy: +(rows["copy-ref"].hwmMB - rows["lora-ref"].hwmMB).toFixed(1),
        loraRefVsCopyRatio: +((rows["lora-ref"].hwmMB - base) / (rows["copy-ref"].hwmMB - base)).toFixed(3),
      }),
    );
  }
}
