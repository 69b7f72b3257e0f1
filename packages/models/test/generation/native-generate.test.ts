/**
 * Issue 16: `generate()` on the native decode step (packages/models/native/src/decode.cc: prefill with the
 * fused forward, then one native call per token over a preallocated KV cache) gives the tfjs path's tokens
 * for every family layout (GQA, llama3 rope, Qwen2 biases, Qwen3 q/k norms, Mistral's sliding window with
 * prompt + generation longer than the window, tied heads), greedy and seeded sampling, left padding and
 * per-row stops, LoRA adapters unmerged, and stories260K's known greedy ids (loaded in bf16: the tfjs path's
 * tokens; the random families in 16 bits: native-generate16.test.ts); its log-probs are within 1e-4 of a full
 * forward; the stream yields the same steps; nothing leaks.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { initEngine, nativeBlasPlugin, tf } from "@prefkit/core";
import { AutoModelForCausalLM, getPeftModel } from "@prefkit/models";
import { beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";
import { skipWithoutNativeDecoder } from "../modeling/native-helpers.js";
import {
  bothPaths,
  expectPerRowStops,
  expectThreadInvariant,
  familyDecodeTests,
  leftPad,
  logprobError,
  PROMPTS,
  perRowStop,
} from "./decode-helpers.js";
import { FAMILIES, randomModel } from "./helpers.js";

const SKIP = skipWithoutNativeDecoder("native generation tests");
const CASES = Object.keys(FAMILIES);

describe.skipIf(SKIP)("generate on the native decode step", () => {
  beforeAll(async () => {
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
  });

  familyDecodeTests(CASES, (family) => randomModel(FAMILIES[family]!, 21));

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
    await expectThreadInvariant(model);
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

  it("16-bit stored weights decode natively (the tfjs path's tokens); bf16 compute decodes with the tfjs ops", async () => {
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
    const bf16 = await AutoModelForCausalLM.fromPretrained(STORIES!, { dtype: "bfloat16" });
    const { native, tfjs } = await bothPaths(bf16, [[1, 403, 407]], {
      maxNewTokens: 12,
      eosTokenId: [],
      returnLogprobs: true,
    });
    expect(native.newTokens[0]).toHaveLength(12);
    expect(native.newTokens).toEqual(tfjs.newTokens);
    expect(logprobError(bf16, native, 1)).toBeLessThanOrEqual(1e-4);
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
