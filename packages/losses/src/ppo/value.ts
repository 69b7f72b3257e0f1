/**
 * The value function of PPO: either a separate value model (TRL's default, a copy of the reward model
 * read at every position) or a scalar head on the policy's own hidden states, how a run picks one
 * ({@link selectValueFunction}), and the policy+value pair the trainer optimises and checkpoints as one model.
 * @module
 */
import { open, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type CausalLM,
  type CausalLMOutput,
  CheckpointError,
  ConfigError,
  type ForwardInputs,
  gradientCheckpointingOver,
  isSequenceClassifier,
  Rng,
  type SequenceClassifier,
  tf,
  writeSafetensors,
} from "@prefkit/core";
import type { PPOValueHeadKind } from "./config.js";
import type { PPORewardSource } from "./reward-function.js";

/** Tensor names of the scalar value head, as TRL's `AutoModelForCausalLMWithValueHead` saves them. */
export const VALUE_HEAD_WEIGHT_NAME = "v_head.summary.weight";
/** Bias of the scalar value head. */
export const VALUE_HEAD_BIAS_NAME = "v_head.summary.bias";
/** Prefix of the value model's tensors inside a PPO checkpoint (as TRL's `PolicyAndValueWrapper.value_model`). */
export const VALUE_MODEL_PREFIX = "value_model.";
/** File holding the value head in a PPO checkpoint. */
export const VALUE_HEAD_FILE = "value_head.safetensors";
/** File holding the value model in a PPO checkpoint. */
export const VALUE_MODEL_FILE = "value_model.safetensors";

/**
 * A scalar value head: Linear(hidden → 1) with bias (TRL's `ValueHead.summary`), initialised like
 * torch's `nn.Linear` (uniform ±1/√hidden) from a seeded generator.
 */
export class ScalarValueHead {
  /** `[1, hidden]`. */
  readonly weight: tf.Variable;
  /** `[1]`. */
  readonly bias: tf.Variable;

  /**
   * @param hiddenSize width of the hidden states it reads.
   * @param rng generator of the initial weights.
   */
  constructor(
    readonly hiddenSize: number,
    rng: Rng,
  ) {
    const bound = 1 / Math.sqrt(hiddenSize);
    const draw = (n: number) => Float32Array.from({ length: n }, () => (2 * rng.next() - 1) * bound);
    const w = tf.tensor2d(draw(hiddenSize), [1, hiddenSize]);
    const b = tf.tensor1d(draw(1));
    this.weight = tf.variable(w, true);
    this.bias = tf.variable(b, true);
    w.dispose();
    b.dispose();
  }

  /** V per position, `[B, T]`, from hidden states `[B, T, hidden]`. Differentiable. */
  apply(hidden: tf.Tensor3D): tf.Tensor2D {
    return tf.tidy(() => {
      const [b, t, h] = hidden.shape;
      const flat = tf.reshape(hidden, [b * t, h]);
      const v = tf.add(tf.matMul(flat, this.weight, false, true), this.bias);
      return tf.reshape(v, [b, t]) as tf.Tensor2D;
    });
  }

  /** `v_head.summary.weight` and `v_head.summary.bias`. */
  namedParameters(): Map<string, tf.Variable> {
    return new Map([
      [VALUE_HEAD_WEIGHT_NAME, this.weight],
      [VALUE_HEAD_BIAS_NAME, this.bias],
    ]);
  }

  /** Free the two variables. */
  dispose(): void {
    this.weight.dispose();
    this.bias.dispose();
  }
}

/** A policy whose `forward` can also return HF's `hidden_states` (e.g. `PreTrainedModelForCausalLM`). */
type HiddenStatesForward = (
  inputs: ForwardInputs,
  options: { outputHiddenStates: boolean },
) => CausalLMOutput & { hiddenStates?: tf.Tensor3D[] };

/** Logits and values of one pass (see {@link PolicyAndValueModel.forwardWithValues}). */
export interface PolicyValueOutput {
  /** Policy logits `[B, T, V]`. */
  logits: tf.Tensor3D;
  /** V per position `[B, T]`. */
  values: tf.Tensor2D;
}

/** The value function of a {@link PolicyAndValueModel}. */
export type ValueSource = { kind: "policy"; head: ScalarValueHead } | { kind: "model"; model: SequenceClassifier };

