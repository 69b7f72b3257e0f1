/**
 * Issue 16 with issue 15's 16-bit storage: a model loaded with `dtype: "bfloat16"` (HalfPrecisionLinear
 * projections and LM head, a bf16 embedding table) decodes on the native step, which binds the packs the
 * fused decoder trains with (packed for float32 products: bf16 widened exactly) and gathers the embedding
 * from its bits. For every family layout, greedy, seeded-sampled and per-row-stopped generations give the
 * tfjs path's tokens on the same bf16-loaded model (which upcasts the bits per call), with log-probs within
 * 1e-4 of a full forward; also when the pack is the only storage of the bits (`packedStorage`, after a
 * training forward dropped them), with unmerged LoRA adapters over the 16-bit base, at any thread count;
 * nothing leaks.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initEngine, nativeBlasPlugin, tf } from "@prefkit/core";
import { AutoModelForCausalLM, HalfPrecisionLinear, type PreTrainedModelForCausalLM } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { completionValueAndGrads, loraOverBf16 } from "../modeling/bf16-helpers.js";
import { skipWithoutNativeDecoder } from "../modeling/native-helpers.js";
import {
  bothPaths,
  expectThreadInvariant,
  familyDecodeTests,
  leftPad,
  logprobError,
  PROMPTS,
} from "./decode-helpers.js";
import { FAMILIES, randomIds, randomModel } from "./helpers.js";

const SKIP = skipWithoutNativeDecoder("native generation of 16-bit models");
const CASES = Object.keys(FAMILIES);

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "prefkit-generate16-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** `family`'s random model saved as BF16 (once per family and seed). */
const saved = new Map<string, string>();
async function bf16Dir(family: string, seed = 21): Promise<string> {
  const key = `${family}-${seed}`;
  let dir = saved.get(key);
  if (dir === undefined) {
    dir = join(root, key);
    const source = randomModel(FAMILIES[family]!, seed);
    await source.savePretrained(dir, { dtype: "BF16" });
    source.dispose();
    saved.set(key, dir);
  }
  return dir;
}

/** Every 16-bit projection of the model (q … down per layer, and the LM head), with its module name. */
function halfProjections(model: PreTrainedModelForCausalLM): Array<{ name: string; linear: HalfPrecisionLinear }> {
  const out: Array<{ name: string; linear: HalfPrecisionLinear }> = [];
  for (const m of model.linearModules().values()) {
    const plain = (m as { base?: unknown }).base ?? m;
    if (plain instanceof HalfPrecisionLinear) out.push({ name: plain.name, linear: plain });
  }
  return out;
}

/** `family`'s model loaded in 16 bits, checked to be stored so: every projection, the LM head, the embedding. */
async function loadBf16(family: string, seed = 21): Promise<PreTrainedModelForCausalLM> {
  const model = await AutoModelForCausalLM.fromPretrained(await bf16Dir(family, seed), { dtype: "bfloat16" });
  const layers = halfProjections(model).filter((p) => p.name !== "lm_head");
  expect(layers.length, family).toBe(7 * model.decoderConfig.numLayers);
  expect(model.decoder.lmHead).toBeInstanceOf(HalfPrecisionLinear);
  expect(model.decoder.embedding.describe().kind, `${family}: a 16-bit embedding`).toBe("dense16");
  return model;
}

/** Sampled generation of the left-padded prompts with log-probs (the options of the LoRA and storage tests). */
const SAMPLED = { maxNewTokens: 10, doSample: true, temperature: 0.9, topK: 30, seed: 3, returnLogprobs: true };

