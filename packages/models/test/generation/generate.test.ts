/**
 * `generate()`: greedy decoding equals a cache-free argmax loop; a left-padded batch equals
 * each row alone; per-row stop with counts and padding; seeded sampling; returned log-probs
 * equal log_softmax(logits / T) of a full forward; no tensor leaks; typed errors.
 */
import { ConfigError, Rng, tf } from "@prefkit/core";
import { type GenerateOutput, generate, type PreTrainedModelForCausalLM, selectiveLogProbs } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useBackend } from "../modeling/golden.js";
import { FAMILIES, randomModel } from "./helpers.js";

/** Argmax decoding by full recomputation (no cache), one row. */
function greedyNoCache(model: PreTrainedModelForCausalLM, prompt: number[], steps: number): number[] {
  const ids = [...prompt];
  for (let i = 0; i < steps; i++) {
    const next = tf.tidy(() => {
      const { logits } = model.forward({ inputIds: [ids] });
      return tf.argMax(tf.reshape(tf.slice(logits, [0, ids.length - 1, 0], [1, 1, -1]), [-1])).dataSync()[0]!;
    });
    ids.push(next);
  }
  return ids.slice(prompt.length);
}

/** Left-pad ragged prompts with `pad`; returns ids and mask. */
function leftPad(rows: number[][], pad: number): { ids: number[][]; mask: number[][] } {
  const width = Math.max(...rows.map((r) => r.length));
  return {
    ids: rows.map((r) => [...Array<number>(width - r.length).fill(pad), ...r]),
    mask: rows.map((r) => [...Array<number>(width - r.length).fill(0), ...r.map(() => 1)]),
  };
}

const PROMPTS = [[5, 9, 14, 3, 22, 7, 30], [41, 8], [17, 17, 4, 50], [12]];

