/**
 * Evaluation of the generic trainer: every evaluation batch's loss and metrics without gradients, averaged.
 * @module
 */
import { tf } from "../engine/tf.js";
import { ConfigError } from "../errors/index.js";
import type { TaskContext, TrainingTask } from "../interfaces/task.js";
import type { BatchSource } from "../interfaces/trainer.js";
import { stepMetrics } from "./gradient-step.js";

/**
 * Metric values of one evaluation batch: the task's `evaluateBatch` (on-policy tasks score generations), or its
 * loss and metrics without gradients after its no-gradient `beforeStep` pass.
 */
export async function evaluateBatch<TBatch, TMicro>(
  task: TrainingTask<TBatch, TMicro>,
  batch: TBatch,
  context: TaskContext,
): Promise<Record<string, number>> {
  if (task.evaluateBatch) return task.evaluateBatch(batch, context);
  if (task.rollout !== undefined)
    throw new ConfigError(`the ${task.name} task has no evaluation`, { field: "evalDataset" });
  const micro = batch as unknown as TMicro;
  await task.beforeStep?.([micro]);
  return tf.tidy(() => {
    const out = task.compute(micro, { training: false });
    const v: Record<string, number> = { loss: out.loss.dataSync()[0]! };
    for (const [k, m] of Object.entries(stepMetrics(out))) v[k] = typeof m === "number" ? m : m.dataSync()[0]!;
    return v;
  });
}

/**
 * Every metric of `batches` averaged with the task's batch weights (1 for on-policy tasks), named
 * `<prefix>_<name>`. A metric some batches lack (an unpaired batch of one kind) is averaged over those that have it.
 * @param evaluate one batch's values (the trainer's overridable `evaluateBatch`).
 */
export async function averageOverBatches<TBatch, TMicro>(
  task: TrainingTask<TBatch, TMicro>,
  batches: Iterable<TBatch> | AsyncIterable<TBatch>,
  prefix: string,
  evaluate: (batch: TBatch) => Promise<Record<string, number>>,
): Promise<Record<string, number>> {
  const sums = new Map<string, { sum: number; weight: number }>();
  for await (const batch of batches) {
    const w = task.rollout === undefined ? (task.batchWeight?.(batch as unknown as TMicro) ?? 1) : 1;
    for (const [k, v] of Object.entries(await evaluate(batch))) {
      const acc = sums.get(k) ?? { sum: 0, weight: 0 };
      acc.sum += w * v;
      acc.weight += w;
      sums.set(k, acc);
    }
  }
  const metrics: Record<string, number> = {};
  for (const [k, { sum, weight }] of sums) metrics[`${prefix}_${k}`] = sum / weight;
  return metrics;
}

/** The evaluation data, or a ConfigError when there is none. */
export function requireEvalData<TBatch>(data: BatchSource<TBatch> | undefined): BatchSource<TBatch> {
  if (!data) throw new ConfigError("no evaluation data was given", { field: "evalData" });
  return data;
}
