/**
 * Plain autoregressive generation (no KV cache): enough for sample tables and small models.
 * @module
 */
import { type CausalLM, ConfigError, Rng, type TokenizerLike, tf } from "@prefkit/core";

/** Options of {@link generate}. */
export interface GenerateOptions {
  /** New tokens per prompt. Default 40. */
  maxNewTokens?: number;
  /** 0 (default) is greedy; > 0 samples from softmax(logits / temperature). */
  temperature?: number;
  /** Seed of the sampler. Default 42. */
  seed?: number;
  /** Stop a row at this token (default: the tokenizer's eos). `null`: never stop early. */
  eosTokenId?: number | null;
  /** Add the tokenizer's special tokens (BOS) when encoding prompts. Default true. */
  addSpecialTokens?: boolean;
}

/** One generated completion. */
export interface Generation {
  /** The prompt. */
  prompt: string;
  /** Prompt token ids (with BOS when added). */
  promptIds: number[];
  /** New token ids (eos included when it was produced). */
  completionIds: number[];
  /** Decoded completion, special tokens skipped (as it reads after the decoded prompt, leading space kept). */
  completion: string;
}

/**
 * Complete each prompt with `model`: greedy by default, or temperature sampling with a seeded
 * {@link Rng}. Prompts of equal token length run as one batch; each step runs the full forward
 * (no KV cache), so this is for short samples, not serving. Every tensor is released.
 * @throws ConfigError for a bad `maxNewTokens` or `temperature`.
 */
export function generate(
  model: CausalLM,
  tokenizer: TokenizerLike,
  prompts: readonly string[],
  options: GenerateOptions = {},
): Generation[] {
  const maxNew = options.maxNewTokens ?? 40;
  const temperature = options.temperature ?? 0;
  if (!Number.isInteger(maxNew) || maxNew < 1) {
    throw new ConfigError(`must be an integer >= 1, got ${maxNew}`, { field: "maxNewTokens" });
  }
  if (!(temperature >= 0)) throw new ConfigError(`must be >= 0, got ${temperature}`, { field: "temperature" });
  const eos = options.eosTokenId === undefined ? tokenizer.eosTokenId : (options.eosTokenId ?? undefined);
  const rng = new Rng(options.seed ?? 42);
  const encoded = prompts.map((p) => tokenizer.encode(p, { addSpecialTokens: options.addSpecialTokens ?? true }));
  const out: Generation[] = new Array(prompts.length);
  const groups = new Map<number, number[]>();
  encoded.forEach((ids, i) => {
    groups.set(ids.length, [...(groups.get(ids.length) ?? []), i]);
  });
  for (const indices of groups.values()) {
    const rows = indices.map((i) => [...encoded[i]!]);
    const done = rows.map(() => false);
    for (let step = 0; step < maxNew && done.some((d) => !d); step++) {
      const last = tf.tidy(() => {
        const logits = model.forward({ inputIds: rows }).logits;
        const [b, t, v] = logits.shape;
        return tf.reshape(tf.slice(logits, [0, t - 1, 0], [b, 1, v]), [b, v]).arraySync() as number[][];
      });
      last.forEach((logits, r) => {
        const next = done[r] ? (eos ?? 0) : pick(logits, temperature, rng);
        rows[r]!.push(next);
        if (eos !== undefined && next === eos) done[r] = true;
      });
    }
    indices.forEach((i, r) => {
      const completionIds = rows[r]!.slice(encoded[i]!.length);
      const end = eos === undefined ? -1 : completionIds.indexOf(eos);
      const kept = end >= 0 ? completionIds.slice(0, end + 1) : completionIds;
      out[i] = {
        prompt: prompts[i]!,
        promptIds: encoded[i]!,
        completionIds: kept,
        // Decode with the prompt and cut it off, so a leading space the decoder strips at the start survives.
        completion: decodeAfter(tokenizer, encoded[i]!, kept),
      };
    });
  }
  return out;
}

function decodeAfter(tokenizer: TokenizerLike, prompt: number[], completion: number[]): string {
  const head = tokenizer.decode(prompt, { skipSpecialTokens: true });
  const full = tokenizer.decode([...prompt, ...completion], { skipSpecialTokens: true });
  return full.startsWith(head) ? full.slice(head.length) : tokenizer.decode(completion, { skipSpecialTokens: true });
}

function pick(logits: number[], temperature: number, rng: Rng): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  if (temperature === 0) return best;
  const m = logits[best]!;
  const w = logits.map((x) => Math.exp((x - m) / temperature));
  const total = w.reduce((a, b) => a + b, 0);
  let u = rng.next() * total;
  for (let i = 0; i < w.length; i++) {
    u -= w[i]!;
    if (u <= 0) return i;
  }
  return w.length - 1;
}
