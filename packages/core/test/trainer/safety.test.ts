// Issue 12 regressions for the loop: non-finite steps are never applied or saved, a finished run resumed
// trains nothing, staging directories of a killed run go, output directories are not overwritten, and
// trainer_state.json is exactly transformers' TrainerState.
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectFiniteTensorFiles, fileTree } from "../../../../test/helpers/files.js";
import { readSafetensors } from "../../src/checkpoint/safetensors.js";
import { tf } from "../../src/engine/tf.js";
import { ConfigError, DivergenceError } from "../../src/errors/index.js";
import type { Callback } from "../../src/interfaces/callback.js";
import type { TrainingArgs } from "../../src/interfaces/trainer.js";
import { arrayBatchSource } from "../../src/trainer/batch-source.js";
import { type Batch, makeRows, TinyLM, TinyTrainer, weightsOf } from "./tiny-lm.js";

let root: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  root = await mkdtemp(join(tmpdir(), "prefkit-safety-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A TinyTrainer whose loss is multiplied by `factor` at optimizer step `at` (1-based). */
class PoisonedTrainer extends TinyTrainer {
  at = 0;
  factor = Number.NaN;
  constructor(...args: ConstructorParameters<typeof TinyTrainer>) {
    super(...args);
    this.lossHook = (loss, step, training) =>
      training && step === this.at ? (tf.mul(loss, this.factor) as tf.Scalar) : loss;
  }
}

const source = (n = 8) => arrayBatchSource(makeRows(n), { batchSize: 2, collate: (r: Batch) => r, seed: 3 });

const tree = (dir: string) => fileTree(dir);

/** Every value of every tensor in every `.safetensors` file under `dir`, checked finite; returns the file count. */
const assertAllSavedTensorsFinite = (dir: string) => expectFiniteTensorFiles(dir, readSafetensors);

describe("non-finite steps", () => {
  it("a NaN loss at step 3 with loggingSteps 500 is not applied, nothing is saved after it, and train() names the step", async () => {
    const dir = join(root, "nan");
    const model = new TinyLM(2);
    const t = new PoisonedTrainer({ outputDir: dir, saveSteps: 1, maxSteps: 6, learningRate: 0.05 }, model, source());
    t.at = 3;
    const seen: Array<Record<string, number[]>> = [];
    t.addCallback({ onStepEnd: () => void seen.push(weightsOf(model)) });
    const e = await t.train().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DivergenceError);
    const d = e as DivergenceError;
    expect([d.step, d.metric, Number.isNaN(d.value)]).toEqual([3, "loss", true]);
    expect(d.message).toBe(
      `training diverged at step 3: loss is NaN (grad_norm=NaN); that update was not applied; nothing was saved after it (newest checkpoint: ${join(dir, "checkpoint-2")})`,
    );
    expect(t.state.globalStep).toBe(3); // stopped right there
    expect(seen[2]).toEqual(seen[1]); // step 3 left the weights as step 2 made them
    expect(Object.values(weightsOf(model)).flat().every(Number.isFinite)).toBe(true);
    expect((await readdir(dir)).sort()).toEqual(["checkpoint-1", "checkpoint-2"]);
    expect(await assertAllSavedTensorsFinite(dir)).toBe(4); // model + optimizer per checkpoint
    t.optimizer.dispose();
    model.dispose();
  });

  it("weights that overflow after a finite step are never checkpointed; the run stops there", async () => {
    const dir = join(root, "overflow");
    const model = new TinyLM(2);
    // step 1 runs at lr 0 (warm-up) and is saved; step 2 moves every weight by about 3e38 and overflows
    const args = { outputDir: dir, saveSteps: 1, maxSteps: 5, learningRate: 3e38, warmupSteps: 1 };
    const t = new TinyTrainer({ ...args, lrSchedulerType: "constant_with_warmup" }, model, source());
    const e = await t.train().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DivergenceError);
    expect((e as DivergenceError).message).toBe(
      "training diverged at step 2: the weights are no longer finite (model.embed_tokens.weight has NaN or Infinity) " +
        `after an update; nothing was saved after it (newest checkpoint: ${join(dir, "checkpoint-1")})`,
    );
    expect(await readdir(dir)).toEqual(["checkpoint-1"]);
    expect(await assertAllSavedTensorsFinite(dir)).toBe(2);
    await expect(t.saveCheckpoint()).rejects.toThrow(DivergenceError); // nor by hand
    expect(await readdir(dir)).toEqual(["checkpoint-1"]);
    t.optimizer.dispose();
    model.dispose();
  });

  it("a NanGuard-style veto (a gradient hook) keeps the run going instead", async () => {
    const model = new TinyLM(2);
    const t = new PoisonedTrainer({ outputDir: join(root, "veto"), saveStrategy: "no", maxSteps: 4 }, model, source());
    t.at = 2;
    t.addGradientHook({
      name: "skipper",
      vetoStep: (c) => (Number.isFinite(c.loss) ? undefined : "non-finite"),
    });
    const out = await t.train();
    expect(out.globalStep).toBe(4);
    expect(t.skippedSteps).toEqual([{ step: 2, hook: "skipper", reason: "non-finite" }]);
    expect(t.finiteGuard.divergence).toBeUndefined();
    t.optimizer.dispose();
    model.dispose();
  });

  it("warns once when grad_norm is exactly 0 for several steps while the loss moves, and once when the loss explodes", async () => {
    const warnings: string[] = [];
    const model = new TinyLM(2);
    // loss = 0·Σw + c: every gradient is exactly 0 while the loss follows c
    const losses = [1, 1.5, 2, 30, 31, 32];
    const t = new TinyTrainer(
      { outputDir: join(root, "flat"), saveStrategy: "no", maxSteps: 6 },
      model,
      source(12),
      undefined,
      [],
      (m) => warnings.push(m),
    );
    t.lossHook = (loss, step) => tf.add(tf.mul(loss, 0), losses[step - 1] ?? 0) as tf.Scalar;
    await t.train();
    expect(warnings).toEqual([
      "step 3: grad_norm has been exactly 0 for 3 steps while the loss moved (1 → 2): the gradients vanished (saturated outputs?); the learning rate may be far too high",
      "step 4: loss 30 is more than 10× its first value 1: training is diverging; lower the learning rate",
    ]);
    t.optimizer.dispose();
    model.dispose();
  });
});

