// A tiny CausalLM for trainer tests: embedding + frozen bias + LM head, saved as float32 safetensors.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { writeSafetensors } from "../../src/checkpoint/safetensors.js";
import { tf } from "../../src/engine/tf.js";
import type { BaseModelConfig, CausalLM, CausalLMOutput, ForwardInputs } from "../../src/interfaces/model.js";
import type { Callback } from "../../src/interfaces/callback.js";
import type { ComputeLossContext, StepOutput, TaskContext, TrainingTask } from "../../src/interfaces/task.js";
import type { BatchSource, TrainingArgs } from "../../src/interfaces/trainer.js";
import { Rng } from "../../src/rng/index.js";
import { Trainer } from "../../src/trainer/trainer.js";

export const VOCAB = 7;
export const HIDDEN = 4;

export class TinyLM implements CausalLM {
  readonly config: BaseModelConfig = {
    model_type: "tiny",
    vocab_size: VOCAB,
    hidden_size: HIDDEN,
    num_hidden_layers: 0,
  };
  readonly embed: tf.Variable;
  readonly frozen: tf.Variable;
  readonly head: tf.Variable;

  constructor(seed = 1) {
    const r = new Rng(seed);
    const init = (n: number) => Float32Array.from({ length: n }, () => r.normal() * 0.5);
    this.embed = tf.tidy(() => tf.variable(tf.tensor2d(init(VOCAB * HIDDEN), [VOCAB, HIDDEN]), true));
    this.frozen = tf.tidy(() => tf.variable(tf.tensor1d(init(HIDDEN)), false));
    this.head = tf.tidy(() => tf.variable(tf.tensor2d(init(HIDDEN * VOCAB), [HIDDEN, VOCAB]), true));
  }

  forward(inputs: ForwardInputs): CausalLMOutput {
    return tf.tidy(() => {
      const ids =
        inputs.inputIds instanceof tf.Tensor ? inputs.inputIds : tf.tensor2d(inputs.inputIds, undefined, "int32");
      const [b, t] = ids.shape;
      const h = tf.add(tf.gather(this.embed, tf.reshape(ids, [-1])), this.frozen);
      return { logits: tf.reshape(tf.matMul(h, this.head), [b, t, VOCAB]) as tf.Tensor3D };
    });
  }

  namedParameters(): Map<string, tf.Variable> {
    return new Map([
      ["model.embed_tokens.weight", this.embed],
      ["model.frozen_bias", this.frozen],
      ["lm_head.weight", this.head],
    ]);
  }

  trainableVariables(): tf.Variable[] {
    return [this.embed, this.head];
  }

  async savePretrained(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "config.json"), JSON.stringify(this.config));
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [k, v] of this.namedParameters()) tensors.set(k, { shape: v.shape, data: v.dataSync() as Float32Array });
    await writeSafetensors(join(dir, "model.safetensors"), tensors);
  }

  dispose(): void {
    for (const v of this.namedParameters().values()) v.dispose();
  }
}

/** Rows of next-token data: ids and their labels. */
export interface Row {
  ids: number[];
  labels: number[];
}
export type Batch = Row[];

export function makeRows(n: number, len = 3, seed = 5): Row[] {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => {
    const ids = Array.from({ length: len }, () => r.int(VOCAB));
    return { ids, labels: ids.map((x) => (x * 3 + 1) % VOCAB) };
  });
}

/** Mean token cross-entropy as a task; optional noise from the trainer's RNG exercises it on resume. */
export class TinyTask implements TrainingTask<Batch> {
  readonly name = "tiny";
  noise = false;
  /** Replaces the loss of the micro-batches of optimizer step `step` (1-based), e.g. to poison one step. */
  lossHook: ((loss: tf.Scalar, step: number, training: boolean) => tf.Scalar) | undefined;
  private context: TaskContext | undefined;
  constructor(readonly model: TinyLM) {}
  prepare(context: TaskContext): void {
    this.context = context;
  }
  compute(batch: Batch, ctx: ComputeLossContext): StepOutput {
    const { logits } = this.model.forward({ inputIds: batch.map((r) => r.ids) });
    let lp = tf.logSoftmax(logits);
    if (this.noise && ctx.training)
      lp = tf.mul(lp, tf.randomUniform(lp.shape, 0.9, 1.1, "float32", this.context!.rng.seed()));
    const onehot = tf.oneHot(
      tf.tensor2d(
        batch.map((r) => r.labels),
        undefined,
        "int32",
      ),
      VOCAB,
    );
    let loss = tf.neg(tf.mean(tf.sum(tf.mul(lp, onehot), -1))) as tf.Scalar;
    if (this.lossHook) loss = this.lossHook(loss, (this.context?.state.globalStep ?? 0) + 1, ctx.training);
    const acc = tf.mean(tf.cast(tf.equal(tf.argMax(logits, -1), tf.argMax(onehot, -1)), "float32")) as tf.Scalar;
    return {
      loss,
      metrics: { mean_token_accuracy: acc, rows: batch.length },
      numTokens: batch.length * batch[0]!.ids.length,
    };
  }
  batchWeight(batch: Batch): number {
    return batch.length;
  }
}

/** The generic trainer on a {@link TinyTask} (positional arguments keep the tests short). */
export class TinyTrainer extends Trainer<Batch> {
  constructor(
    args: Partial<TrainingArgs>,
    model: TinyLM,
    trainData: BatchSource<Batch>,
    evalData?: BatchSource<Batch>,
    callbacks: Callback[] = [],
    warn?: (message: string) => void,
  ) {
    const task = new TinyTask(model);
    super({ args, model, task, trainData, ...(evalData ? { evalData } : {}), callbacks, ...(warn ? { warn } : {}) });
  }
  set noise(on: boolean) {
    (this.task as TinyTask).noise = on;
  }
  /** See {@link TinyTask.lossHook}. */
  set lossHook(hook: TinyTask["lossHook"]) {
    (this.task as TinyTask).lossHook = hook;
  }
}

export function weightsOf(model: TinyLM): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [k, v] of model.namedParameters()) out[k] = Array.from(v.dataSync());
  return out;
}
