/**
 * The "loss stuck at ln 2" warning of DPO (trl-parity.md, pitfalls): a callback that watches training logs.
 * @module
 */
import type { Callback, LogPayload } from "@prefkit/core";

/** Options of the "loss stuck at ln 2" warning. */
export interface Ln2WarningOptions {
  /** Consecutive logged training losses within `tolerance` of ln 2 before warning. Default 10. */
  consecutiveLogs?: number;
  /** Distance to ln 2 that counts as "at ln 2". Default 1e-4. */
  tolerance?: number;
}

/** The watch record (checkpointed, so a resumed run keeps counting). */
export interface Ln2WarningState {
  /** Consecutive logged training losses within tolerance of ln 2. */
  consecutive: number;
  /** True once the warning was emitted. */
  warned: boolean;
  /** Global step at which it was emitted, or null. */
  step: number | null;
}

/**
 * Warns once when the logged training loss has stayed at ln 2 for `consecutiveLogs` logs: policy and
 * reference are then the same weights (adapter never attached, reference sharing the trainable variables,
 * or log-probs unused). Only logs carrying `loss` (training logs) count.
 */
export class Ln2WarningCallback implements Callback {
  /** Key of its state in checkpoints. */
  readonly name = "Ln2WarningCallback";
  /** The current record. */
  record: Ln2WarningState = { consecutive: 0, warned: false, step: null };

  /**
   * @param warn where the warning goes.
   * @param options thresholds.
   */
  constructor(
    private readonly warn: (message: string) => void,
    private readonly options: Ln2WarningOptions = {},
  ) {}

  /** Count a training log at ln 2, warn once. */
  onLog(_args: unknown, state: { globalStep: number }, _control: unknown, payload: LogPayload): void {
    const loss = payload.logs["loss"];
    if (typeof loss !== "number") return;
    const need = this.options.consecutiveLogs ?? 10;
    const tol = this.options.tolerance ?? 1e-4;
    const rec = this.record;
    rec.consecutive = Math.abs(loss - Math.LN2) <= tol ? rec.consecutive + 1 : 0;
    if (!rec.warned && rec.consecutive >= need) {
      rec.warned = true;
      rec.step = state.globalStep;
      this.warn(
        `DPOTrainer: the loss has stayed at ln 2 = ${Math.LN2.toFixed(6)} (±${tol}) for ${rec.consecutive} consecutive logs ` +
          `(step ${state.globalStep}): policy and reference may be the same weights (adapter never attached, ` +
          "reference sharing the trainable variables, or log-probs unused)",
      );
    }
  }

  /** The record, for checkpoints. */
  getState(): Ln2WarningState {
    return { ...this.record };
  }

  /** Restore a checkpointed record. */
  loadState(state: unknown): void {
    this.record = { ...(state as Ln2WarningState) };
  }
}