describe("resume", () => {
  it("resuming a run that reached maxSteps trains nothing, says so, and changes no file", async () => {
    const dir = join(root, "finished");
    const args: Partial<TrainingArgs> = { outputDir: dir, saveSteps: 2, maxSteps: 3, loggingSteps: 1 };
    const first = new TinyTrainer(args, new TinyLM(2), source());
    await first.train();
    const before = await tree(dir);
    const model = new TinyLM(9);
    const notes: string[] = [];
    const resumed = new TinyTrainer(args, model, source(), undefined, [], (m) => notes.push(m));
    let steps = 0;
    resumed.addCallback({ onStepEnd: () => void steps++ });
    const out = await resumed.train({ resumeFromCheckpoint: true });
    expect([out.globalStep, steps]).toEqual([3, 0]);
    expect(notes).toEqual([
      "resumeFromCheckpoint: the checkpoint is at step 3 and maxSteps is 3: the run has finished; nothing to train",
    ]);
    expect(await tree(dir)).toEqual(before);
    expect(weightsOf(model)).toEqual(weightsOf(first.model as TinyLM)); // the checkpoint's weights, untouched
    for (const t of [first, resumed]) {
      t.optimizer.dispose();
      (t.model as TinyLM).dispose();
    }
  });

  it("removes the staging directories a killed run left, including one whose pid was reused, and nothing else", async () => {
    const dir = join(root, "staging");
    const args: Partial<TrainingArgs> = { outputDir: dir, saveSteps: 2, maxSteps: 4 };
    const stopAt2: Callback = {
      onStepEnd: (_a, s, c) => {
        if (s.globalStep === 2) c.shouldTrainingStop = true;
      },
    };
    const first = new TinyTrainer(args, new TinyLM(2), source(), undefined, [stopAt2]);
    await first.train();
    const deadPid = spawnSync(process.execPath, ["-e", ""]).pid!;
    const stale = [
      `.tmp-checkpoint-3-${deadPid}-${Date.now()}`, // writer gone
      `.tmp-checkpoint-4-${process.pid}-1000`, // our pid, stamped before this process started: a reused pid
      `.del-checkpoint-1-1-1000`, // pid 1 is alive but started after the stamp: reused
    ];
    for (const s of stale) await mkdir(join(dir, s, "sub"), { recursive: true });
    await mkdir(join(dir, ".tmp-notes-1-2")); // not prefkit's naming
    const resumed = new TinyTrainer(args, new TinyLM(2), source());
    await resumed.train({ resumeFromCheckpoint: true });
    expect((await readdir(dir)).sort()).toEqual([".tmp-notes-1-2", "checkpoint-2", "checkpoint-4"]);
    for (const t of [first, resumed]) {
      t.optimizer.dispose();
      (t.model as TinyLM).dispose();
    }
  });

  it("resumes exactly from a checkpoint written before prefkit_state.json existed", async () => {
    const args: Partial<TrainingArgs> = { saveSteps: 3, maxSteps: 6, loggingSteps: 1, learningRate: 0.05 };
    const straight = new TinyTrainer({ ...args, outputDir: join(root, "legacy-straight") }, new TinyLM(1), source());
    straight.noise = true;
    await straight.train();
    const dir = join(root, "legacy");
    const stop: Callback = {
      onStepEnd: (_a, s, c) => {
        if (s.globalStep === 3) c.shouldTrainingStop = true;
      },
    };
    const first = new TinyTrainer({ ...args, outputDir: dir }, new TinyLM(1), source(), undefined, [stop]);
    first.noise = true;
    await first.train();
    // rewrite checkpoint-3 in the old layout: prefkit's keys inside trainer_state.json, no prefkit_state.json
    const ckpt = join(dir, "checkpoint-3");
    const hf = JSON.parse(await readFile(join(ckpt, "trainer_state.json"), "utf8"));
    const own = JSON.parse(await readFile(join(ckpt, "prefkit_state.json"), "utf8"));
    const legacy = { ...hf, num_update_steps_per_epoch: own.num_update_steps_per_epoch, rng_state: own.rng_state };
    legacy.stateful_callbacks = own.stateful_records;
    for (const k of ["is_hyper_param_search", "trial_name", "trial_params"]) delete legacy[k];
    await writeFile(join(ckpt, "trainer_state.json"), JSON.stringify(legacy));
    await rm(join(ckpt, "prefkit_state.json"));
    const model = new TinyLM(99);
    const resumed = new TinyTrainer({ ...args, outputDir: dir }, model, source());
    resumed.noise = true;
    await resumed.train({ resumeFromCheckpoint: true });
    expect(resumed.state.numUpdateStepsPerEpoch).toBe(4);
    expect(weightsOf(model)).toEqual(weightsOf(straight.model as TinyLM));
    for (const t of [straight, first, resumed]) {
      t.optimizer.dispose();
      (t.model as TinyLM).dispose();
    }
  });
});

