// Written as a user would: everything prefkit comes from the public "@prefkit/core" entry point.
import {
  type BatchSource,
  type CausalLM,
  ConfigError,
  composeRun,
  LOSS,
  type Loss,
  MODEL,
  type Plugin,
  registerLoss,
  type StepOutput,
  Trainer,
  type TrainingArgs,
  type TrainingTask,
  tf,
} from "@prefkit/core";
import { beforeAll, describe, expect, it } from "vitest";

beforeAll(async () => {
  await tf.setBackend("cpu");
  // Process-wide, as a built-in loss package does on import.
  registerLoss("global-nll", scaledNll);
});

/** A unigram "LM": logits are one trainable vector, the same at every position. */
class UnigramLM implements CausalLM {
  readonly config = { model_type: "unigram", vocab_size: 3, hidden_size: 1, num_hidden_layers: 0 };
  readonly logits = tf.tidy(() => tf.variable(tf.tensor1d([0.3, -0.2, 0.1]), true));
  forward(inputs: { inputIds: number[][] | tf.Tensor2D }) {
    const [b, t] = Array.isArray(inputs.inputIds)
      ? [inputs.inputIds.length, inputs.inputIds[0]!.length]
      : inputs.inputIds.shape;
    return { logits: tf.tile(tf.reshape(this.logits, [1, 1, 3]), [b, t, 1]) as tf.Tensor3D };
  }
  namedParameters() {
    return new Map([["logits", this.logits]]);
  }
  trainableVariables() {
    return [this.logits];
  }
  async savePretrained() {}
  dispose() {
    this.logits.dispose();
  }
}

type Batch = number[][]; // target ids

interface MyConfig extends TrainingArgs {
  /** Name of the loss in the registry. */
  lossType: string;
  /** Scale of the user loss. */
  scale: number;
}

/** The user's loss: scale · mean negative log-likelihood of the targets. */
const scaledNll = (cfg: MyConfig): Loss<{ logits: tf.Tensor3D; targets: Batch }> => ({
  name: "scaled-nll",
  compute: ({ logits, targets }) => {
    const lp = tf.logSoftmax(logits);
    const onehot = tf.oneHot(tf.tensor2d(targets, undefined, "int32"), 3);
    return { loss: tf.mul(tf.neg(tf.mean(tf.sum(tf.mul(lp, onehot), -1))), cfg.scale) as tf.Scalar };
  },
});

/** The user's task: the model's logits for the targets, through the run's loss. */
class UnigramTask implements TrainingTask<Batch> {
  readonly name = "unigram";
  constructor(
    readonly model: CausalLM,
    readonly loss: Loss<{ logits: tf.Tensor3D; targets: Batch }>,
  ) {}
  compute(batch: Batch): StepOutput {
    const { logits } = this.model.forward({ inputIds: batch });
    return this.loss.compute({ logits, targets: batch });
  }
}

/** The user's plugin: registers the loss for this run, a callback, and wraps the model. */
const events: string[] = [];
const myPlugin: Plugin = {
  name: "my-plugin",
  register(context) {
    context.registerLoss("my-loss", scaledNll);
    context.addCallback({ onStepEnd: (_a, s) => void events.push(`step ${s.globalStep}`) });
    context.wrapModel((model) => {
      events.push("wrapped");
      return model;
    });
    context.onModelReady((model) => events.push(`loaded ${model.config.model_type}`));
  },
};

/** The user's method, composed by core's composition root: the config picks the loss by name. */
function compose(config: Partial<MyConfig>, plugins: Plugin[]) {
  const source: BatchSource<Batch> = { numBatches: 1, batches: () => [[[0, 0, 2]]] };
  return composeRun<Batch, MyConfig>({
    method: "unigram",
    args: config as MyConfig,
    model: new UnigramLM(),
    plugins,
    loss: (run) => run.registry.create(run.args.lossType, run.args),
    task: (run, loss) => new UnigramTask(run.model, loss as UnigramTask["loss"]),
    data: () => ({ train: source }),
  });
}

describe("a user's loss and plugin go through the same path as built-ins", () => {
  it("resolves a trainer whose lossType names the user's loss, and trains with it", async () => {
    const cfg = {
      lossType: "my-loss",
      scale: 2,
      outputDir: "unused",
      saveStrategy: "no" as const,
      maxSteps: 3,
      loggingSteps: 1,
      learningRate: 0.1,
    };
    const run = compose(cfg, [myPlugin]);
    const trainer = run.resolve<Trainer<Batch, MyConfig>>(Trainer);
    const task = trainer.task as UnigramTask;
    expect(task.loss.name).toBe("scaled-nll");
    const firstLoss = tf.tidy(
      () =>
        task.loss
          .compute({ logits: task.model.forward({ inputIds: [[0, 0, 2]] }).logits, targets: [[0, 0, 2]] })
          .loss.dataSync()[0]!,
    );
    await trainer.train();
    expect(events).toEqual(["wrapped", "loaded unigram", "step 1", "step 2", "step 3"]);
    const logged = trainer.state.logHistory.filter((e) => "loss" in e).map((e) => e["loss"]!);
    expect(logged[0]).toBeCloseTo(firstLoss, 6);
    expect(logged[2]!).toBeLessThan(logged[0]!);
    trainer.optimizer.dispose();
    run.resolve<CausalLM>(MODEL).dispose();
  });

  it("a globally registered loss is found exactly like a run-local one", async () => {
    const run = compose({ lossType: "global-nll", scale: 1, saveStrategy: "no", maxSteps: 1 }, []);
    const trainer = run.resolve<Trainer<Batch, MyConfig>>(Trainer);
    expect((trainer.task as UnigramTask).loss.name).toBe("scaled-nll");
    run.resolve<CausalLM>(MODEL).dispose();
  });

  it("an unknown lossType is a ConfigError listing the known names", async () => {
    const run = compose({ lossType: "nope", scale: 1, saveStrategy: "no", maxSteps: 1 }, [myPlugin]);
    expect(() => run.resolve(LOSS)).toThrow(ConfigError);
    expect(() => run.resolve(LOSS)).toThrow(
      'field "lossType": unknown loss type "nope"; known: "global-nll", "my-loss"',
    );
    // Through the trainer, tsyringe wraps the error but keeps the message.
    expect(() => run.resolve(Trainer)).toThrow(/unknown loss type "nope"; known: "global-nll", "my-loss"/);
    run.resolve<CausalLM>(MODEL).dispose();
  });
});
