/**
 * The tfjs {@link DecodingSession}: each call is one `forwardWithCache` step over a {@link KVCache} of
 * tensors, with the mask over the whole cache grown by one column per step (stopped rows keep feeding
 * padding with mask 1, as transformers does). What every backend runs, and the fast path's reference.
 * @module
 */
import type { IncrementalCausalLM, KVCache } from "./kv-cache.js";
import type { DecodingSession } from "./session.js";

/** {@link DecodingSession} over a model's `forwardWithCache`; it owns its cache's tensors until disposed. */
export class CachedForwardSession implements DecodingSession {
  /** Runs tfjs ops. */
  readonly kind = "tfjs";
  private cache: KVCache | null = null;
  private mask: number[][] = [];

  /** @param model the model whose incremental step runs. */
  constructor(private readonly model: IncrementalCausalLM) {}

  /** The prompts in one step; their last positions' logits. */
  prefill(inputIds: number[][], attentionMask: number[][], positionIds: number[][]): Promise<Float32Array> {
    this.mask = attentionMask.map((row) => row.slice());
    return this.run(inputIds, positionIds);
  }

  /** One token per row, its mask column 1. */
  step(tokenIds: number[], positions: number[]): Promise<Float32Array> {
    for (const row of this.mask) row.push(1);
    return this.run(
      tokenIds.map((id) => [id]),
      positions.map((p) => [p]),
    );
  }

  /** Free the cache's tensors. */
  dispose(): void {
    this.cache?.dispose();
    this.cache = null;
  }

  private async run(inputIds: number[][], positionIds: number[][]): Promise<Float32Array> {
    const out = this.model.forwardWithCache({
      inputIds,
      attentionMask: this.mask,
      positionIds,
      pastKeyValues: this.cache,
      lastPositionOnly: true,
    });
    this.cache?.dispose();
    this.cache = out.pastKeyValues;
    try {
      return (await out.logits.data()) as Float32Array;
    } finally {
      out.logits.dispose();
    }
  }
}
