import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseTrainerState, serializePrefkitState, serializeTrainerState } from "../callbacks/state.js";
import { tf } from "../engine/tf.js";
import { CheckpointError } from "../errors/index.js";
import type { TrainerControl, TrainerState } from "../interfaces/callback.js";
import type { TrainableModel } from "../interfaces/task.js";
import type { LRScheduler, LRSchedulerState } from "../optim/schedules.js";
import type { Rng, RngState } from "../rng/index.js";
import { TRAINER_STATE_NAME, writeDirAtomically } from "./atomic.js";
import { type RawTensor, readSafetensors, writeSafetensors } from "./safetensors.js";

/** File names inside `checkpoint-N/` (besides what `CausalLM.savePretrained` writes). */
export const CHECKPOINT_FILES = {
  optimizer: "optimizer.safetensors",
  scheduler: "scheduler.json",
  trainerState: TRAINER_STATE_NAME,
  prefkitState: "prefkit_state.json",
  rng: "rng_state.json",
  trainingArgs: "training_args.json",
} as const;

/** What a training checkpoint holds. */
export interface TrainingCheckpoint {
  /** The model; its `savePretrained` writes the weights in HF layout at the checkpoint root. */
  model: TrainableModel;
  /** The optimizer; its `getWeights()` are stored by parameter name. */
  optimizer: tf.Optimizer;
  /** The learning-rate schedule. */
  scheduler?: LRScheduler;
  /** Trainer state (`trainer_state.json`, and what transformers' layout cannot hold in `prefkit_state.json`). */
  state: TrainerState;
  /** The loop's control flags, saved as transformers does (`stateful_callbacks.TrainerControl`). */
  control?: TrainerControl;
  /** The trainer's RNG. */
  rng?: Rng;
  /** The run config, saved as `training_args.json` for humans. */
  args?: object;
}

function varToParamNames(model: TrainableModel): Map<string, string> {
  const out = new Map<string, string>();
  for (const [param, v] of model.namedParameters()) if (!out.has(v.name)) out.set(v.name, param);
  return out;
}

/** Map `<tfjsVariable>/<slot>` to `<paramName>/<slot>` (or back) using `names`. */
function renameSlot(name: string, names: Map<string, string>): string {
  const cut = name.lastIndexOf("/");
  if (cut < 0) return name;
  let prefix = name.slice(0, cut);
  // tfjs variable names may themselves contain "/": try the longest matching prefix.
  for (let i = cut; i > 0; i = name.lastIndexOf("/", i - 1)) {
    prefix = name.slice(0, i);
    const mapped = names.get(prefix);
    if (mapped !== undefined) return mapped + name.slice(i);
  }
  return name;
}

/** JSON as Python's `json.dumps(indent=2, sort_keys=True)` lays it out (transformers' files). */
function sortedJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (typeof v !== "object" || v === null) return v;
    const o = v as Record<string, unknown>;
    return Object.fromEntries(
      Object.keys(o)
        .sort()
        .map((k) => [k, sort(o[k])]),
    );
  };
  return `${JSON.stringify(sort(value), null, 2)}\n`;
}

/**
 * Write `finalDir` (`.../checkpoint-N`) atomically: model files via `savePretrained`, then
 * `optimizer.safetensors`, `scheduler.json`, `rng_state.json`, `training_args.json`,
 * `prefkit_state.json` and, last, `trainer_state.json` (exactly transformers' `TrainerState` fields).
 * A process killed at any point leaves either the previous complete checkpoint or the new complete
 * one, never a half-written `checkpoint-N`.
 */
