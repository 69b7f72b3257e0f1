// A user-defined DPO-style loss, registered as a plugin and trained by name.
//
//   npm run build && node examples/custom-dpo-loss/train.mjs
//
// The loss is "margin DPO": -log σ(β·Δ − γ), where Δ is the usual difference of policy-vs-reference
// log-ratios and γ (`targetMargin`, read from the trainer config) asks for a minimum reward margin,
// like SimPO's γ. Everything below uses the public entry points only, as code outside prefkit would.
import { pathToFileURL } from "node:url";
import { lossPlugin, Rng, tf } from "@prefkit/core";
import { DPOTrainer } from "@prefkit/losses";
import { AutoModelForCausalLM } from "@prefkit/models";

/** The loss factory: the registry calls it with the trainer config; it returns a `Loss`. */
export function marginDpoLoss(config) {
  const beta = config.beta;
  const gamma = config.targetMargin ?? 0.5;
  return {
    name: "margin_dpo",
    // Inputs are tensors of shape [B]: summed completion log-probs of policy and reference.
    compute({ chosenLogps, rejectedLogps, refChosenLogps, refRejectedLogps }) {
      const delta = tf.sub(tf.sub(chosenLogps, refChosenLogps), tf.sub(rejectedLogps, refRejectedLogps));
      const z = tf.sub(tf.mul(delta, beta), gamma);
      // -log σ(z) = softplus(-z); tf.logSigmoid's gradient fails on intermediate tensors.
      const losses = tf.softplus(tf.neg(z));
      return {
        loss: tf.mean(losses),
        // Extra metrics are logged next to TRL's (`rewards/margins`, `logps/chosen`, ...).
        metrics: { "margin_dpo/satisfied": tf.mean(tf.step(z)) },
      };
    },
  };
}

/** Token-id pairs over a 16-token vocabulary: chosen completions use even ids, rejected ones odd ids. */
function makePairs(n, seed) {
  const rng = new Rng(seed);
  const completion = (parity) => Array.from({ length: 1 + rng.int(3) }, () => 2 + 2 * rng.int(7) + parity);
  return Array.from({ length: n }, () => ({
    promptIds: [1, ...Array.from({ length: 1 + rng.int(3) }, () => 2 + rng.int(14))],
    chosenIds: completion(0),
    rejectedIds: completion(1),
  }));
}

/** Train a tiny random Llama with `lossType: "margin_dpo"`; returns the trainer's log history. */
export async function main({ steps = 30, outputDir = "runs/custom-dpo-loss", log = console.log } = {}) {
  const model = AutoModelForCausalLM.fromConfig(
    {
      model_type: "llama",
      vocab_size: 16,
      hidden_size: 16,
      intermediate_size: 32,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      initializer_range: 0.2,
    },
    { seed: 1 },
  );
  const trainer = new DPOTrainer({
    model,
    args: {
      outputDir,
      lossType: "margin_dpo", // found in the run's loss registry, exactly like "sigmoid"
      targetMargin: 0.5,
      beta: 0.5,
      learningRate: 1e-2,
      lrSchedulerType: "constant",
      maxSteps: steps,
      perDeviceTrainBatchSize: 4,
      loggingSteps: 5,
      saveStrategy: "no",
      evalStrategy: "steps",
      evalSteps: steps,
    },
    trainDataset: makePairs(32, 7),
    evalDataset: makePairs(8, 8),
    plugins: [lossPlugin("margin_dpo", marginDpoLoss)],
    callbacks: [
      {
        onLog: (_args, state, _control, { logs }) => {
          const pick = Object.entries(logs)
            .filter(([k]) => !k.startsWith("logits/") && k !== "epoch")
            .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(4)}`);
          log(`step ${state.globalStep}: ${pick.join(" ")}`);
        },
      },
    ],
  });
  await trainer.train();
  const history = trainer.state.logHistory;
  trainer.dispose();
  model.dispose();
  return history;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { initEngine } = await import("@prefkit/core");
  await initEngine({ backend: "cpu" });
  await main();
}
