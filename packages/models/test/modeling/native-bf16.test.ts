/**
 * The fused native decoder's bf16 features on a model loaded with `dtype: "bfloat16"`: gradient
 * checkpointing (the layer recomputed in the backward pass from its kept input: the same products, so the
 * same values and gradients, bit for bit), and `computeDtype: "bfloat16"` (PyTorch's CPU autocast:
 * activations rounded to bf16 as operands of the projections and LM head, products summed in fp32).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initEngine, nativeBlasPlugin, shutdownEngine, tf } from "@prefkit/core";
import type { PeftModelForCausalLM } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FAMILIES, randomIds, randomModel } from "../generation/helpers.js";
import { completionValueAndGrads, loraOverBf16 } from "./bf16-helpers.js";
import { skipWithoutNativeDecoder } from "./native-helpers.js";

const SKIP = skipWithoutNativeDecoder("bf16 features of the native decoder");

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "prefkit-native-bf16-"));
});
afterAll(async () => {
  shutdownEngine();
  await rm(dir, { recursive: true, force: true });
});

const VOCAB = Number(FAMILIES["llama_gqa"]!["vocab_size"]);
const B = 2;
const T = 8;

const loraModel = () => loraOverBf16(dir, 1, 9);
const run = (peft: PeftModelForCausalLM, ids: number[][]) => completionValueAndGrads(peft, ids, [1, -2]);

describe.skipIf(SKIP)("bf16 features of the native decoder on a bf16-loaded model", () => {
  beforeAll(async () => {
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
    const source = randomModel(FAMILIES["llama_gqa"]!, 3);
    await source.savePretrained(dir, { dtype: "BF16" });
    source.dispose();
  });

  it("gradient checkpointing gives the same values and gradients bit for bit, with flat tensor counts", async () => {
    const peft = await loraModel();
    const ids = randomIds(B, T, VOCAB, 4);
    const plain = run(peft, ids);
    expect(peft.isGradientCheckpointing).toBe(false);
    peft.gradientCheckpointingEnable();
    expect(peft.isGradientCheckpointing).toBe(true);
    const before = tf.memory().numTensors;
    const checkpointed = run(peft, ids);
    expect(tf.memory().numTensors).toBe(before);
    expect(checkpointed.value).toBe(plain.value);
    for (let i = 0; i < plain.grads.length; i++) expect(checkpointed.grads[i]).toEqual(plain.grads[i]);
    peft.gradientCheckpointingDisable();
    expect(peft.isGradientCheckpointing).toBe(false);
    peft.dispose();
  });

  it("computeDtype bfloat16 runs bf16 products (differs from float32) within the rounding envelope; frozenCopy keeps it", async () => {
    const peft = await loraModel();
    const ids = randomIds(B, T, VOCAB, 5);
    const full = run(peft, ids);
    expect(() => {
      peft.computeDtype = "float16" as "bfloat16";
    }).toThrow(/must be "float32" or "bfloat16", got "float16"/);
    peft.computeDtype = "bfloat16";
    expect(peft.baseModel.computeDtype).toBe("bfloat16");
    const half = run(peft, ids);
    const rel = Math.abs(half.value - full.value) / Math.abs(full.value);
    // Rounding each activation operand to bf16 (round to nearest: unit roundoff u = 2⁻⁸; the weights are
    // bf16 already) perturbs each projection's output by at most u·Σ|x||w|. Along the path (2 layers ×
    // q/k/v/o, gate/up/down, LoRA, then the head) about ten such products compound, so the log-probs move
    // by O(8·u) = 2⁻⁵ relative at most: the envelope checked here. A float32 run agrees to ~1e-6, so a
    // change above 1e-5 shows the products really ran in bf16.
    expect(rel).toBeGreaterThan(1e-5);
    expect(rel).toBeLessThan(2 ** -5);
    const copy = peft.baseModel.frozenCopy();
    expect(copy.computeDtype).toBe("bfloat16");
    copy.dispose();
    peft.dispose();
  });
});
