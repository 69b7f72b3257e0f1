/**
 * `--model DIR`: the DPO phase on a real HF checkpoint. Preference pairs come from the model's own
 * samples: k continuations per training prompt, labelled by the rule; chosen = one that follows
 * it, rejected = one that does not. Before/after rule rates are measured on held-out prompts.
 *
 * The rule suits TinyStories models (stories260K says "happy" in roughly 1 story in 10):
 */
import { Rng } from "@prefkit/core";
import { AutoModelForCausalLM, AutoTokenizer } from "@prefkit/models";
import { DPOTrainer } from "@prefkit/losses";
import { evaluatePreferences } from "@prefkit/callbacks";
import { fmt, metricsPrinter, pct, printSamples, ruleRate } from "./common.mjs";
import { sampleCompletions } from "./generate.mjs";

/** The rule of the real-model run. */
export const STORY_RULE = 'the continuation uses the word "happy"';

/** True when `completion` satisfies {@link STORY_RULE}. */
export function saysHappy(_prompt, completion) {
  return /\bhappy\b/i.test(completion);
}

const NAMES = ["Lily", "Tom", "Sam", "Mia", "Ben", "Sue", "Max", "Anna", "Tim", "Lucy", "Jack", "Zoe"];
const OPENINGS = [
  (n) => `Once upon a time, there was a little girl named ${n}.`,
  (n) => `Once upon a time, there was a dog named ${n}.`,
  (n) => `One day, ${n} went to the park.`,
  (n) => `${n} had a big red ball.`,
  (n) => `${n} and his mom went to the store.`,
  (n) => `${n} saw a cat in the garden.`,
];

/** Story openings: the last three names are held out (never seen in DPO). */
export function storyPrompts() {
  const all = (names) => names.flatMap((n) => OPENINGS.map((o) => o(n)));
  return { train: all(NAMES.slice(0, 9)), heldOut: all(NAMES.slice(9)) };
}

/** Sizes of the full and the quick run. */
export const MODEL_PRESETS = {
  full: { k: 8, maxNewTokens: 32, evalK: 8, maxPairsPerPrompt: 2, dpoBatch: 8, dpoEpochs: 3 },
  quick: { k: 6, maxNewTokens: 24, evalK: 4, maxPairsPerPrompt: 1, dpoBatch: 8, dpoEpochs: 3 },
};

/**
 * Run the DPO phase on the checkpoint in `dir`. Returns the numbers it printed.
 * @param {{ dir: string, quick?: boolean, seed?: number, log?: (line: string) => void, preset?: object, dpoArgs?: object }} options
 */
