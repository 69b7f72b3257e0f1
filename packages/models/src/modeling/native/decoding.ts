/**
 * The native decode step as a {@link DecodingSession} (issue 16): `generate()` on the fast path runs the
 * prompts through the fused forward into a preallocated KV cache, then one native call per token for the
 * whole model, on the decoder's weights in place (the layout of `layout.ts`) with its LoRA adapters
 * unmerged. Sampling stays in `generate()`, so the tokens for a seed are the tfjs path's.
 *
 * It applies where the fused decoder does (see `accelerator.ts`) computing in float32 (`computeDtype:
 * "bfloat16"` decodes with the tfjs ops), and when no LoRA dropout would apply (generation runs outside a
 * gradient tape, so `"auto"` dropout is off; `"train"` mode makes it decline). 16-bit stored weights (a
 * model loaded with `dtype: "bfloat16"`) are bound as the fused decoder takes them: their packs for float32
 * products (the same packs training uses; with `packedStorage` the only copy of the bits) and the bf16
 * embedding as its bits.
 * The native session, its cache and its logits buffer go back to a pool per decoder when the session is
 * disposed, so repeated generations allocate nothing new.
 * @module
 */
import type { DecodingSession } from "../../generation/session.js";
import type { DecoderModules } from "../decoder/accelerator.js";
import { activeDecoderAddon, type DecoderAddon, type DecoderWeight } from "./addon.js";
import { float32Arrays, layoutArrays } from "./layout.js";
import { slotWeights } from "./packs.js";
import { type DecodeHandle, type NativeDecoderState, nativeStateOf } from "./state.js";

class NativeDecodingSession implements DecodingSession {
  readonly kind = "native";
  private handle: DecodeHandle | undefined;
  private batch = 0;

  constructor(
    private readonly addon: DecoderAddon,
    private readonly state: NativeDecoderState,
    handle: DecodeHandle,
    private readonly capacity: number,
    private readonly vocab: number,
    /** The arrays and packs the native session reads in place, kept alive while it may. */
    readonly bound: ReadonlyArray<ReadonlyArray<DecoderWeight> | null>,
  ) {
    this.handle = handle;
  }

  async prefill(inputIds: number[][], attentionMask: number[][], positionIds: number[][]): Promise<Float32Array> {
    const handle = this.live();
    this.batch = inputIds.length;
    const seqLen = inputIds[0]!.length;
    this.addon.decodePrefill(
      handle.session,
      Int32Array.from(inputIds.flat()),
      Int32Array.from(attentionMask.flat()),
      Int32Array.from(positionIds.flat()),
      this.batch,
      seqLen,
      this.capacity,
      handle.logits,
    );
    return handle.logits.subarray(0, this.batch * this.vocab);
  }

  async step(tokenIds: number[], positions: number[]): Promise<Float32Array> {
    const handle = this.live();
    this.addon.decodeStep(handle.session, Int32Array.from(tokenIds), Int32Array.from(positions), handle.logits);
    return handle.logits.subarray(0, this.batch * this.vocab);
  }

  dispose(): void {
    if (this.handle === undefined) return;
    this.state.releaseDecoder(this.handle);
    this.handle = undefined;
  }

  private live(): DecodeHandle {
    if (this.handle === undefined) throw new Error("native decoding: the session has been disposed");
    return this.handle;
  }
}

/**
 * A native decoding session for `decoder` (`batch` rows, up to `capacity` columns), or undefined when the
 * decode step does not apply: no native engine or addon, bf16 compute, a module the fused decoder does not
 * run, or LoRA dropout that would apply now.
 */
export function startNativeDecoding(
  decoder: DecoderModules,
  batch: number,
  capacity: number,
): DecodingSession | undefined {
  const active = activeDecoderAddon();
  // The decode step computes in float32 (bf16 compute decodes on tfjs ops).
  if (active === undefined || decoder.computeDtype !== "float32") return undefined;
  const collected = layoutArrays(decoder, active.layout);
  if (collected === undefined) return undefined;
  const { loraVariables, loraShape, adapters } = collected;
  // Without drawing a seed: a dropout that applies now (or may: a description that cannot say) declines.
  if (adapters.some((a) => a !== null && a.dropout > 0 && a.dropoutApplies?.() !== false)) return undefined;
  const loraWeights = float32Arrays(loraVariables);
  if (loraWeights === undefined) return undefined;
  const weights = slotWeights(active.addon, collected, "float32", decoder.packedStorage);
  if (weights === undefined) return undefined;
  const adapted = adapters.some((a) => a !== null);
  const state = nativeStateOf(decoder);
  const vocab = decoder.config.vocabSize;
  const handle = state.takeDecoder(active.addon, batch * vocab);
  try {
    if (adapted) active.addon.decodeBind(handle.session, weights, loraWeights, loraShape);
    else active.addon.decodeBind(handle.session, weights);
  } catch (err) {
    state.releaseDecoder(handle);
    throw err;
  }
  return new NativeDecodingSession(active.addon, state, handle, capacity, vocab, [
    weights,
    adapted ? loraWeights : null,
  ]);
}
