import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CallbackHandler } from "../../src/callbacks/handler.js";
import {
  createTrainerControl,
  createTrainerState,
  parseTrainerState,
  serializeTrainerState,
} from "../../src/callbacks/state.js";
import { tf } from "../../src/engine/tf.js";
import { CheckpointError } from "../../src/errors/index.js";
import type { Callback } from "../../src/interfaces/callback.js";
import { arrayBatchSource } from "../../src/trainer/batch-source.js";
import { DEFAULT_TRAINING_ARGS } from "../../src/trainer/args.js";
import { makeRows, TinyLM, TinyTrainer } from "../trainer/tiny-lm.js";

let root: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  root = await mkdtemp(join(tmpdir(), "prefkit-callbacks-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("CallbackHandler", () => {
  it("awaits async callbacks in registration order and resets the flags an event answers", async () => {
    const order: string[] = [];
    const slow: Callback = {
      async onStepEnd(_a, _s, control) {
        await new Promise((r) => setTimeout(r, 20));
        order.push("slow");
        control.shouldSave = true;
      },
      onLog(_a, _s, _c, { logs }) {
        order.push(`log:${logs["loss"]}`);
      },
    };
    const fast: Callback = {
      onStepEnd(_a, _s, control) {
        order.push(`fast saw shouldSave=${control.shouldSave}`);
      },
    };
    const h = new CallbackHandler([slow, fast]);
    const control = createTrainerControl();
    const state = createTrainerState();
    await h.emit("onStepEnd", DEFAULT_TRAINING_ARGS, state, control);
    expect(order).toEqual(["slow", "fast saw shouldSave=true"]);
    control.shouldLog = true;
    await h.emit("onLog", DEFAULT_TRAINING_ARGS, state, control, { logs: { loss: 1.5 } });
    expect(control.shouldLog).toBe(false);
    expect(control.shouldSave).toBe(true);
    await h.emit("onStepBegin", DEFAULT_TRAINING_ARGS, state, control);
    expect(control.shouldSave).toBe(false);
    expect(h.remove(slow)).toBe(true);
    await h.emit("onStepEnd", DEFAULT_TRAINING_ARGS, state, control);
    expect(order.at(-1)).toBe("fast saw shouldSave=false");
  });
});

describe("TrainerState", () => {
  it("serialises with transformers' snake_case keys and parses back", () => {
    const s = createTrainerState();
    s.globalStep = 12;
    s.epoch = 1.5;
    s.bestMetric = 0.25;
    s.logHistory.push({ loss: 0.7, step: 10 });
    const json = JSON.parse(JSON.stringify(serializeTrainerState(s)));
    expect(json).toMatchObject({
      global_step: 12,
      epoch: 1.5,
      best_metric: 0.25,
      log_history: [{ loss: 0.7, step: 10 }],
    });
    expect(json).toHaveProperty("best_model_checkpoint", null);
    expect(json).toHaveProperty("num_input_tokens_seen", 0);
    expect(parseTrainerState(json)).toEqual(s);
    expect(() => parseTrainerState({ epoch: 1 }, "x/trainer_state.json")).toThrow(CheckpointError);
    expect(() => parseTrainerState({ epoch: 1 }, "x/trainer_state.json")).toThrow(
      /x\/trainer_state.json, field "global_step"/,
    );
  });
});

describe("control flags steer the loop", () => {
  it("shouldTrainingStop, shouldSave, shouldLog and shouldEpochStop from a callback change what the trainer does", async () => {
    const dir = join(root, "flags");
    const events: string[] = [];
    const steer: Callback = {
      onEpochBegin: (_a, s) => void events.push(`epoch-begin@${s.globalStep}`),
      onStepEnd(_a, s, c) {
        if (s.globalStep === 1) c.shouldEpochStop = true; // leave epoch 0 after one of its 3 steps
        if (s.globalStep === 2) c.shouldSave = true; // saveStrategy is "no"
        if (s.globalStep === 3) c.shouldLog = true; // loggingStrategy is "no"
        if (s.globalStep === 4) c.shouldTrainingStop = true; // maxSteps would be 9
      },
      onSave: (_a, s, _c, { checkpointDir }) =>
        void events.push(`save@${s.globalStep}:${checkpointDir.split("/").at(-1)}`),
      onLog: (_a, s, _c, { logs }) => void events.push(`log@${s.globalStep}:${"loss" in logs ? "loss" : "summary"}`),
      onTrainEnd: (_a, s) => void events.push(`end@${s.globalStep}`),
    };
    const model = new TinyLM(8);
    const t = new TinyTrainer(
      { outputDir: dir, saveStrategy: "no", loggingStrategy: "no", numTrainEpochs: 3 },
      model,
      arrayBatchSource(makeRows(6), { batchSize: 2, collate: (r) => r }),
      undefined,
      [steer],
    );
    await t.train();
    expect(t.state.globalStep).toBe(4);
    expect(events).toEqual([
      "epoch-begin@0",
      "epoch-begin@1",
      "save@2:checkpoint-2",
      "log@3:loss",
      "log@4:summary",
      "end@4",
    ]);
    expect(t.state.epoch).toBeCloseTo(1 + 3 / 3, 10); // epoch 1 finished its 3 steps (2,3,4)
    expect(await readdir(dir)).toEqual(["checkpoint-2"]);
    t.optimizer.dispose();
    model.dispose();
  });
});