describe("output directory", () => {
  it("a second fresh run into a run directory is refused, one line naming it, nothing changed; overwriteOutputDir removes only prefkit's files", async () => {
    const dir = join(root, "twice");
    const args: Partial<TrainingArgs> = { outputDir: dir, saveSteps: 1, maxSteps: 3 };
    const first = new TinyTrainer(args, new TinyLM(2), source());
    await first.train();
    await writeFile(join(dir, "notes.txt"), "mine");
    await mkdir(join(dir, "data"));
    await writeFile(join(dir, "data", "x.jsonl"), "{}\n");
    const before = await tree(dir);
    const second = new TinyTrainer({ ...args, maxSteps: 2 }, new TinyLM(3), source());
    const e = await second.train().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).message).toBe(
      `${dir}, field "outputDir": holds an earlier run (checkpoint-1, checkpoint-2, checkpoint-3): resume it ` +
        "(--resume-from-checkpoint, resumeFromCheckpoint) or replace it (--overwrite-output-dir, overwriteOutputDir; " +
        "removes only prefkit's own files)",
    );
    expect(await tree(dir)).toEqual(before);
    const third = new TinyTrainer({ ...args, maxSteps: 2, overwriteOutputDir: true }, new TinyLM(3), source());
    await third.train();
    // run 1's checkpoint-3 is gone (no mixed directory); the user's files are as they were
    expect((await readdir(dir)).sort()).toEqual(["checkpoint-1", "checkpoint-2", "data", "notes.txt"]);
    const after = await tree(dir);
    for (const f of ["notes.txt", "data/x.jsonl"]) expect(after[f]).toBe(before[f]);
    expect((await stat(join(dir, "checkpoint-2", "trainer_state.json"))).isFile()).toBe(true);
    expect(JSON.parse(await readFile(join(dir, "checkpoint-2", "trainer_state.json"), "utf8")).max_steps).toBe(2);
    for (const t of [first, second, third]) {
      t.optimizer.dispose();
      (t.model as TinyLM).dispose();
    }
  });
});

