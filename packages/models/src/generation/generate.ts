/**
 * Batched autoregressive generation over a KV cache, with transformers' semantics: left-padded
 * prompts, positions `cumsum(mask) − 1`, greedy or warped sampling, per-row stop tokens after which a
 * row emits padding. The loop runs over the model's {@link DecodingSession} (the native decode step on
 * the fast path, tfjs ops otherwise) and yields each step's tokens as they come ({@link generateStream}).
 * @module
 */
import {
  ConfigError,
  type GenerateOptions,
  type GenerateOutput,
  type GenerationStep,
  type IntMatrix,
  Rng,
} from "@prefkit/core";
import { CachedForwardSession } from "./cached-session.js";
import type { IncrementalCausalLM } from "./kv-cache.js";
import { argmax, type SamplingOptions, sampleToken, tokenLogProb, validateSamplingOptions } from "./sampling.js";
import type { DecodingSession } from "./session.js";

/** Options after merging the call's, the generation config's and the defaults. */
export interface ResolvedGenerateOptions {
  /** New tokens per row at most. */
  maxNewTokens: number;
  /** Sample instead of argmax. */
  doSample: boolean;
  /** The warpers (temperature also scales returned log-probs). */
  sampling: Required<SamplingOptions>;
  /** Ids that end a row. */
  stopTokenIds: number[];
  /** Id emitted by a stopped row, or undefined when no row can stop. */
  padTokenId: number | undefined;
}

function asList(ids: number | number[] | null | undefined): number[] {
  if (ids === undefined || ids === null) return [];
  return Array.isArray(ids) ? ids : [ids];
}

/**
 * Merge `options` with a model's `generation_config.json` values and the defaults, as
 * transformers does (explicit option > generation config > default).
 * @throws ConfigError naming an invalid field.
 */
export function resolveGenerateOptions(
  options: GenerateOptions,
  defaults: IncrementalCausalLM["generationConfig"] = {},
): ResolvedGenerateOptions {
  const g = defaults ?? {};
  const maxNewTokens = options.maxNewTokens ?? g.max_new_tokens ?? 20;
  if (!(Number.isInteger(maxNewTokens) && maxNewTokens >= 0)) {
    throw new ConfigError(`must be an integer ≥ 0, got ${maxNewTokens}`, { field: "maxNewTokens" });
  }
  const sampling = {
    temperature: options.temperature ?? g.temperature ?? 1,
    topK: options.topK ?? g.top_k ?? 0,
    topP: options.topP ?? g.top_p ?? 1,
  };
  validateSamplingOptions(sampling);
  const stopTokenIds = [...new Set([...asList(options.eosTokenId ?? g.eos_token_id), ...asList(options.stopTokenIds)])];
  for (const id of stopTokenIds) {
    if (!Number.isInteger(id) || id < 0) throw new ConfigError(`invalid token id ${id}`, { field: "eosTokenId" });
  }
  const padTokenId = options.padTokenId ?? g.pad_token_id ?? stopTokenIds[0];
  if (padTokenId !== undefined && !(Number.isInteger(padTokenId) && padTokenId >= 0)) {
    throw new ConfigError(`invalid token id ${padTokenId}`, { field: "padTokenId" });
  }
  return { maxNewTokens, doSample: options.doSample ?? g.do_sample ?? false, sampling, stopTokenIds, padTokenId };
}

async function toRows(m: IntMatrix, field: string): Promise<number[][]> {
  if (Array.isArray(m)) {
    const cols = m[0]?.length ?? 0;
    for (const [r, row] of m.entries()) {
      if (row.length !== cols)
        throw new ConfigError(`has ${row.length} ids, row 0 has ${cols} (pad rows to one length)`, { field, row: r });
    }
    return m.map((row) => row.slice());
  }
  if (m.rank !== 2) throw new ConfigError(`expected a [B, T] tensor, got rank ${m.rank}`, { field });
  return (await m.array()) as number[][];
}

/**
 * Check a `[B, T]` mask of left-padded prompts and return per-row positions
 * (`cumsum(mask) − 1`, 1 at padding as HF's `masked_fill`) and real-token counts.
 */
function leftPaddingLayout(mask: number[][]): { positions: number[][]; lengths: number[] } {
  const positions: number[][] = [];
  const lengths: number[] = [];
  for (const [r, row] of mask.entries()) {
    let seen = 0;
    const pos: number[] = [];
    for (const [t, m] of row.entries()) {
      if (m !== 0 && m !== 1)
        throw new ConfigError(`value ${m} at column ${t} is not 0 or 1`, { field: "attentionMask", row: r });
      if (m === 0 && seen > 0) {
        throw new ConfigError(
          `padding at column ${t} after a real token: generation needs left padding (tokenizer paddingSide "left")`,
          { field: "attentionMask", row: r },
        );
      }
      if (m === 1) seen++;
      pos.push(m === 1 ? seen - 1 : 1);
    }
    if (seen === 0) throw new ConfigError("the row has no real token (mask all 0)", { field: "attentionMask", row: r });
    positions.push(pos);
    lengths.push(seen);
  }
  return { positions, lengths };
}