export async function saveTrainingCheckpoint(finalDir: string, ckpt: TrainingCheckpoint): Promise<void> {
  await writeDirAtomically(finalDir, async (dir) => {
    await ckpt.model.savePretrained(dir);
    const names = varToParamNames(ckpt.model);
    const weights = await ckpt.optimizer.getWeights();
    const raw = new Map<string, RawTensor>();
    try {
      for (const { name, tensor } of weights) {
        const data =
          tensor.dtype === "int32" ? new Int32Array(await tensor.data()) : new Float32Array(await tensor.data());
        raw.set(renameSlot(name, names), { shape: tensor.shape, data });
      }
    } finally {
      for (const { tensor } of weights) if (!(tensor instanceof tf.Variable)) tensor.dispose();
    }
    await writeSafetensors(join(dir, CHECKPOINT_FILES.optimizer), raw, {
      optimizer: (ckpt.optimizer.constructor as { className?: string }).className ?? "unknown",
    });
    if (ckpt.scheduler) {
      await writeFile(join(dir, CHECKPOINT_FILES.scheduler), JSON.stringify(ckpt.scheduler.state(), null, 2));
    }
    if (ckpt.rng) await writeFile(join(dir, CHECKPOINT_FILES.rng), JSON.stringify(ckpt.rng.getState()));
    if (ckpt.args) await writeFile(join(dir, CHECKPOINT_FILES.trainingArgs), JSON.stringify(ckpt.args, null, 2));
    await writeFile(join(dir, CHECKPOINT_FILES.prefkitState), sortedJson(serializePrefkitState(ckpt.state)));
    const options = ckpt.control ? { control: ckpt.control } : {};
    await writeFile(join(dir, CHECKPOINT_FILES.trainerState), sortedJson(serializeTrainerState(ckpt.state, options)));
  });
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new CheckpointError("cannot read file", { file }, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CheckpointError("not valid JSON", { file }, { cause: e });
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
 * Assign every parameter of `model` from the safetensors files in `dir` (`model.safetensors`,
 * a sharded `model.safetensors.index.json`, or `adapter_model.safetensors`). Parameters the
 * files do not hold are left as they are unless they are trainable, which is an error: a
 * resumed run would silently restart them. Exact resumption needs `savePretrained` to write
 * the trainable weights in float32.
 */
export async function loadModelWeights(model: TrainableModel, dir: string): Promise<void> {
  const files: string[] = [];
  const index = join(dir, "model.safetensors.index.json");
  if (await isFile(index)) {
    const map = ((await readJson(index)) as { weight_map?: Record<string, string> }).weight_map ?? {};
    files.push(...new Set(Object.values(map)));
  } else {
    for (const f of ["model.safetensors", "adapter_model.safetensors"]) if (await isFile(join(dir, f))) files.push(f);
  }
  if (files.length === 0) throw new CheckpointError("no model weights (model.safetensors) found", { file: dir });
  const tensors = new Map<string, RawTensor>();
  for (const f of files) for (const [k, v] of await readSafetensors(join(dir, f))) tensors.set(k, v);
  const trainable = new Set(model.trainableVariables());
  const done = new Set<tf.Variable>();
  for (const [name, variable] of model.namedParameters()) {
    if (done.has(variable)) continue;
    const t = tensors.get(name);
    if (!t) {
      if (trainable.has(variable)) throw new CheckpointError("trainable weight missing", { file: dir, tensor: name });
      continue;
    }
    if (t.shape.join(",") !== variable.shape.join(",")) {
      throw new CheckpointError(`shape [${t.shape}] does not match the model's [${variable.shape}]`, {
        file: dir,
        tensor: name,
      });
    }
    tf.tidy(() => variable.assign(tf.tensor(t.data, t.shape, variable.dtype)));
    done.add(variable);
  }
}

/** What {@link loadTrainingCheckpoint} restores into. */
export interface RestoreTargets {
  /** The model whose weights are overwritten. */
  model: TrainableModel;
  /** The optimizer whose state is replaced. */
  optimizer: tf.Optimizer;
  /** The schedule whose step count is restored. */
  scheduler?: LRScheduler;
  /** The RNG whose state is restored. */
  rng?: Rng;
}

/**
 * Restore model weights, optimizer state, schedule and RNG from `dir` and return the saved
 * {@link TrainerState}. Throws a {@link CheckpointError} naming the file on any problem.
 *
 * Checkpoints written before `prefkit_state.json` existed (their `trainer_state.json` carried
 * `rng_state`, `num_update_steps_per_epoch` and prefkit's own `stateful_callbacks` layout) resume the
 * same way: those keys are still read when `prefkit_state.json` is absent.
 */
export async function loadTrainingCheckpoint(dir: string, targets: RestoreTargets): Promise<TrainerState> {
  const prefkitFile = join(dir, CHECKPOINT_FILES.prefkitState);
  const state = parseTrainerState(
    await readJson(join(dir, CHECKPOINT_FILES.trainerState)),
    join(dir, CHECKPOINT_FILES.trainerState),
    (await isFile(prefkitFile)) ? await readJson(prefkitFile) : undefined,
    prefkitFile,
  );
  await loadModelWeights(targets.model, dir);

  const optFile = join(dir, CHECKPOINT_FILES.optimizer);
  const raw = await readSafetensors(optFile);
  const paramToVar = new Map<string, string>();
  for (const [param, v] of targets.model.namedParameters()) paramToVar.set(param, v.name);
  const named = [...raw.entries()].map(([name, t]) => ({
    name: renameSlot(name, paramToVar),
    tensor: tf.tensor(t.data, t.shape, t.data instanceof Int32Array ? "int32" : "float32"),
  }));
  // tfjs optimizers expect the iteration count first.
  named.sort((a, b) => (a.name === "iter" ? -1 : b.name === "iter" ? 1 : 0));
  try {
    await targets.optimizer.setWeights(named);
  } catch (e) {
    throw new CheckpointError("optimizer state does not fit this optimizer", { file: optFile }, { cause: e });
  } finally {
    for (const n of named) n.tensor.dispose();
  }

  if (targets.scheduler) {
    const file = join(dir, CHECKPOINT_FILES.scheduler);
    targets.scheduler.loadState((await readJson(file)) as LRSchedulerState, file);
  }
  if (targets.rng) {
    const file = join(dir, CHECKPOINT_FILES.rng);
    try {
      targets.rng.setState((await readJson(file)) as RngState);
    } catch (e) {
      if (e instanceof CheckpointError) throw e;
      throw new CheckpointError("invalid RNG state", { file }, { cause: e });
    }
  }
  return state;
}