describe("trainer_state.json", () => {
  // The fields of transformers' `TrainerState` dataclass, transformers v4.52.4,
  // src/transformers/trainer_callback.py, in declaration order.
  const TRANSFORMERS_TRAINER_STATE_FIELDS = [
    "epoch",
    "global_step",
    "max_steps",
    "logging_steps",
    "eval_steps",
    "save_steps",
    "train_batch_size",
    "num_train_epochs",
    "num_input_tokens_seen",
    "total_flos",
    "log_history",
    "best_metric",
    "best_global_step",
    "best_model_checkpoint",
    "is_local_process_zero",
    "is_world_process_zero",
    "is_hyper_param_search",
    "trial_name",
    "trial_params",
    "stateful_callbacks",
  ];

  it("has exactly transformers' TrainerState fields; stateful_callbacks in {ClassName: {args, attributes}}; the rest in prefkit_state.json", async () => {
    const dir = join(root, "hf-state");
    const model = new TinyLM(2);
    const counter: Callback & { n: number } = {
      name: "StepCounterCallback",
      n: 0,
      onStepEnd() {
        this.n++;
      },
      getState() {
        return { n: this.n };
      },
    };
    const t = new TinyTrainer(
      { outputDir: dir, saveSteps: 2, maxSteps: 2, loggingSteps: 1 },
      model,
      source(),
      undefined,
      [counter],
    );
    t.addGradientHook({ name: "noop", getState: () => ({ k: 1 }) });
    await t.train();
    const state = JSON.parse(await readFile(join(dir, "checkpoint-2", "trainer_state.json"), "utf8"));
    expect(Object.keys(state).sort()).toEqual([...TRANSFORMERS_TRAINER_STATE_FIELDS].sort());
    expect(state).toMatchObject({ global_step: 2, max_steps: 2, is_hyper_param_search: false, trial_name: null });
    expect(state.stateful_callbacks).toEqual({
      TrainerControl: {
        args: {
          should_epoch_stop: false,
          should_evaluate: false,
          should_log: false,
          should_save: true,
          should_training_stop: true,
        },
        attributes: {},
      },
      StepCounterCallback: { args: {}, attributes: { n: 2 } },
    });
    const own = JSON.parse(await readFile(join(dir, "checkpoint-2", "prefkit_state.json"), "utf8"));
    expect(own.format).toBe("prefkit-trainer-state/1");
    expect(own.num_update_steps_per_epoch).toBe(4);
    expect(Array.isArray(own.rng_state.s)).toBe(true);
    expect(own.stateful_records).toEqual({ "gradientHook:noop": { k: 1 }, "Trainer.skippedSteps": [] });
    t.optimizer.dispose();
    model.dispose();
  });
});
