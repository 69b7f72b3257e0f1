/**
 * Issue 15 on the fast path: LoRA DPO on a model LOADED with `dtype: "bfloat16"` (Qwen2.5-1.5B's case: a
 * tied 16-bit embedding as LM head, so `lmHeadWeight()` is undefined) takes the native decoder's fused
 * log-prob pass for the policy and for the adapters-off reference, through `tryFusedSequenceLogProbs`
 * and the PEFT wrapper's `directTokenLogProbs`: no `[B, T, V]` logits, and no model `forward`.
 *
 * It trains exactly as the tfjs fall-back of the same 16-bit model (native decoder off, logits path):
 * both compute in float32 from the same bf16 values, so they differ only in summation order (the bound of
 * load16-native.test.ts: 1e-5 relative) over the losses and TRL metrics of 3 steps; the adapters by relative
 * L2 distance (1e-4: AdamW magnifies the differences of near-zero gradient entries; 1.3e-5 measured).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  hasFusedHead,
  initEngine,
  nativeBlasPlugin,
  shutdownEngine,
  tf,
  tryFusedSequenceLogProbs,
} from "@prefkit/core";
import { DPOTrainer } from "@prefkit/losses";
import { AutoModelForCausalLM, getPeftModel, HalfPrecisionLinear, type PeftModelForCausalLM } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { FAMILIES, randomIds, randomModel } from "../generation/helpers.js";
import { skipWithoutNativeDecoder } from "./native-helpers.js";

const SKIP = skipWithoutNativeDecoder("LoRA DPO on a bf16-loaded model");

let root: string;
let dir: string;
const CONFIG = FAMILIES["qwen2_bias"]!;
const VOCAB = Number(CONFIG["vocab_size"]);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "prefkit-load16-dpo-"));
  dir = join(root, "bf16");
});
afterAll(async () => {
  shutdownEngine();
  await rm(root, { recursive: true, force: true });
});

function pairs(n: number) {
  const prompts = randomIds(n, 4, VOCAB, 3);
  const chosen = randomIds(n, 5, VOCAB, 4);
  const rejected = randomIds(n, 3, VOCAB, 5);
  return prompts.map((p, i) => ({ promptIds: p, chosenIds: chosen[i]!, rejectedIds: rejected[i]! }));
}

describe.skipIf(SKIP)("LoRA DPO on a bf16-loaded model, fast path", () => {
  beforeAll(async () => {
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
    const source = randomModel(CONFIG, 9);
    await source.savePretrained(dir, { dtype: "BF16" });
    source.dispose();
  });

  it("takes the native fused log-prob pass (no logits) and trains as the tfjs fall-back (1e-5)", async () => {
    const run = async (native: boolean) => {
      const base = await AutoModelForCausalLM.fromPretrained(dir, { dtype: "bfloat16" });
      base.decoder.useNativeDecoder = native;
      expect(base.decoder.lmHead).toBeInstanceOf(HalfPrecisionLinear);
      const peft = getPeftModel(
        base,
        { r: 4, loraAlpha: 8, targetModules: "all-linear" },
        {
          seed: 2,
        },
      ) as unknown as PeftModelForCausalLM;
      // The 16-bit tied head is no plain float32 weight: the old test (hasFusedHead) said "logits path".
      expect(peft.lmHeadWeight()).toBeUndefined();
      expect(hasFusedHead(peft)).toBe(false);
      const probe = tf.tidy(() => tryFusedSequenceLogProbs(peft, [[1, 2, 3, 4]], [[0, 0, 1, 1]])?.sums.dataSync());
      expect(probe === undefined, `native=${native}`).toBe(!native);
      const forward = vi.spyOn(base, "forward");
      const before = tf.memory().numTensors;
      const trainer = new DPOTrainer({
        model: peft,
        args: {
          outputDir: join(root, `run-${native}`),
          saveStrategy: "no",
          loggingSteps: 1,
          learningRate: 5e-2,
          lrSchedulerType: "constant",
          maxSteps: 3,
          perDeviceTrainBatchSize: 2,
          beta: 0.1,
        },
        trainDataset: pairs(6),
      });
      await trainer.train();
      // Policy and reference (adapters off) both went through the fused pass, or both through logits.
      expect(forward.mock.calls.length === 0, `native=${native}: forward calls`).toBe(native);
      const logs = trainer.state.logHistory.filter((e) => "rewards/margins" in e);
      const adapters = new Map(
        [...peft.namedParameters()]
          .filter(([n]) => n.includes("lora_"))
          .map(([n, v]) => [n, v.dataSync().slice() as Float32Array]),
      );
      trainer.dispose();
      if (native) expect(tf.memory().numTensors).toBe(before);
      peft.dispose();
      return { logs, adapters };
    };
    const fused = await run(true);
    const fallback = await run(false);
    expect(fused.logs).toHaveLength(3);
    expect(fallback.logs).toHaveLength(3);
    for (let step = 0; step < 3; step++) {
      for (const k of ["loss", "rewards/margins", "logps/chosen", "logps/rejected", "entropy", "mean_token_accuracy"]) {
        const a = fused.logs[step]![k]!;
        const b = fallback.logs[step]![k]!;
        expect(Number.isFinite(b), `${k}`).toBe(true);
        expect(Math.abs(a - b), `step ${step} ${k}: ${a} vs ${b}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(b)));
      }
    }
    // The adapters moved (B starts at zero), so the comparison covers real updates.
    expect(Math.abs(fused.logs[2]!["loss"]! - Math.LN2)).toBeGreaterThan(1e-3);
    // AdamW divides by √v: an entry whose gradient is near 0 turns the 1e-5 summation-order differences into
    // a visible share of its step, so the adapters are compared by relative L2 distance, with 10× slack.
    let diff = 0;
    let norm = 0;
    for (const [n, b] of fallback.adapters) {
      const a = fused.adapters.get(n)!;
      for (let i = 0; i < b.length; i++) {
        diff += (a[i]! - b[i]!) ** 2;
        norm += b[i]! ** 2;
      }
    }
    expect(norm).toBeGreaterThan(0);
    expect(Math.sqrt(diff / norm)).toBeLessThan(1e-4);
  });
});