describe("generate (wasm)", () => {
  beforeAll(async () => {
    await useBackend("wasm");
  });

  describe.each(["llama_gqa", "qwen3_qknorm", "mistral_window3"])("%s", (family) => {
    let model: PreTrainedModelForCausalLM;
    beforeAll(() => {
      model = randomModel(FAMILIES[family]!, 21);
    });
    afterAll(() => model?.dispose());

    it("greedy with the cache equals argmax by full recomputation", async () => {
      const out = await model.generate([PROMPTS[0]!], { maxNewTokens: 12 });
      expect(out.newTokens[0]).toEqual(greedyNoCache(model, PROMPTS[0]!, 12));
      expect(out.sequences[0]).toEqual([...PROMPTS[0]!, ...out.newTokens[0]!]);
      expect(out.numGeneratedTokens).toEqual([12]);
      expect(out.finished).toEqual([false]);
    });

    it("a left-padded batch gives each row exactly what it gives alone (tokens and log-probs)", async () => {
      const { ids, mask } = leftPad(PROMPTS, 0);
      const batch = await model.generate(ids, { attentionMask: mask, maxNewTokens: 10, returnLogprobs: true });
      for (const [r, prompt] of PROMPTS.entries()) {
        const alone = await model.generate([prompt], { maxNewTokens: 10, returnLogprobs: true });
        expect(batch.newTokens[r], `row ${r}`).toEqual(alone.newTokens[0]);
        expect(batch.sequences[r]).toEqual([...prompt, ...alone.newTokens[0]!]);
        const err = Math.max(...batch.logprobs![r]!.map((lp, i) => Math.abs(lp - alone.logprobs![0]![i]!)));
        expect(err).toBeLessThanOrEqual(1e-4);
      }
      expect(batch.paddedSequences.map((r) => r.length)).toEqual(PROMPTS.map(() => 7 + 10));
      expect(batch.paddedSequences[1]!.slice(0, 7)).toEqual([0, 0, 0, 0, 0, 41, 8]);
    });
  });

  describe("on llama_gqa", () => {
    let model: PreTrainedModelForCausalLM;
    beforeAll(() => {
      model = randomModel(FAMILIES.llama_gqa!, 21);
    });
    afterAll(() => model?.dispose());

    it("stops each row at its first stop token, pads it afterwards and counts the stop token", async () => {
      const { ids, mask } = leftPad(PROMPTS, 0);
      const free = await model.generate(ids, { attentionMask: mask, maxNewTokens: 12 });
      // A stop id that some rows emit early and at least one row never emits.
      const stop = free.newTokens[0]![2]!;
      const firstStop = free.newTokens.map((row) => row.indexOf(stop));
      expect(firstStop.some((i) => i < 0)).toBe(true);
      const PAD = 60;
      const out = await model.generate(ids, {
        attentionMask: mask,
        maxNewTokens: 12,
        eosTokenId: stop,
        padTokenId: PAD,
      });
      for (const [r, i] of firstStop.entries()) {
        const n = i < 0 ? 12 : i + 1;
        expect(out.numGeneratedTokens[r], `row ${r}`).toBe(n);
        expect(out.finished[r]).toBe(i >= 0);
        expect(out.newTokens[r]).toEqual(free.newTokens[r]!.slice(0, n));
        expect(out.paddedSequences[r]!.slice(7)).toEqual([
          ...free.newTokens[r]!.slice(0, n),
          ...Array(12 - n).fill(PAD),
        ]);
      }
    });

    it("ends the loop when every row has stopped, with stopTokenIds as a list", async () => {
      const { ids, mask } = leftPad([PROMPTS[1]!, PROMPTS[3]!], 0);
      const free = await model.generate(ids, { attentionMask: mask, maxNewTokens: 8 });
      const stops = [free.newTokens[0]![1]!, free.newTokens[1]![2]!];
      const out = await model.generate(ids, { attentionMask: mask, maxNewTokens: 8, stopTokenIds: stops });
      expect(out.finished).toEqual([true, true]);
      const counts = free.newTokens.map((row) => row.findIndex((t) => stops.includes(t)) + 1);
      expect(out.numGeneratedTokens).toEqual(counts);
      expect(out.paddedSequences[0]!.length).toBe(PROMPTS[1]!.length + Math.max(...counts));
    });

    it("uses generation_config eos by default (model.generationConfig)", async () => {
      const free = await model.generate([PROMPTS[0]!], { maxNewTokens: 6 });
      model.generationConfig = { eos_token_id: [free.newTokens[0]![3]!] };
      try {
        const out = await model.generate([PROMPTS[0]!], { maxNewTokens: 6 });
        expect(out.numGeneratedTokens[0]).toBe(free.newTokens[0]!.indexOf(free.newTokens[0]![3]!) + 1);
      } finally {
        model.generationConfig = undefined;
      }
    });

    it("seeded sampling is reproducible; different seeds differ; an Rng stream advances", async () => {
      const opts = { maxNewTokens: 16, doSample: true, temperature: 1.5 };
      const a = await model.generate([PROMPTS[0]!, PROMPTS[0]!], { ...opts, seed: 1 });
      const b = await model.generate([PROMPTS[0]!, PROMPTS[0]!], { ...opts, seed: 1 });
      const c = await model.generate([PROMPTS[0]!, PROMPTS[0]!], { ...opts, seed: 2 });
      expect(a.newTokens).toEqual(b.newTokens);
      expect(a.newTokens).not.toEqual(c.newTokens);
      expect(a.newTokens[0]).not.toEqual(a.newTokens[1]); // rows draw different numbers
      const rng = new Rng(5);
      const first = await model.generate([PROMPTS[0]!], { ...opts, rng });
      const second = await model.generate([PROMPTS[0]!], { ...opts, rng });
      expect(first.newTokens).not.toEqual(second.newTokens);
      expect((await model.generate([PROMPTS[0]!], { ...opts, rng: new Rng(5) })).newTokens).toEqual(first.newTokens);
    });

    it("top-k 1 sampling equals greedy", async () => {
      const greedy = await model.generate([PROMPTS[2]!], { maxNewTokens: 10 });
      const sampled = await model.generate([PROMPTS[2]!], { maxNewTokens: 10, doSample: true, topK: 1, seed: 3 });
      expect(sampled.newTokens).toEqual(greedy.newTokens);
    });

    it("returned log-probs equal log_softmax(logits / temperature) of a full forward over the output", async () => {
      const temperature = 0.7;
      const out: GenerateOutput = await model.generate([PROMPTS[0]!], {
        maxNewTokens: 8,
        doSample: true,
        temperature,
        topP: 0.9,
        seed: 9,
        returnLogprobs: true,
      });
      const seq = out.sequences[0]!;
      const lp = tf.tidy(() => {
        const { logits } = model.forward({ inputIds: [seq.slice(0, -1)] });
        return selectiveLogProbs(tf.div(logits, temperature) as tf.Tensor3D, [seq.slice(1)]);
      });
      const expected = Array.from(await lp.data()).slice(PROMPTS[0]!.length - 1);
      lp.dispose();
      expect(out.logprobs![0]).toHaveLength(8);
      const err = Math.max(...out.logprobs![0]!.map((x, i) => Math.abs(x - expected[i]!)));
      expect(err).toBeLessThanOrEqual(1e-4);
    });

    it("leaves tf.memory().numTensors at its baseline (greedy, sampling, early stop, int tensor input)", async () => {
      const before = tf.memory().numTensors;
      const { ids, mask } = leftPad(PROMPTS, 0);
      await model.generate(ids, { attentionMask: mask, maxNewTokens: 5 });
      await model.generate(ids, { attentionMask: mask, maxNewTokens: 5, doSample: true, topK: 5, topP: 0.8, seed: 1 });
      await model.generate(ids, { attentionMask: mask, maxNewTokens: 5, eosTokenId: [3, 4, 5, 6, 7, 8, 9, 10] });
      const tensor = tf.tensor2d(ids, undefined, "int32");
      await generate(model, tensor, { attentionMask: mask, maxNewTokens: 3 });
      tensor.dispose();
      await expect(
        model.generate(ids, { attentionMask: mask.map((r) => r.reverse()), maxNewTokens: 3 }),
      ).rejects.toThrow();
      expect(tf.memory().numTensors).toBe(before);
    });

    it("generates through the installed LinearModule slots (a wrapped projection changes the output)", async () => {
      const name = "model.layers.0.self_attn.v_proj";
      const plain = await model.generate([PROMPTS[0]!], { maxNewTokens: 10 });
      const original = model.linearModules().get(name)!;
      const scale = tf.scalar(-3);
      model.replaceLinear(name, (base) => ({
        name: base.name,
        inFeatures: base.inFeatures,
        outFeatures: base.outFeatures,
        apply: (x) => tf.tidy(() => tf.mul(base.apply(x), scale)),
        parameters: () => base.parameters(),
      }));
      try {
        const wrapped = await model.generate([PROMPTS[0]!], { maxNewTokens: 10 });
        expect(wrapped.newTokens[0]).not.toEqual(plain.newTokens[0]);
        expect(wrapped.newTokens[0]).toEqual(greedyNoCache(model, PROMPTS[0]!, 10));
      } finally {
        model.replaceLinear(name, () => original);
        scale.dispose();
      }
      expect((await model.generate([PROMPTS[0]!], { maxNewTokens: 10 })).newTokens).toEqual(plain.newTokens);
    });

    it("maxNewTokens 0 returns the prompts", async () => {
      const out = await model.generate([PROMPTS[1]!], { maxNewTokens: 0 });
      expect(out).toMatchObject({
        sequences: [PROMPTS[1]],
        newTokens: [[]],
        numGeneratedTokens: [0],
        finished: [false],
      });
    });

    it("rejects bad inputs with typed errors naming the field and row", async () => {
      const err = (p: Promise<unknown>) =>
        p.then(
          () => undefined,
          (e: unknown) => e,
        );
      const right = (await err(
        model.generate(
          [
            [3, 4, 0],
            [5, 6, 7],
          ],
          {
            attentionMask: [
              [1, 1, 0],
              [1, 1, 1],
            ],
          },
        ),
      )) as ConfigError;
      expect(right).toBeInstanceOf(ConfigError);
      expect(right.message).toMatch(/left padding/);
      expect(right.message).toMatch(/row[ :=]+0|attentionMask/);
      await expect(model.generate([[3]], { doSample: true, temperature: 0 })).rejects.toThrow(/temperature/);
      await expect(model.generate([[3]], { topP: 0 })).rejects.toThrow(/topP/);
      await expect(model.generate([[3]], { topK: 1.5 })).rejects.toThrow(/topK/);
      await expect(model.generate([[3]], { maxNewTokens: -1 })).rejects.toThrow(/maxNewTokens/);
      await expect(model.generate([[3, 4], [5]])).rejects.toThrow(/inputIds/);
      await expect(model.generate([[0, 0]], { attentionMask: [[0, 0]] })).rejects.toThrow(/no real token/);
    });
  });
});
