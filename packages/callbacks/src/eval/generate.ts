/**
 * Sample tables: text prompts in, decoded completions out, through the model's KV-cache generator.
 * @module
 */
import { type CausalLM, canGenerate, ConfigError, Rng, type TokenizerLike } from "@prefkit/core";

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
 * Complete each prompt with `model`'s KV-cache generator: greedy by default, or temperature sampling
 * with a seed. Prompts of equal token length run as one batch. Every tensor is released.
 * @throws ConfigError for a bad `maxNewTokens` or `temperature`, or a model without `generate`.
 */
export async function generate(
  model: CausalLM,
  tokenizer: TokenizerLike,
  prompts: readonly string[],
  options: GenerateOptions = {},
): Promise<Generation[]> {
  const maxNew = options.maxNewTokens ?? 40;
  const temperature = options.temperature ?? 0;
  if (!Number.isInteger(maxNew) || maxNew < 1) {
    throw new ConfigError(`must be an integer >= 1, got ${maxNew}`, { field: "maxNewTokens" });
  }
  if (!(temperature >= 0)) throw new ConfigError(`must be >= 0, got ${temperature}`, { field: "temperature" });
  if (!canGenerate(model)) {
    throw new ConfigError("the model has no generate(); use a @prefkit/models causal LM (or a PEFT model)", {
      field: "model",
    });
  }
  const eos = options.eosTokenId === undefined ? tokenizer.eosTokenId : (options.eosTokenId ?? undefined);
  const rng = new Rng(options.seed ?? 42);
  const encoded = prompts.map((p) => tokenizer.encode(p, { addSpecialTokens: options.addSpecialTokens ?? true }));
  const out: Generation[] = new Array(prompts.length);
  const groups = new Map<number, number[]>();
  encoded.forEach((ids, i) => {
    groups.set(ids.length, [...(groups.get(ids.length) ?? []), i]);
  });
  for (const indices of groups.values()) {
    const result = await model.generate(
      indices.map((i) => encoded[i]!),
      {
        maxNewTokens: maxNew,
        doSample: temperature > 0,
        ...(temperature > 0 ? { temperature } : {}),
        ...(eos !== undefined ? { eosTokenId: eos } : {}),
        rng,
      },
    );
    indices.forEach((i, r) => {
      const kept = result.newTokens[r]!;
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
