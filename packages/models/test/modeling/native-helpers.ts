import { nativeBlasStatus } from "@prefkit/core";
import { nativeDecoderStatus } from "@prefkit/models";

/**
 * Whether tests of the fused native decoder skip here: when core's addon or the decoder's is not built,
 * with a warning naming why; never under CI=true or PREFKIT_NATIVE=1, where they run (and fail without
 * the addons).
 */
export function skipWithoutNativeDecoder(what: string): boolean {
  const engine = nativeBlasStatus();
  const status = engine.available ? nativeDecoderStatus() : engine;
  const skip = !status.available && process.env.CI !== "true" && process.env.PREFKIT_NATIVE !== "1";
  if (skip) console.warn(`${what} skipped: ${status.reason}`);
  return skip;
}
