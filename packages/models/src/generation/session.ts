/**
 * The decoding state of one generation: the prompts' prefill, then one token per row per step over a
 * KV cache, each call returning every row's next-token logits. `generate()` runs its loop (token choice,
 * stops, streaming) over whichever session the model offers: the native decode step of the fast path
 * (`modeling/native/decoding.ts`), or {@link CachedForwardSession}, tfjs ops over `forwardWithCache`.
 * @module
 */

/** One generation's prefill and decoding steps (see the module notes). */
export interface DecodingSession {
  /** Short name for logs and tests (`"native"`, `"tfjs"`). */
  readonly kind: string;
  /**
   * Run the left-padded prompts `[B, T]` (mask: 1 real, 0 padding; positions `cumsum(mask) − 1`, as
   * `generate()` builds them) into the cache. Resolves to the logits of each row's last position,
   * row-major `[B·V]`, valid until the next call.
   */
  prefill(inputIds: number[][], attentionMask: number[][], positionIds: number[][]): Promise<Float32Array>;
  /** Append one token per row at its rotary position; resolves to the logits `[B·V]`, valid until the next call. */
  step(tokenIds: number[], positions: number[]): Promise<Float32Array>;
  /** Release the cache (the native session returns its buffers to a pool for the next generation). Idempotent. */
  dispose(): void;
}
