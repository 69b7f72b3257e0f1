/**
 * Issue 16: `generate()` on the native decode step (packages/models/native/src/decode.cc: prefill with the
 * fused forward, then one native call per token over a preallocated KV cache) gives the tfjs path's tokens
 * for every family layout (GQA, llama3 rope, Qwen2 biases, Qwen3 q/k norms, Mistral's sliding window with
 * prompt + generation longer than the window, tied heads), greedy and seeded sampling, left padding and
 * per-row stops, LoRA adapters unmerged, and stories260K's known greedy ids; its log-probs are within 1e-4
 * of a full forward; the stream yields the same steps; nothing leaks.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { initEngine, nativeBlasPlugin, tf } from "@prefkit/core";
import {
  AutoModelForCausalLM,
  type GenerateOutput,
  getPeftModel,
  type PreTrainedModelForCausalLM,
  selectiveLogProbs,
} from "@prefkit/models";
import type { GenerateOptions } from "@prefkit/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";
import { skipWithoutNativeDecoder } from "../modeling/native-helpers.js";
import { FAMILIES, randomModel } from "./helpers.js";

const SKIP = skipWithoutNativeDecoder("native generation tests");
const CASES = Object.keys(FAMILIES);
const PROMPTS = [[5, 9, 14, 3, 22, 7, 30], [41, 8], [17, 17, 4, 50], [12]];

function leftPad(rows: number[][], pad: number): { ids: number[][]; mask: number[][] } {
  const width = Math.max(...rows.map((r) => r.length));
  return {
    ids: rows.map((r) => [...Array<number>(width - r.length).fill(pad), ...r]),
    mask: rows.map((r) => [...Array<number>(width - r.length).fill(0), ...r.map(() => 1)]),
  };
}

/** The same generation on the native decode step and on the tfjs ops (asserting that each ran). */
async function bothPaths(
  model: PreTrainedModelForCausalLM,
  ids: number[][],
  options: GenerateOptions,
): Promise<{ native: GenerateOutput; tfjs: GenerateOutput }> {
  const probe = model.startDecoding(ids.length, ids[0]!.length + 1);
  expect(probe?.kind, "the native decode step applies").toBe("native");
  probe!.dispose();
  const native = await model.generate(ids, options);
  model.decoder.useNativeGeneration = false;
  try {
    expect(model.startDecoding(ids.length, ids[0]!.length + 1)).toBeUndefined();
    return { native, tfjs: await model.generate(ids, options) };
  } finally {
    model.decoder.useNativeGeneration = true;
  }
}

/**
 * A token of `free`'s new tokens that some rows generate and others do not (so a stop on it is per-row), or
 * undefined when there is none.
 */
function perRowStop(free: GenerateOutput): number | undefined {
  const candidates = [...new Set(free.newTokens.flat())];
  return candidates.find((t) => {
    const hits = free.newTokens.map((row) => row.includes(t));
    return hits.some(Boolean) && !hits.every(Boolean);
  });
}

/**
 * Per-row stops in `out`: a row that generated `stop` ends on it and is finished, the others ran to
 * `maxNewTokens`; some rows stopped early and some did not; padded sequences are `pad` after a stop.
 */
function expectPerRowStops(out: GenerateOutput, stop: number, maxNewTokens: number, pad: number): void {
  for (const [r, row] of out.newTokens.entries()) {
    const at = row.indexOf(stop);
    expect(at === -1 || at === row.length - 1, `row ${r} ends at its stop`).toBe(true);
    expect(out.finished[r], `row ${r} finished`).toBe(at >= 0);
    expect(out.numGeneratedTokens[r]).toBe(row.length);
    if (at < 0) expect(row.length).toBe(maxNewTokens);
    const padded = out.paddedSequences[r]!;
    expect(padded.slice(padded.length - (maxNewTokens - row.length))).toEqual(
      Array<number>(maxNewTokens - row.length).fill(pad),
    );
  }
  expect(out.finished.some(Boolean) && !out.finished.every(Boolean), "some rows stop, some run on").toBe(true);
}