export async function runModelDemo(options) {
  const { dir, quick = false, seed = 42, log = console.log } = options;
  const p = { ...(quick ? MODEL_PRESETS.quick : MODEL_PRESETS.full), ...options.preset };
  const dpoArgs = { beta: 0.1, lossType: ["sigmoid", "sft"], learningRate: 1e-3, ...options.dpoArgs };
  const timings = {};
  let t = performance.now();
  const lap = (name) => {
    const now = performance.now();
    timings[name] = (now - t) / 1000;
    t = now;
    return timings[name].toFixed(1);
  };

  const model = await AutoModelForCausalLM.fromPretrained(dir);
  const tok = await AutoTokenizer.fromPretrained(dir);
  const nParams = model.trainableVariables().reduce((a, v) => a + v.size, 0);
  const { train, heldOut } = storyPrompts();
  log(`\nRule: ${STORY_RULE}.`);
  log(`Model: ${dir} (${model.config.model_type}, ${nParams.toLocaleString("en")} parameters).`);
  log(`Prompts: ${train.length} story openings for pairs, ${heldOut.length} held out (other names).`);
  const sampling = { temperature: 1, maxNewTokens: p.maxNewTokens };

  // 1. Before.
  const evalOpts = { ...sampling, k: p.evalK, rng: new Rng(seed + 100) };
  const before = await ruleRate(model, tok, heldOut, saysHappy, evalOpts);
  log(
    `\n1. Before DPO: rule rate ${pct(before.rate)} on held-out prompts (${before.n} samples, T=1). ${lap("evalBefore")} s.`,
  );
  printSamples(
    "samples:",
    before.samples.filter((_, i) => i % p.evalK === 0),
    3,
    log,
  );

  // 2. Pairs from the model's own samples.
  const rng = new Rng(seed);
  const pairs = [];
  let sampled = 0;
  let positives = 0;
  for (const prompt of train) {
    const promptIds = tok.encode(prompt);
    const outs = await sampleCompletions(model, promptIds, { ...sampling, k: p.k, eosTokenId: tok.eosTokenId, rng });
    const labelled = outs.map((ids) => ({ ids, ok: saysHappy(prompt, tok.decode(ids, { skipSpecialTokens: true })) }));
    sampled += labelled.length;
    const good = labelled.filter((x) => x.ok && x.ids.length > 0);
    const bad = labelled.filter((x) => !x.ok && x.ids.length > 0);
    positives += good.length;
    for (let j = 0; j < Math.min(p.maxPairsPerPrompt, good.length, bad.length); j++) {
      pairs.push({ promptIds, chosenIds: good[j].ids, rejectedIds: bad[j].ids });
    }
  }
  log(
    `\n2. Sampled ${sampled} continuations of ${train.length} training prompts: ${positives} follow the rule ` +
      `(${pct(positives / sampled)}); ${pairs.length} pairs (chosen follows it, rejected does not). ${lap("pairs")} s.`,
  );
  if (pairs.length === 0) throw new Error("no preference pairs: the model never (or always) follows the rule");

  // 3. DPO.
  const steps = Math.ceil(pairs.length / p.dpoBatch) * p.dpoEpochs;
  log(
    `\n3. DPO (${[dpoArgs.lossType].flat().join(" + ")}, beta ${dpoArgs.beta}, lr ${dpoArgs.learningRate}): ` +
      `${steps} steps of ${p.dpoBatch} pairs.`,
  );
  if ([dpoArgs.lossType].flat().includes("sft")) {
    log('   ("sigmoid" is DPO\'s loss; "sft" adds the chosen completions\' NLL (RPO), which keeps the model fluent.)');
  }
  const ref = model.frozenCopy();
  const printer = metricsPrinter(
    "dpo",
    ["loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected"],
    log,
  );
  const padTokenId = tok.padTokenId ?? tok.eosTokenId ?? 0;
  const dpo = new DPOTrainer({
    model,
    refModel: ref,
    args: {
      outputDir: "runs/demo-model-dpo",
      lrSchedulerType: "linear",
      warmupSteps: steps > 10 ? 2 : 0,
      perDeviceTrainBatchSize: p.dpoBatch,
      numTrainEpochs: p.dpoEpochs,
      loggingSteps: Math.max(1, Math.floor(steps / 8)),
      saveStrategy: "no",
      padTokenId,
      seed,
      ...dpoArgs,
    },
    trainDataset: pairs,
    processingClass: tok,
    callbacks: [printer],
  });
  await dpo.train();
  dpo.dispose?.();
  log(`   DPO done in ${lap("dpo")} s.`);

  // 4. After.
  evalOpts.rng = new Rng(seed + 100);
  const after = await ruleRate(model, tok, heldOut, saysHappy, evalOpts);
  const trainMetrics = (
    await evaluatePreferences(model, ref, pairs, { tokenizer: tok, beta: dpoArgs.beta, batchSize: 32 })
  ).metrics;
  lap("evalAfter");
  log("\n4. After DPO:");
  printSamples(
    "samples:",
    after.samples.filter((_, i) => i % p.evalK === 0),
    3,
    log,
  );
  const last = printer.last;
  log(`\nResult (rule: ${STORY_RULE})`);
  log(
    `  rule rate, sampled T=1 : ${pct(before.rate)} → ${pct(after.rate)}   (${after.n} samples on ${heldOut.length} held-out prompts)`,
  );
  log(
    `  final train  rewards/accuracies ${fmt(last["rewards/accuracies"])}  rewards/margins ${fmt(last["rewards/margins"])}  loss ${fmt(last.loss)}`,
  );
  log(
    `  all pairs after training: rewards/accuracies ${fmt(trainMetrics["rewards/accuracies"])}  rewards/margins ${fmt(trainMetrics["rewards/margins"])}`,
  );
  log(
    `  time: sampling ${(timings.evalBefore + timings.pairs + timings.evalAfter).toFixed(1)} s, DPO ${timings.dpo.toFixed(1)} s`,
  );
  ref.dispose();
  model.dispose();
  return {
    mode: "model",
    dir,
    rule: STORY_RULE,
    ruleRateBefore: before.rate,
    ruleRateAfter: after.rate,
    samples: after.n,
    pairs: pairs.length,
    train: { ...last },
    pairsAfter: trainMetrics,
    timings,
  };
}