async function safetensorsKeys(path: string): Promise<string[]> {
  const fh = await open(path, "r");
  try {
    const len = Buffer.alloc(8);
    await fh.read(len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    const header = Buffer.alloc(n);
    await fh.read(header, 0, n, 8);
    return Object.keys(JSON.parse(header.toString("utf8")) as object).filter((k) => k !== "__metadata__");
  } catch (e) {
    throw new CheckpointError("cannot read the safetensors header", { file: path }, { cause: e });
  } finally {
    await fh.close();
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/**
 * The policy and its value function as ONE model (TRL's `PolicyAndValueWrapper`): the trainer's optimizer
 * updates `trainableVariables()` of both, and checkpoints save and restore both.
 *
 * `savePretrained(dir)` writes the policy exactly as `policy.savePretrained` does (so the directory loads
 * as the policy in transformers and prefkit), then the value weights into `value_head.safetensors`
 * (`v_head.summary.*`) or `value_model.safetensors` (`value_model.*`), and a `model.safetensors.index.json`
 * mapping every tensor to its file, which is what a resumed run reads (transformers prefers
 * `model.safetensors` when both exist).
 */
export class PolicyAndValueModel implements CausalLM {
  /** The policy's config. */
  readonly config: CausalLM["config"];

  /**
   * @param policy the policy being trained.
   * @param value the value function (a head on the policy, or a separate model).
   */
  constructor(
    readonly policy: CausalLM,
    readonly value: ValueSource,
  ) {
    this.config = policy.config;
    if (value.kind === "model" && value.model.numLabels !== 1) {
      throw new ConfigError(`a value model needs numLabels = 1, got ${value.model.numLabels}`, { field: "valueModel" });
    }
  }

  /** Gradient checkpointing of the policy, and of a separate value model. */
  private readonly checkpointing = gradientCheckpointingOver(() =>
    this.value.kind === "model" ? [this.policy, this.value.model] : [this.policy],
  );
  /** Keep only each layer's input in training forward passes (policy and value model). */
  gradientCheckpointingEnable(): void {
    this.checkpointing.gradientCheckpointingEnable();
  }
  /** Keep every activation again. */
  gradientCheckpointingDisable(): void {
    this.checkpointing.gradientCheckpointingDisable();
  }
  /** Whether the policy checkpoints. */
  get isGradientCheckpointing(): boolean {
    return this.checkpointing.isGradientCheckpointing;
  }

  /** Which kind of value function this is. */
  get valueHeadKind(): PPOValueHeadKind {
    return this.value.kind;
  }

  /** The policy's forward pass. */
  forward(inputs: ForwardInputs): CausalLMOutput {
    return this.policy.forward(inputs);
  }

  /**
   * Policy logits and V per position. With a policy head this is ONE body pass (the final hidden states
   * feed both the LM head and the value head); with a value model it is the policy forward plus the value
   * model's. Differentiable.
   * @throws ConfigError when a policy head is used on a policy that exposes no hidden states.
   */
  forwardWithValues(inputs: ForwardInputs): PolicyValueOutput {
    return tf.tidy(() => {
      if (this.value.kind === "model") {
        const logits = this.policy.forward(inputs).logits;
        const v = this.value.model.forwardTokens(inputs);
        return { logits, values: tf.squeeze(v, [2]) as tf.Tensor2D };
      }
      const out = (this.policy.forward as HiddenStatesForward).call(this.policy, inputs, { outputHiddenStates: true });
      const hidden = out.hiddenStates?.at(-1);
      if (hidden === undefined) {
        throw new ConfigError(
          'valueHead "policy" needs a policy whose forward(inputs, { outputHiddenStates: true }) returns hiddenStates ' +
            '(PreTrainedModelForCausalLM does); use valueHead "model" otherwise',
          { field: "valueHead" },
        );
      }
      return { logits: out.logits, values: this.value.head.apply(hidden) };
    });
  }

  /** V per position `[B, T]` (rollout values). */
  values(inputs: ForwardInputs): tf.Tensor2D {
    return tf.tidy(() => {
      if (this.value.kind === "model") return tf.squeeze(this.value.model.forwardTokens(inputs), [2]) as tf.Tensor2D;
      return this.forwardWithValues(inputs).values;
    });
  }

  /** Value weights by checkpoint name (`v_head.summary.*` or `value_model.*`). */
  valueParameters(): Map<string, tf.Variable> {
    if (this.value.kind === "policy") return this.value.head.namedParameters();
    const out = new Map<string, tf.Variable>();
    for (const [k, v] of this.value.model.namedParameters()) out.set(VALUE_MODEL_PREFIX + k, v);
    return out;
  }

  /** The policy's parameters, then the value weights. */
  namedParameters(): Map<string, tf.Variable> {
    return new Map([...this.policy.namedParameters(), ...this.valueParameters()]);
  }

  /** Trainable variables of the policy and of the value function. */
  trainableVariables(): tf.Variable[] {
    const value = [...new Set(this.valueParameters().values())].filter((v) => v.trainable);
    return [...new Set([...this.policy.trainableVariables(), ...value])];
  }

  /** Policy files, value file, and the index over both (see the class comment). */
  async savePretrained(dir: string): Promise<void> {
    await this.policy.savePretrained(dir);
    const indexPath = join(dir, "model.safetensors.index.json");
    const weightMap: Record<string, string> = {};
    if (await isFile(indexPath)) {
      Object.assign(
        weightMap,
        (JSON.parse(await readFile(indexPath, "utf8")) as { weight_map?: Record<string, string> }).weight_map,
      );
    } else {
      for (const f of ["model.safetensors", "adapter_model.safetensors"]) {
        if (await isFile(join(dir, f))) for (const k of await safetensorsKeys(join(dir, f))) weightMap[k] = f;
      }
    }
    const file = this.value.kind === "policy" ? VALUE_HEAD_FILE : VALUE_MODEL_FILE;
    const raw = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, v] of this.valueParameters()) {
      raw.set(name, { shape: v.shape, data: (await v.data()) as Float32Array });
      weightMap[name] = file;
    }
    await writeSafetensors(join(dir, file), raw, { format: "pt" });
    await writeFile(indexPath, JSON.stringify({ metadata: {}, weight_map: weightMap }, null, 2));
  }

  /** Frees the value head (a policy head only); the policy and a value model belong to their owners. */
  dispose(): void {
    if (this.value.kind === "policy") this.value.head.dispose();
  }
}

/** What {@link selectValueFunction} chooses from. */
export interface ValueFunctionOptions {
  /** `config.valueHead`. */
  valueHead: PPOValueHeadKind;
  /** The policy (its `hidden_size` sizes a policy head). */
  policy: CausalLM;
  /** The run's reward: a reward model is the default source of a value model. */
  rewardModel: PPORewardSource;
  /** The user's value model, if any. */
  valueModel: SequenceClassifier | undefined;
  /** Seed of a policy head's initial weights. */
  seed: number;
}

/** The chosen value function, and a value model this run made and must dispose. */
export interface ValueFunctionChoice {
  /** The value function. */
  source: ValueSource;
  /** A trainable copy of the reward model made for `valueHead: "model"` (owned by the run). */
  owned?: SequenceClassifier;
}

/**
 * Pick the value function as TRL does: `valueHead: "policy"` is a fresh {@link ScalarValueHead} on the
 * policy (seeded with `seed`); `"model"` is the given `valueModel`, else a trainable `copy()` of the reward
 * model.
 * @throws ConfigError when the value model is the reward model itself, or `"model"` has no source.
 */
export function selectValueFunction(options: ValueFunctionOptions): ValueFunctionChoice {
  const { rewardModel: rm, valueModel } = options;
  if (valueModel !== undefined && valueModel === rm) {
    throw new ConfigError("valueModel is the reward model itself: training V would change the reward; pass a copy", {
      field: "valueModel",
    });
  }
  if (options.valueHead === "policy") {
    const head = new ScalarValueHead(options.policy.config.hidden_size, new Rng(options.seed));
    return { source: { kind: "policy", head } };
  }
  if (valueModel !== undefined) return { source: { kind: "model", model: valueModel } };
  const copyable = rm as Partial<{ copy(o: { trainable?: boolean }): SequenceClassifier }>;
  if (!isSequenceClassifier(rm) || typeof copyable.copy !== "function") {
    throw new ConfigError(
      'valueHead "model" needs a valueModel, or a reward model with copy() to initialise it from (TRL); ' +
        'with a reward function, pass valueModel or set valueHead: "policy"',
      { field: "valueModel" },
    );
  }
  const owned = copyable.copy({ trainable: true });
  return { source: { kind: "model", model: owned }, owned };
}
