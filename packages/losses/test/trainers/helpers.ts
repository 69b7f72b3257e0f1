// Tiny models and data for the trainer tests.
import {
  type Callback,
  type CausalLM,
  Rng,
  type TokenizedCompletion,
  type TokenizedPreference,
  type TokenizerLike,
  tf,
} from "@prefkit/core";
import { AutoModelForCausalLM, type PreTrainedModelForCausalLM } from "@prefkit/models";

export const VOCAB = 16;

export { TINY_LLAMA } from "../../../../test/helpers/tiny-llama.js";
import { TINY_LLAMA } from "../../../../test/helpers/tiny-llama.js";

export function tinyModel(seed = 1): PreTrainedModelForCausalLM {
  return AutoModelForCausalLM.fromConfig(TINY_LLAMA, { seed });
}

/** Pairs whose chosen completions use even ids and rejected ones odd ids (a learnable preference). */
export function makePairs(n: number, seed = 7): TokenizedPreference[] {
  const r = new Rng(seed);
  // ids in [2, 15]: even for chosen, odd for rejected
  const seq = (len: number, parity: number) => Array.from({ length: len }, () => 2 + 2 * r.int(VOCAB / 2 - 1) + parity);
  return Array.from({ length: n }, () => ({
    promptIds: [1, ...Array.from({ length: 1 + r.int(3) }, () => 2 + r.int(VOCAB - 2))],
    chosenIds: seq(1 + r.int(3), 0),
    rejectedIds: seq(1 + r.int(3), 1),
  }));
}

/** Prompt-completion examples: the completion repeats the prompt's last token. */
export function makeCompletions(n: number, seed = 3): TokenizedCompletion[] {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => {
    const prompt = [1, ...Array.from({ length: 1 + r.int(3) }, () => 2 + r.int(VOCAB - 2))];
    const last = prompt.at(-1)!;
    return { promptIds: prompt, completionIds: [last, last, 2] };
  });
}

export function weightsOf(model: CausalLM): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [k, v] of model.namedParameters()) out[k] = Array.from(v.dataSync());
  return out;
}

export function maxWeightDiff(a: Record<string, number[]>, b: Record<string, number[]>): number {
  let worst = 0;
  for (const k of Object.keys(a))
    for (let i = 0; i < a[k]!.length; i++) worst = Math.max(worst, Math.abs(a[k]![i]! - b[k]![i]!));
  return worst;
}

export function trainLogs(history: Array<Record<string, number>>): Array<Record<string, number>> {
  return history.filter((e) => "loss" in e);
}

/** log Σ exp(row), computed stably in JS. */
export function logSumExp(row: readonly number[]): number {
  const m = Math.max(...row);
  return m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
}

/** One scored completion token of a single sequence, from the model's logits in JS (no fused op). */
export interface HandToken {
  /** log p(token | prefix). */
  logp: number;
  /** The logits row that predicts the token. */
  logits: number[];
}

/** The scored completion tokens of `prompt ++ completion` (from position max(|prompt|, 1) on), in order. */
export function handTokens(model: CausalLM, prompt: number[], completion: number[]): HandToken[] {
  const ids = [...prompt, ...completion];
  const logits = tf.tidy(() => model.forward({ inputIds: [ids] }).logits.arraySync()[0]!);
  const out: HandToken[] = [];
  for (let t = Math.max(prompt.length, 1); t < ids.length; t++) {
    const row = logits[t - 1]!;
    out.push({ logp: row[ids[t]!]! - logSumExp(row), logits: row });
  }
  return out;
}

/** Summed completion log-probs of a single sequence computed in JS from the model's logits (no fused op). */
export function handLogp(model: CausalLM, prompt: number[], completion: number[]): number {
  return handTokens(model, prompt, completion).reduce((s, x) => s + x.logp, 0);
}

/**
 * Digits as tokens for tests that tokenise raw rows on the tiny model: "0"…"9" → 3…12, any other character
 * → 13, BOS 1 (added by `encode` unless `addSpecialTokens` is false), EOS = pad = 2: every id inside {@link VOCAB}.
 */
export class DigitTokenizer implements TokenizerLike {
  readonly bosTokenId = 1;
  readonly eosTokenId = 2;
  readonly padTokenId = 2;
  readonly hasChatTemplate = false;
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[] {
    const ids = text.split("").map((d) => (/[0-9]/.test(d) ? Number(d) + 3 : 13));
    return (options?.addSpecialTokens ?? true) ? [1, ...ids] : ids;
  }
  decode(ids: number[]): string {
    return ids.map((id) => (id === 1 ? "<s>" : id === 2 ? "</s>" : id === 13 ? "?" : String(id - 3))).join("");
  }
  applyChatTemplate(): string {
    throw new Error("DigitTokenizer has no chat template");
  }
}

/** A callback that stops training after step `n`. */
export const stopAtStep = (n: number): Callback => ({
  onStepEnd: (_a, s, c) => {
    if (s.globalStep === n) c.shouldTrainingStop = true;
  },
});