/** The largest |returned − full-forward| log-prob of every row's new tokens (temperature-scaled). */
function logprobError(model: PreTrainedModelForCausalLM, out: GenerateOutput, temperature: number): number {
  let worst = 0;
  for (const [r, seq] of out.sequences.entries()) {
    const n = out.newTokens[r]!.length;
    const lp = tf.tidy(() => {
      const { logits } = model.forward({ inputIds: [seq.slice(0, -1)] });
      return selectiveLogProbs(tf.div(logits, temperature) as tf.Tensor3D, [seq.slice(1)])
        .dataSync()
        .slice(-n);
    });
    for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(lp[i]! - out.logprobs![r]![i]!));
  }
  return worst;
}

describe.skipIf(SKIP)("generate on the native decode step", () => {
  beforeAll(async () => {
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
  });

  describe.each(CASES)("%s", (family) => {
    let model: PreTrainedModelForCausalLM;
    beforeAll(() => {
      model = randomModel(FAMILIES[family]!, 21);
    });
    afterAll(() => model?.dispose());

    it("greedy, left-padded: the tfjs path's tokens; log-probs within 1e-4 of a full forward", async () => {
      const { ids, mask } = leftPad(PROMPTS, 0);
      const { native, tfjs } = await bothPaths(model, ids, {
        attentionMask: mask,
        maxNewTokens: 12,
        returnLogprobs: true,
      });
      expect(native.newTokens).toEqual(tfjs.newTokens);
      expect(native.paddedSequences).toEqual(tfjs.paddedSequences);
      expect(logprobError(model, native, 1)).toBeLessThanOrEqual(1e-4);
      // Rows differ (the batch is not one row repeated), and each row's prompt is longer than Mistral's window.
      expect(new Set(native.newTokens.map((r) => r.join())).size).toBe(PROMPTS.length);
    });

    it("seeded sampling (temperature, top-k, top-p): the tfjs path's tokens for the same seed", async () => {
      const { ids, mask } = leftPad(PROMPTS, 0);
      for (const warpers of [{ temperature: 1.3 }, { temperature: 0.8, topK: 20, topP: 0.9 }]) {
        const options = {
          ...warpers,
          attentionMask: mask,
          maxNewTokens: 14,
          doSample: true,
          seed: 7,
          returnLogprobs: true,
        };
        const { native, tfjs } = await bothPaths(model, ids, options);
        expect(native.newTokens, JSON.stringify(warpers)).toEqual(tfjs.newTokens);
        expect(logprobError(model, native, warpers.temperature)).toBeLessThanOrEqual(1e-4);
      }
    });

    it("left padding and per-row stops, greedy and sampled: the tfjs path's tokens, counts and padding", async () => {
      const { ids, mask } = leftPad(PROMPTS, 0);
      for (const sampling of [{}, { doSample: true, temperature: 0.9, topK: 30, seed: 11 }]) {
        const base = { ...sampling, attentionMask: mask, maxNewTokens: 12 };
        const free = await model.generate(ids, { ...base, eosTokenId: [] });
        const stop = perRowStop(free);
        expect(stop, `a token some rows generate and others do not (${JSON.stringify(sampling)})`).toBeDefined();
        const options = { ...base, eosTokenId: stop!, padTokenId: 60, returnLogprobs: true };
        const { native, tfjs } = await bothPaths(model, ids, options);
        expect(native.newTokens, JSON.stringify(sampling)).toEqual(tfjs.newTokens);
        expect(native.finished).toEqual(tfjs.finished);
        expect(native.numGeneratedTokens).toEqual(tfjs.numGeneratedTokens);
        expect(native.paddedSequences).toEqual(tfjs.paddedSequences);
        expect(native.logprobs).toHaveLength(PROMPTS.length);
        expectPerRowStops(native, stop!, 12, 60);
        expect(logprobError(model, native, "temperature" in sampling ? sampling.temperature : 1)).toBeLessThanOrEqual(
          1e-4,
        );
      }
    });
  });

  it("per-row stops: the same tokens, counts, padding and finished flags as the tfjs path", async () => {
    const model = randomModel(FAMILIES["llama_gqa"]!, 21);
    const { ids, mask } = leftPad(PROMPTS, 0);
    const free = await model.generate(ids, { attentionMask: mask, maxNewTokens: 12 });
    const stop = free.newTokens[0]![2]!;
    const firstStop = free.newTokens.map((row) => row.indexOf(stop));
    expect(firstStop.some((i) => i < 0) && firstStop.some((i) => i >= 0)).toBe(true);
    const options = { attentionMask: mask, maxNewTokens: 12, eosTokenId: stop, padTokenId: 60, returnLogprobs: true };
    const { native, tfjs } = await bothPaths(model, ids, options);
    expect(native.newTokens).toEqual(tfjs.newTokens);
    expect(native.numGeneratedTokens).toEqual(firstStop.map((i) => (i < 0 ? 12 : i + 1)));
    expect(native.finished).toEqual(tfjs.finished);
    expect(native.paddedSequences).toEqual(tfjs.paddedSequences);
    model.dispose();
  });

  it("Mistral's window: prompt + generation longer than it, and the window changes the tokens", async () => {
    const windowed = FAMILIES["mistral_window3"]!;
    expect(windowed["sliding_window"]).toBe(3);
    const prompt = [[5, 9, 14, 3, 22, 7, 30, 11, 40]];
    const outputs = [];
    for (const config of [windowed, { ...windowed, sliding_window: null }]) {
      const model = randomModel(config, 21); // same shapes and seed: the same weights
      const { native, tfjs } = await bothPaths(model, prompt, { maxNewTokens: 16 });
      expect(native.newTokens).toEqual(tfjs.newTokens);
      outputs.push(native.newTokens[0]);
      model.dispose();
    }
    expect(outputs[0]).not.toEqual(outputs[1]);
  });

  it("LoRA adapters (unmerged), enabled and disabled: the tfjs path's tokens", async () => {
    const base = randomModel(FAMILIES["qwen2_bias"]!, 5);
    const peft = getPeftModel(
      base,
      { r: 4, loraAlpha: 8, loraDropout: 0.1, targetModules: ["q_proj", "v_proj", "up_proj", "down_proj"] },
      { seed: 9 },
    );
    for (const [name, v] of peft.namedParameters()) {
      if (name.includes("lora_B")) tf.tidy(() => v.assign(tf.randomNormal(v.shape, 0, 0.3, "float32", 5)));
    }
    const { ids, mask } = leftPad(PROMPTS, 0);
    const options = { attentionMask: mask, maxNewTokens: 10, doSample: true, seed: 3, returnLogprobs: true };
    const adapted = await bothPaths(base, ids, options);
    expect(adapted.native.newTokens).toEqual(adapted.tfjs.newTokens);
    expect(logprobError(base, adapted.native, 1)).toBeLessThanOrEqual(1e-4);
    const plain = await peft.withAdaptersDisabled(() => bothPaths(base, ids, options));
    expect(plain.native.newTokens).toEqual(plain.tfjs.newTokens);
    expect(plain.native.newTokens, "the adapters change the output").not.toEqual(adapted.native.newTokens);
    // Through the PEFT model itself (its generate is the base model's).
    expect((await peft.generate(ids, options)).newTokens).toEqual(adapted.native.newTokens);
    peft.dispose();
  });

  it("declines LoRA dropout that applies in generation (train mode): the tfjs ops decode", async () => {
    const base = randomModel(FAMILIES["llama_gqa"]!, 5);
    const peft = getPeftModel(base, { r: 2, loraAlpha: 4, loraDropout: 0.5, targetModules: ["q_proj"] }, { seed: 1 });
    peft.dropoutMode = "train";
    expect(base.startDecoding(1, 8)).toBeUndefined();
    expect((await base.generate([[3, 4, 5]], { maxNewTokens: 3 })).numGeneratedTokens).toEqual([3]);
    peft.dropoutMode = "eval";
    const session = base.startDecoding(1, 8);
    expect(session?.kind).toBe("native");
    session!.dispose();
    peft.dispose();
  });

  it("does not depend on the thread count (bit-identical log-probs)", async () => {
    const model = randomModel(FAMILIES["smollm_tied"]!, 2);
    const { ids, mask } = leftPad(PROMPTS, 0);
    const run = async (threads: number) => {
      await initEngine({ backend: "cpu", threads, plugins: [nativeBlasPlugin()] });
      return model.generate(ids, { attentionMask: mask, maxNewTokens: 8, returnLogprobs: true });
    };
    const one = await run(1);
    const two = await run(2);
    expect(two.logprobs).toEqual(one.logprobs);
    model.dispose();
  });

  it("streams each step as it is chosen; the return value is generate()'s output; stopping early releases", async () => {
    const model = randomModel(FAMILIES["llama3_rope"]!, 4);
    const { ids, mask } = leftPad(PROMPTS, 0);
    const options = { attentionMask: mask, maxNewTokens: 9, doSample: true, seed: 5, returnLogprobs: true };
    const expected = await model.generate(ids, options);
    const stream = model.generateStream(ids, options);
    const steps = [];
    let result = await stream.next();
    while (!result.done) {
      steps.push(result.value);
      result = await stream.next();
    }
    expect(result.value).toEqual(expected);
    expect(steps.map((s) => s.step)).toEqual([...Array(9).keys()]);
    for (let r = 0; r < PROMPTS.length; r++) {
      expect(steps.map((s) => s.tokens[r])).toEqual(expected.newTokens[r]);
      expect(steps.map((s) => s.logprobs![r])).toEqual(expected.logprobs![r]);
    }
    // The tfjs path streams the same steps.
    model.decoder.useNativeGeneration = false;
    const tfjsTokens: number[][] = [];
    for await (const step of model.generateStream(ids, options)) tfjsTokens.push(step.tokens);
    model.decoder.useNativeGeneration = true;
    expect(tfjsTokens).toEqual(steps.map((s) => s.tokens));
    // Breaking out early disposes the session: on the tfjs path its cache tensors are freed.
    for (const native of [true, false]) {
      model.decoder.useNativeGeneration = native;
      const before = tf.memory().numTensors;
      for await (const step of model.generateStream(ids, options)) if (step.step === 2) break;
      expect(tf.memory().numTensors, native ? "native" : "tfjs").toBe(before);
    }
    model.decoder.useNativeGeneration = true;
    expect((await model.generate(ids, options)).newTokens).toEqual(expected.newTokens);
    model.dispose();
  });

  it("100 generations leave tf.memory().numTensors at its baseline", async () => {
    const model = randomModel(FAMILIES["qwen3_qknorm"]!, 8);
    const { ids, mask } = leftPad(PROMPTS, 0);
    await model.generate(ids, { attentionMask: mask, maxNewTokens: 4 });
    const before = tf.memory().numTensors;
    for (let i = 0; i < 100; i++) {
      const out = await model.generate(ids.slice(0, 1 + (i % 4)), {
        attentionMask: mask.slice(0, 1 + (i % 4)),
        maxNewTokens: 3 + (i % 5),
        doSample: i % 2 === 0,
        seed: i,
        returnLogprobs: true,
      });
      expect(out.newTokens.length).toBe(1 + (i % 4));
    }
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it("RSS stays roughly flat over 100 generations whose KV caches would add up to ~200 MB if kept", async () => {
    // 4 layers × 4 rows × 8 kv heads × 64 positions × 32 dims × (K, V) × 4 bytes = 2.1 MB of cache per call.
    const config = {
      ...FAMILIES["llama_gqa"]!,
      hidden_size: 256,
      intermediate_size: 256,
      num_hidden_layers: 4,
      num_attention_heads: 8,
      num_key_value_heads: 8,
    };
    const model = randomModel(config, 3);
    const rows = Array.from({ length: 4 }, (_, r) =>
      Array.from({ length: 48 - 5 * r }, (_, i) => 3 + ((i * 7 + r) % 58)),
    );
    const { ids, mask } = leftPad(rows, 0);
    const run = (i: number) =>
      model.generate(ids, {
        attentionMask: mask,
        maxNewTokens: 16,
        eosTokenId: [],
        doSample: i % 2 === 0,
        seed: i,
        returnLogprobs: i % 3 === 0,
      });
    for (let i = 0; i < 3; i++) await run(i); // warm-up: allocator pools, JIT
    const rssMB = () => process.memoryUsage().rss / 2 ** 20;
    const tensors = tf.memory().numTensors;
    const before = rssMB();
    let peak = before;
    for (let i = 0; i < 100; i++) {
      const out = await run(i);
      expect(out.numGeneratedTokens).toEqual([16, 16, 16, 16]);
      peak = Math.max(peak, rssMB());
    }
    expect(tf.memory().numTensors).toBe(tensors);
    expect(peak - before, `RSS ${before.toFixed(0)} MB -> peak ${peak.toFixed(0)} MB`).toBeLessThan(100);
    model.dispose();
  });

  it("the addon refuses a step past the cache's capacity and a mask that is not left padding, in one line", async () => {
    const model = randomModel(FAMILIES["llama_gqa"]!, 1);
    const session = model.startDecoding(1, 3)!;
    await session.prefill([[3, 4]], [[1, 1]], [[0, 1]]);
    await session.step([5], [2]);
    await expect(session.step([6], [3])).rejects.toThrow(/^decodeStep: the cache is full/);
    session.dispose();
    const bad = model.startDecoding(1, 4)!;
    await expect(bad.prefill([[3, 4, 5]], [[1, 0, 1]], [[0, 0, 1]])).rejects.toThrow(/left padding/);
    await expect(bad.step([3], [0])).rejects.toThrow(/no prefill ran|cache is full/);
    bad.dispose();
    await expect(bad.step([3], [0])).rejects.toThrow(/disposed/);
    model.dispose();
  });
});

const STORIES = sharedPath("assets/stories260K");

describe.skipIf(SKIP || !STORIES)("stories260K on the native decode step", () => {
  it("greedy-generates the README's 40 ids from BOS", async () => {
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
    const model = await AutoModelForCausalLM.fromPretrained(STORIES!);
    const fx = JSON.parse(readFileSync(join(STORIES!, "fixtures.json"), "utf8")) as {
      greedy: { prompt_ids: number[]; max_new_tokens: number; ids: number[] };
    };
    const { native, tfjs } = await bothPaths(model, [fx.greedy.prompt_ids], {
      maxNewTokens: fx.greedy.max_new_tokens,
      returnLogprobs: true,
    });
    expect(native.sequences[0]).toEqual(fx.greedy.ids);
    expect(tfjs.sequences[0]).toEqual(fx.greedy.ids);
    expect(logprobError(model, native, 1)).toBeLessThanOrEqual(1e-4);
    model.dispose();
  });

  it("16-bit stored weights and bf16 compute decode with the tfjs ops (the decode step reads float32 only)", async () => {
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
    const bf16 = await AutoModelForCausalLM.fromPretrained(STORIES!, { dtype: "bfloat16" });
    expect(bf16.startDecoding(1, 8)).toBeUndefined();
    const out = await bf16.generate([[1, 403, 407]], { maxNewTokens: 6, eosTokenId: [], returnLogprobs: true });
    expect(out.newTokens[0]).toHaveLength(6);
    expect(logprobError(bf16, out, 1)).toBeLessThanOrEqual(1e-4);
    bf16.dispose();
    const model = randomModel(FAMILIES["llama_gqa"]!, 21);
    model.decoder.computeDtype = "bfloat16";
    expect(model.startDecoding(1, 8)).toBeUndefined();
    model.decoder.computeDtype = "float32";
    const session = model.startDecoding(1, 8);
    expect(session?.kind).toBe("native");
    session!.dispose();
    model.dispose();
  });

  it("left-padded batches, greedy and seeded-sampled, with per-row stops: the tfjs path's tokens", async () => {
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
    const model = await AutoModelForCausalLM.fromPretrained(STORIES!);
    const fx = JSON.parse(readFileSync(join(STORIES!, "fixtures.json"), "utf8")) as {
      tokenizer: { cases: { ids: number[] }[] };
    };
    const { ids, mask } = leftPad(
      fx.tokenizer.cases.slice(0, 4).map((c) => c.ids),
      0,
    );
    for (const sampling of [{}, { doSample: true, temperature: 0.8, topP: 0.9, seed: 4 }]) {
      const base = { ...sampling, attentionMask: mask, maxNewTokens: 24 };
      const free = await model.generate(ids, { ...base, eosTokenId: [] });
      const stop = perRowStop(free);
      expect(stop).toBeDefined();
      const options = { ...base, eosTokenId: stop!, padTokenId: 0, returnLogprobs: true };
      const { native, tfjs } = await bothPaths(model, ids, options);
      expect(native.newTokens, JSON.stringify(sampling)).toEqual(tfjs.newTokens);
      expect(native.paddedSequences).toEqual(tfjs.paddedSequences);
      expectPerRowStops(native, stop!, 24, 0);
      expect(logprobError(model, native, "temperature" in sampling ? sampling.temperature : 1)).toBeLessThanOrEqual(
        1e-4,
      );
    }
    model.dispose();
  });
});
