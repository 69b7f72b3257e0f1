/**
 * TR-DPO (Gorbatovski et al. 2024, TRL's `sync_ref_model`): every `refModelSyncSteps` optimizer steps the
 * reference is pulled towards the policy, ref ← α·policy + (1 − α)·ref with α = `refModelMixupAlpha`.
 * @module
 */
import {
  type CausalLM,
  type Callback,
  ConfigError,
  gradientCheckpointingOver,
  hasAdapterToggle,
  hasHalfPrecisionWeights,
  type TrainableModel,
  type TrainerState,
  tf,
} from "@prefkit/core";
import { writeExtraWeights } from "../common/extra-weights.js";
import type { DPOConfig } from "./config.js";

/** Checkpoint name prefix of the synced reference's weights. */
export const REF_MODEL_PREFIX = "ref_model.";
/** File of the synced reference's weights in a checkpoint. */
export const REF_MODEL_FILE = "ref_model.safetensors";

/**
 * The soft update of TRL's `SyncRefModelCallback._sync_target_model`
 * (`target.mul_(1 - α).add_(policy, alpha=α)`), in place on the reference's variables, matched by name. A
 * variable that appears under two names (tied embeddings) is updated once.
 * @throws ConfigError when a reference weight has no policy weight of the same name and shape.
 */
export function mixReferenceWeights(policy: CausalLM, reference: CausalLM, alpha: number): void {
  const source = policy.namedParameters();
  const done = new Set<tf.Variable>();
  for (const [name, target] of reference.namedParameters()) {
    if (done.has(target)) continue;
    done.add(target);
    const from = source.get(name);
    if (from === undefined || from.shape.join(",") !== target.shape.join(",")) {
      throw new ConfigError(
        `the reference weight "${name}" has no policy weight of the same name and shape to mix in`,
        {
          field: "syncRefModel",
        },
      );
    }
    tf.tidy(() => target.assign(tf.add(tf.mul(target, 1 - alpha), tf.mul(from, alpha))));
  }
}

/**
 * What TR-DPO syncs: the policy and its separate reference network. Refused, with TRL's message, for a
 * PEFT (LoRA) policy: its reference is the policy with the adapters off, there is no network to sync; and
 * for a reference holding 16-bit weights (not variables: neither mixed nor checkpointed by TR-DPO).
 * @param reference the separate reference network (`ReferenceSource.model`), or undefined for a
 *   reference-free loss (nothing to sync).
 */
export function syncTarget(policy: CausalLM, reference: CausalLM | undefined): SyncTarget | undefined {
  if (hasAdapterToggle(policy)) {
    throw new ConfigError(
      "You passed `sync_ref_model=True` while using a PEFT model, which is currently not supported. With PEFT, " +
        "DPOTrainer does not keep a separate reference model in memory; instead, it recovers reference behavior " +
        "by temporarily disabling the adapter. As a result, there is no standalone `ref_model` instance to " +
        "synchronize. Use `sync_ref_model=False`, or opt for full fine-tuning if you need a synced reference model.",
      { field: "syncRefModel" },
    );
  }
  if (reference !== undefined && hasHalfPrecisionWeights(reference) && reference.halfPrecisionWeights().size > 0) {
    throw new ConfigError(
      "TR-DPO updates the reference's weights, but this reference keeps frozen weights in 16 bits (the copy of a " +
        'policy loaded with dtype "bfloat16"/"float16"): load the policy with dtype "float32", or pass a float32 refModel',
      { field: "syncRefModel" },
    );
  }
  return reference === undefined ? undefined : { policy, reference };
}

/** A policy and the reference TR-DPO pulls towards it. */
export interface SyncTarget {
  /** The policy being trained. */
  policy: CausalLM;
  /** The separate reference network, updated in place. */
  reference: CausalLM;
}

/**
 * TRL's `SyncRefModelCallback`: on `onStepEnd`, when `globalStep % refModelSyncSteps === 0`, mixes the policy
 * into the reference ({@link mixReferenceWeights}, α = `refModelMixupAlpha`). It keeps no state: the step
 * count is the trainer's, and the reference weights are checkpointed by {@link PolicyWithReference}.
 */
export class SyncRefModelCallback implements Callback<DPOConfig> {
  /** Callback name. */
  readonly name = "SyncRefModelCallback";
  private target: SyncTarget | undefined;

  /** Set what to sync (when the run's reference is resolved). */
  attach(target: SyncTarget | undefined): void {
    this.target = target;
  }

  /** Mix the policy into the reference every `refModelSyncSteps` optimizer steps. */
  onStepEnd(
    args: Readonly<Pick<DPOConfig, "refModelMixupAlpha" | "refModelSyncSteps">>,
    state: Readonly<TrainerState>,
  ): void {
    if (this.target !== undefined && state.globalStep % args.refModelSyncSteps === 0) {
      mixReferenceWeights(this.target.policy, this.target.reference, args.refModelMixupAlpha);
    }
  }
}

/**
 * What a TR-DPO run trains and checkpoints: the policy, plus the synced reference's weights, which are no
 * longer the starting ones and must survive a resume (TRL reloads the reference from its path on resume and
 * so loses the syncs; prefkit continues exactly). The optimizer sees only the policy's variables;
 * `savePretrained` writes the policy as `policy.savePretrained` does, then the reference into
 * `ref_model.safetensors` (`ref_model.*`) and an index over both, which core's checkpoint loader reads.
 */
export class PolicyWithReference implements TrainableModel {
  /**
   * @param policy the policy being trained.
   * @param reference its separate reference network.
   */
  constructor(
    readonly policy: CausalLM,
    readonly reference: CausalLM,
  ) {}

  /** The reference's weights under `ref_model.<name>`. */
  referenceParameters(): Map<string, tf.Variable> {
    return new Map([...this.reference.namedParameters()].map(([k, v]) => [REF_MODEL_PREFIX + k, v]));
  }

  /** The policy's parameters, then the reference's. */
  namedParameters(): Map<string, tf.Variable> {
    return new Map([...this.policy.namedParameters(), ...this.referenceParameters()]);
  }

  /** The policy's trainable variables only. */
  trainableVariables(): tf.Variable[] {
    return this.policy.trainableVariables();
  }

  /** The policy's gradient checkpointing (the reference never runs a backward pass). */
  private readonly checkpointing = gradientCheckpointingOver(() => [this.policy]);
  /** Keep only each layer's input in the policy's training forward passes. */
  gradientCheckpointingEnable(): void {
    this.checkpointing.gradientCheckpointingEnable();
  }
  /** Keep every activation of the policy again. */
  gradientCheckpointingDisable(): void {
    this.checkpointing.gradientCheckpointingDisable();
  }
  /** Whether the policy checkpoints. */
  get isGradientCheckpointing(): boolean {
    return this.checkpointing.isGradientCheckpointing;
  }

  /** Policy files, then the reference file and the index (see the class comment). */
  async savePretrained(dir: string): Promise<void> {
    await this.policy.savePretrained(dir);
    await writeExtraWeights(dir, REF_MODEL_FILE, this.referenceParameters());
  }
}
