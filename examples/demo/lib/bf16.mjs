/**
 * The demo's bf16 phase (issue 15): the DPO-trained model saved as a bf16 checkpoint, loaded twice, as
 * float32 and as bf16 (`fromPretrained(dir, { dtype: "bfloat16" })`), and a few LoRA DPO steps on each:
 * float32, and bf16 AMP (`AmpPlugin({ dtype: "bfloat16", compute: "bfloat16" })`: the fused decoder's
 * projections and LoRA products in bf16 with fp32 sums). Same seed, data and starting adapters, so the
 * printed difference is what bf16 compute does to the losses. bf16 compute runs on the fast path only
 * (cpu + the native addons); elsewhere the phase says why and is skipped.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AmpPlugin, AutoModelForCausalLM, LoraPlugin, nativeDecoderStatus } from "@prefkit/models";
import { DPOTrainer } from "@prefkit/losses";

/** Why the bf16 phase cannot run on the active engine, or undefined when it can. */
export function bf16Unavailable() {
  const status = nativeDecoderStatus();
  if (status.bf16 !== undefined) return undefined;
  return status.available
    ? "the fused decoder is not active on this engine (bf16 compute needs cpu + the native addons)"
    : `the fused decoder is not available (${status.reason})`;
}

/**
 * Run the bf16 phase. Returns the per-step losses of both runs, the largest difference, the times and the
 * temporary checkpoint's directory (removed before returning), or `{ skipped: reason }`.
 * @param {{ model: import("@prefkit/models").PreTrainedModelForCausalLM, tok: object, pairs: object[],
 *   steps?: number, batch?: number, seed?: number, log?: (line: string) => void }} options
 */
export async function runBf16Phase(options) {
  const { model, tok, pairs, steps = 5, batch = 32, seed = 42, log = console.log } = options;
  const reason = bf16Unavailable();
  if (reason !== undefined) {
    log(`\n5. bf16: skipped: ${reason}.`);
    return { skipped: reason };
  }
  log(
    `\n5. bf16 AMP: the DPO model saved as bf16, loaded as float32 and as bf16, then ${steps} LoRA DPO steps of ${batch} pairs on each (same seed and data).`,
  );
  const dir = await mkdtemp(join(tmpdir(), "prefkit-demo-bf16-"));
  try {
    await model.savePretrained(dir, { dtype: "BF16" });
    const runs = {};
    for (const compute of ["float32", "bfloat16"]) {
      const started = performance.now();
      const loaded = await AutoModelForCausalLM.fromPretrained(
        dir,
        compute === "bfloat16" ? { dtype: "bfloat16" } : {},
      );
      const lora = new LoraPlugin({ r: 8, loraAlpha: 16, targetModules: "all-linear" }, { seed });
      const plugins = compute === "bfloat16" ? [lora, new AmpPlugin({ dtype: "bfloat16", compute })] : [lora];
      const trainer = new DPOTrainer({
        model: loaded,
        args: {
          outputDir: join(dir, `run-${compute}`),
          saveStrategy: "no",
          loggingSteps: 1,
          learningRate: 5e-3,
          lrSchedulerType: "constant",
          maxSteps: steps,
          perDeviceTrainBatchSize: batch,
          maxLength: 32,
          padTokenId: tok.padTokenId,
          beta: 0.1,
          seed,
        },
        trainDataset: pairs,
        processingClass: tok,
        plugins,
      });
      await trainer.train();
      const losses = trainer.state.logHistory.filter((e) => "loss" in e).map((e) => e.loss);
      trainer.dispose?.();
      lora.model.dispose();
      runs[compute] = { losses, seconds: (performance.now() - started) / 1000 };
    }
    const fp32 = runs.float32.losses;
    const bf16 = runs.bfloat16.losses;
    const diffs = fp32.map((l, i) => Math.abs(bf16[i] - l));
    for (let i = 0; i < fp32.length; i++) {
      log(
        `  [bf16] step ${String(i + 1).padStart(3)}/${steps}  loss fp32 ${fp32[i].toFixed(6)}  bf16 AMP ${bf16[i].toFixed(6)}  |Δ| ${diffs[i].toExponential(1)}`,
      );
    }
    const maxDiff = Math.max(...diffs);
    log(
      `  bf16 AMP vs float32: max |Δ loss| ${maxDiff.toExponential(1)} over ${steps} steps (docs/guides/lora-and-amp.md derives the bound); ` +
        `time fp32 ${runs.float32.seconds.toFixed(1)} s, bf16 AMP ${runs.bfloat16.seconds.toFixed(1)} s (load + ${steps} steps; GEMM ${nativeDecoderStatus().bf16}).`,
    );
    return {
      lossesFp32: fp32,
      lossesBf16: bf16,
      maxDiff,
      secondsFp32: runs.float32.seconds,
      secondsBf16: runs.bfloat16.seconds,
      checkpointDir: dir,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