/**
 * Generate continuations with a KV cache, one token per row per step, like transformers'
 * `generate()` (greedy search or multinomial sampling), yielding each step's tokens as they are chosen.
 *
 * - Prompts of different lengths are left-padded with an `attentionMask`; each row then gives
 *   exactly what it gives alone.
 * - A row that emits a stop id is finished: it emits `padTokenId` afterwards and its count stops.
 *   The loop ends when every row is finished or after `maxNewTokens` steps.
 * - Sampling draws one number per unfinished row per step from `options.rng`, or from
 *   `new Rng(options.seed)`; without either, from a randomly seeded `Rng`. The draws, and so the
 *   tokens for a seed, do not depend on which session decodes.
 * - Decoding runs on `model.startDecoding()` when it offers a session (the native decode step of the
 *   fast path), else on tfjs ops through `model.forwardWithCache`.
 * - Every tensor and cache it creates is released when it returns, throws, or the consumer stops
 *   iterating early.
 *
 * ```ts
 * const stream = generateStream(model, [[1, 403, 407]], { maxNewTokens: 20 });
 * for await (const { tokens } of stream) process.stdout.write(tokenizer.decode([tokens[0]!]));
 * ```
 *
 * @param model anything with an incremental step, e.g. `PreTrainedModelForCausalLM`.
 * @param inputIds `[B, T]` prompt ids (nested arrays or an int tensor, which is not disposed).
 * @returns an async iterator over the steps, whose return value is the whole {@link GenerateOutput}.
 * @throws ConfigError for bad options or inputs, naming the field and row (on the first `next()`).
 */
export async function* generateStream(
  model: IncrementalCausalLM,
  inputIds: IntMatrix,
  options: GenerateOptions = {},
): AsyncGenerator<GenerationStep, GenerateOutput, undefined> {
  const resolved = resolveGenerateOptions(options, model.generationConfig);
  const prompts = await toRows(inputIds, "inputIds");
  const batch = prompts.length;
  if (batch === 0 || prompts[0]!.length === 0) throw new ConfigError("no prompt ids", { field: "inputIds" });
  const mask = options.attentionMask
    ? await toRows(options.attentionMask, "attentionMask")
    : prompts.map((row) => row.map(() => 1));
  if (mask.length !== batch || mask[0]!.length !== prompts[0]!.length) {
    throw new ConfigError(
      `shape [${mask.length},${mask[0]?.length}] differs from inputIds [${batch},${prompts[0]!.length}]`,
      {
        field: "attentionMask",
      },
    );
  }
  const { positions, lengths } = leftPaddingLayout(mask);
  const { maxNewTokens, doSample, sampling, stopTokenIds, padTokenId } = resolved;
  const stops = new Set(stopTokenIds);
  const rng = options.rng ?? new Rng(options.seed ?? Math.floor(Math.random() * 0x7fffffff));

  const newTokens: number[][] = prompts.map(() => []);
  const logprobs: number[][] = prompts.map(() => []);
  const finished = prompts.map(() => false);
  const steps: number[][] = [];
  let session: DecodingSession | undefined;
  try {
    if (maxNewTokens > 0) {
      session = model.startDecoding?.(batch, prompts[0]!.length + maxNewTokens) ?? new CachedForwardSession(model);
      let logits = await session.prefill(prompts, mask, positions);
      for (let step = 0; step < maxNewTokens; step++) {
        const vocab = logits.length / batch;
        const chosen: number[] = [];
        const tokens: (number | null)[] = [];
        const stepLogprobs: (number | null)[] = [];
        for (let r = 0; r < batch; r++) {
          if (finished[r]) {
            chosen.push(padTokenId!);
            tokens.push(null);
            stepLogprobs.push(null);
            continue;
          }
          const row = logits.subarray(r * vocab, (r + 1) * vocab);
          const token = doSample ? sampleToken(row, sampling, rng) : argmax(row);
          chosen.push(token);
          newTokens[r]!.push(token);
          tokens.push(token);
          if (options.returnLogprobs) {
            const lp = tokenLogProb(row, token, sampling.temperature);
            logprobs[r]!.push(lp);
            stepLogprobs.push(lp);
          }
          if (stops.has(token)) finished[r] = true;
        }
        steps.push(chosen);
        yield {
          step,
          tokens,
          ...(options.returnLogprobs ? { logprobs: stepLogprobs } : {}),
          finished: finished.slice(),
        };
        if (finished.every(Boolean) || step === maxNewTokens - 1) break;
        // Stopped rows keep feeding padding with mask 1, as transformers does, so every row's
        // position advances by one per step.
        logits = await session.step(
          chosen,
          lengths.map((n) => n + step),
        );
      }
    }
  } finally {
    session?.dispose();
  }

  const output: GenerateOutput = {
    sequences: prompts.map((row, r) => [...row.slice(row.length - lengths[r]!), ...newTokens[r]!]),
    newTokens,
    paddedSequences: prompts.map((row, r) => [...row, ...steps.map((s) => s[r]!)]),
    numGeneratedTokens: newTokens.map((t) => t.length),
    finished,
  };
  if (options.returnLogprobs) output.logprobs = logprobs;
  return output;
}

/**
 * Generate continuations with a KV cache, like transformers' `generate()`: {@link generateStream}
 * run to its end. See there for padding, stops, sampling and which session decodes.
 *
 * @param model anything with an incremental step, e.g. `PreTrainedModelForCausalLM`.
 * @param inputIds `[B, T]` prompt ids (nested arrays or an int tensor, which is not disposed).
 * @throws ConfigError for bad options or inputs, naming the field and row.
 */
export async function generate(
  model: IncrementalCausalLM,
  inputIds: IntMatrix,
  options: GenerateOptions = {},
): Promise<GenerateOutput> {
  const steps = generateStream(model, inputIds, options);
  for (;;) {
    const next = await steps.next();
    if (next.done) return next.value;
  }
}
