/**
 * Shared by the native decode step's tests: the same generation on the native step and on the tfjs ops,
 * left padding, per-row stops and the log-probs of a full forward.
 */
import { type GenerateOptions, initEngine, nativeBlasPlugin, tf } from "@prefkit/core";
import { type GenerateOutput, type PreTrainedModelForCausalLM, selectiveLogProbs } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** Four prompts of different lengths (left-padded to 7 by {@link leftPad}). */
export const PROMPTS = [[5, 9, 14, 3, 22, 7, 30], [41, 8], [17, 17, 4, 50], [12]];

/** `rows` left-padded with `pad` to the longest, and their attention mask. */
export function leftPad(rows: number[][], pad: number): { ids: number[][]; mask: number[][] } {
  const width = Math.max(...rows.map((r) => r.length));
  return {
    ids: rows.map((r) => [...Array<number>(width - r.length).fill(pad), ...r]),
    mask: rows.map((r) => [...Array<number>(width - r.length).fill(0), ...r.map(() => 1)]),
  };
}

/** The same generation on the native decode step and on the tfjs ops (asserting that each ran). */
export async function bothPaths(
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
export function perRowStop(free: GenerateOutput): number | undefined {
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
export function expectPerRowStops(out: GenerateOutput, stop: number, maxNewTokens: number, pad: number): void {
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
export function logprobError(model: PreTrainedModelForCausalLM, out: GenerateOutput, temperature: number): number {
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

/**
 * For each of `families`, on the model `load` gives (disposed after): greedy, seeded-sampled and
 * per-row-stopped generations of left-padded prompts give the tfjs path's tokens, counts and padding on
 * the native decode step, with log-probs within 1e-4 of a full forward.
 */
export function familyDecodeTests(
  families: readonly string[],
  load: (family: string) => PreTrainedModelForCausalLM | Promise<PreTrainedModelForCausalLM>,
): void {
  describe.each(families)("%s", (family) => {
    let model: PreTrainedModelForCausalLM;
    beforeAll(async () => {
      model = await load(family);
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
}

/** Bit-identical log-probs of the left-padded prompts' greedy generation on 1 and 2 threads (the engine is left at 2). */
export async function expectThreadInvariant(model: PreTrainedModelForCausalLM): Promise<void> {
  const { ids, mask } = leftPad(PROMPTS, 0);
  const run = async (threads: number) => {
    await initEngine({ backend: "cpu", threads, plugins: [nativeBlasPlugin()] });
    return model.generate(ids, { attentionMask: mask, maxNewTokens: 8, returnLogprobs: true });
  };
  const one = await run(1);
  const two = await run(2);
  expect(two.logprobs).toEqual(one.logprobs);
}