describe.skipIf(SKIP)("generate on the native decode step with 16-bit stored weights", () => {
  beforeAll(async () => {
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
  });

  familyDecodeTests(CASES, (family) => loadBf16(family));

  it.each(["llama_gqa", "smollm_tied"])(
    "%s: with the pack as the only storage (bits dropped by a training forward), the same tokens and bit-identical log-probs",
    async (family) => {
      const model = await loadBf16(family);
      const { ids, mask } = leftPad(PROMPTS, 0);
      const options = { ...SAMPLED, attentionMask: mask };
      const kept = await bothPaths(model, ids, options);
      expect(kept.native.newTokens).toEqual(kept.tfjs.newTokens);
      const projections = halfProjections(model);
      expect(projections.every((p) => !p.linear.weight.bitsReleased)).toBe(true);

      model.decoder.packedStorage = true;
      const train = randomIds(2, 7, Number(FAMILIES[family]!["vocab_size"]), 9);
      const labels = tf.tensor2d(
        train.map((r) => [...r.slice(1), 0]),
        [2, 7],
        "int32",
      );
      const direct = model.directTokenLogProbs({ inputIds: train }, labels, {});
      expect(direct, "the fused decoder ran the training forward").toBeDefined();
      tf.dispose([direct!.logProbs, labels]);
      // The projections' bits are gone (the LM head keeps its own: the tfjs ops read it for logits).
      for (const p of projections) expect(p.linear.weight.bitsReleased, p.name).toBe(p.name !== "lm_head");

      const packed = await bothPaths(model, ids, options);
      expect(packed.native.newTokens).toEqual(kept.native.newTokens);
      // The same packs, the same products: bit for bit.
      expect(packed.native.logprobs).toEqual(kept.native.logprobs);
      // The tfjs path upcasts the unpacked bits: the same tokens.
      expect(packed.tfjs.newTokens).toEqual(kept.tfjs.newTokens);
      expect(logprobError(model, packed.native, SAMPLED.temperature)).toBeLessThanOrEqual(1e-4);
      for (const p of projections) expect(p.linear.weight.bitsReleased, p.name).toBe(p.name !== "lm_head");
      model.dispose();
    },
  );

  it.each(["qwen2_bias", "qwen3_qknorm"])(
    "%s: LoRA adapters (unmerged) over the 16-bit base, kept and packed-only bits: the tfjs path's tokens",
    async (family) => {
      const peft = await loraOverBf16(await bf16Dir(family), 4, 5);
      const base = peft.baseModel;
      const { ids, mask } = leftPad(PROMPTS, 0);
      const options = { ...SAMPLED, attentionMask: mask };
      const adapted = await bothPaths(base, ids, options);
      expect(adapted.native.newTokens).toEqual(adapted.tfjs.newTokens);
      expect(logprobError(base, adapted.native, SAMPLED.temperature)).toBeLessThanOrEqual(1e-4);
      const plain = await peft.withAdaptersDisabled(() => bothPaths(base, ids, options));
      expect(plain.native.newTokens).toEqual(plain.tfjs.newTokens);
      expect(plain.native.newTokens, "the adapters change the output").not.toEqual(adapted.native.newTokens);

      base.decoder.packedStorage = true;
      completionValueAndGrads(peft, randomIds(2, 7, Number(FAMILIES[family]!["vocab_size"]), 9), [1, -1]);
      expect(halfProjections(base).some((p) => p.linear.weight.bitsReleased)).toBe(true);
      const packed = await bothPaths(base, ids, options);
      expect(packed.native.newTokens).toEqual(adapted.native.newTokens);
      expect(packed.native.logprobs).toEqual(adapted.native.logprobs);
      expect(packed.tfjs.newTokens).toEqual(adapted.tfjs.newTokens);
      peft.dispose();
    },
  );

  it("does not depend on the thread count (bit-identical log-probs)", async () => {
    const model = await loadBf16("smollm_tied", 2);
    await expectThreadInvariant(model);
    model.dispose();
  });

  it("60 generations leave tf.memory().numTensors at its baseline, each on the native step", async () => {
    const model = await loadBf16("qwen3_qknorm", 8);
    model.decoder.packedStorage = true;
    const { ids, mask } = leftPad(PROMPTS, 0);
    await model.generate(ids, { attentionMask: mask, maxNewTokens: 4 });
    const before = tf.memory().numTensors;
    for (let i = 0; i < 60; i++) {
      const rows = 1 + (i % 4);
      const session = model.startDecoding(rows, 12);
      expect(session?.kind).toBe("native");
      session!.dispose();
      const out = await model.generate(ids.slice(0, rows), {
        attentionMask: mask.slice(0, rows),
        maxNewTokens: 3 + (i % 5),
        doSample: i % 2 === 0,
        seed: i,
        returnLogprobs: true,
      });
      expect(out.newTokens.length).toBe(rows);
    }
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});
