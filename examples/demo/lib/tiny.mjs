/**
 * The default demo: a tiny Llama built from a config, SFT on a generated corpus, then DPO toward
 * {@link RULE}, with before/after rule rates on held-out prompts.
 */
import { Rng, tokenizePreferenceDataset } from "@prefkit/core";
import { AutoModelForCausalLM } from "@prefkit/models";
import { DPOTrainer, SFTTrainer } from "@prefkit/losses";
import { evaluatePreferences } from "@prefkit/callbacks";
import { fmt, metricsPrinter, pct, printSamples, ruleRate } from "./common.mjs";
import { followsRule, makePrompt, preferencePairs, promptSplit, RULE, sftCorpus, WORDS } from "./corpus.mjs";
import { WordTokenizer } from "./word-tokenizer.mjs";
import { runBf16Phase } from "./bf16.mjs";

/** Sizes of the full and the quick run. */
export const PRESETS = {
  full: {
    sftRows: 4000,
    sftEpochs: 3,
    sftBatch: 64,
    sftLr: 5e-3,
    dpoPairs: 2400,
    dpoEpochs: 1,
    dpoBatch: 32,
    samplesPerPrompt: 8,
  },
  quick: {
    sftRows: 1536,
    sftEpochs: 2,
    sftBatch: 64,
    sftLr: 5e-3,
    dpoPairs: 512,
    dpoEpochs: 1,
    dpoBatch: 32,
    samplesPerPrompt: 4,
  },
};

/** The tiny model: Llama architecture (RMSNorm, SwiGLU, RoPE, GQA, tied embeddings). */
export function tinyLlamaConfig(vocabSize) {
  return {
    model_type: "llama",
    architectures: ["LlamaForCausalLM"],
    vocab_size: vocabSize,
    hidden_size: 128,
    intermediate_size: 256,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 0,
  };
}

/**
 * Run the tiny demo. Returns the numbers it printed.
 * @param {{ quick?: boolean, seed?: number, log?: (line: string) => void }} options
 */
export async function runTinyDemo(options = {}) {
  const { quick = false, seed = 42, log = console.log } = options;
  const p = { ...(quick ? PRESETS.quick : PRESETS.full), ...options.preset };
  const dpoArgs = { beta: 0.1, lossType: ["sigmoid", "sft"], learningRate: 5e-4, ...options.dpoArgs };
  const timings = {};
  let t = performance.now();
  const lap = (name) => {
    const now = performance.now();
    timings[name] = (now - t) / 1000;
    t = now;
    return timings[name].toFixed(1);
  };

  const tok = new WordTokenizer(WORDS);
  const config = tinyLlamaConfig(tok.vocabSize);
  const model = AutoModelForCausalLM.fromConfig(config, {
    seed,
    generationConfig: { bos_token_id: 1, eos_token_id: 2 },
  });
  const nParams = model.trainableVariables().reduce((a, v) => a + v.size, 0);
  const { train, heldOut } = promptSplit(seed);
  const heldPrompts = heldOut.map(({ name, colour }) => makePrompt(name, colour));
  log(`\nRule: "${RULE}".`);
  log(
    `Model: tiny Llama, ${config.num_hidden_layers} layers, hidden ${config.hidden_size}, ` +
      `${config.num_attention_heads}/${config.num_key_value_heads} heads, vocab ${tok.vocabSize} (word-level), ` +
      `${nParams.toLocaleString("en")} parameters.`,
  );
  log(
    `Prompts: ${train.length} (name, colour) pairs for training, ${heldPrompts.length} held out, e.g. ${JSON.stringify(heldPrompts[0])}.`,
  );

  // 1. SFT on stories whose colour ignores the prompt.
  const sftRows = sftCorpus(train, p.sftRows, seed + 1);
  const sftSteps = Math.ceil(p.sftRows / p.sftBatch) * p.sftEpochs;
  log(
    `\n1. SFT: ${sftRows.length} generated stories (the prompt's colour 3 times in 10, yellow 5 in 10), ${sftSteps} steps of ${p.sftBatch}.`,
  );
  log(`   e.g. ${JSON.stringify(sftRows[0].prompt)} →${JSON.stringify(sftRows[0].completion)}`);
  const sftPrinter = metricsPrinter("sft", ["loss", "mean_token_accuracy", "grad_norm", "learning_rate"], log);
  const sft = new SFTTrainer({
    model,
    args: {
      outputDir: "runs/demo-sft",
      learningRate: p.sftLr,
      lrSchedulerType: "cosine",
      warmupSteps: 5,
      weightDecay: 0.0,
      perDeviceTrainBatchSize: p.sftBatch,
      numTrainEpochs: p.sftEpochs,
      loggingSteps: Math.max(1, Math.floor(sftSteps / 6)),
      saveStrategy: "no",
      maxLength: 32,
      completionOnlyLoss: true,
      padTokenId: tok.padTokenId,
      seed,
    },
    trainDataset: sftRows,
    processingClass: tok,
    callbacks: [sftPrinter],
  });
  await sft.train();
  sft.dispose?.();
  log(`   SFT done in ${lap("sft")} s.`);

  // 2. Before: how often does the SFT model follow the rule on held-out prompts?
  const evalOpts = { k: p.samplesPerPrompt, temperature: 1, maxNewTokens: 12, rng: new Rng(seed + 100) };
  const before = await ruleRate(model, tok, heldPrompts, followsRule, evalOpts);
  const greedyOpts = { k: 1, temperature: 0, maxNewTokens: 12, rng: new Rng(0) };
  const beforeGreedy = await ruleRate(model, tok, heldPrompts, followsRule, greedyOpts);
  log(
    `\n2. Before DPO, on held-out prompts: rule rate ${pct(before.rate)} sampled (T=1, ${before.n} samples), ` +
      `${pct(beforeGreedy.rate)} greedy (${beforeGreedy.n} prompts). ${lap("evalBefore")} s.`,
  );
  printSamples("greedy samples:", beforeGreedy.samples, 4, log);

  // 3. DPO: chosen follows the rule, rejected is the same story with another colour.
  const pairs = preferencePairs(train, p.dpoPairs, seed + 2);
  const heldPairs = tokenizePreferenceDataset(preferencePairs(heldOut, 128, seed + 3), tok, { maxLength: 32 }).examples;
  const dpoSteps = Math.ceil(p.dpoPairs / p.dpoBatch) * p.dpoEpochs;
  const beta = dpoArgs.beta;
  log(
    `\n3. DPO (${[dpoArgs.lossType].flat().join(" + ")}, beta ${beta}, lr ${dpoArgs.learningRate}): ${pairs.length} pairs, ${dpoSteps} steps of ${p.dpoBatch} pairs.`,
  );
  log(
    `   e.g. ${JSON.stringify(pairs[0].prompt)} chosen${JSON.stringify(pairs[0].chosen)} rejected${JSON.stringify(pairs[0].rejected)}`,
  );
  if ([dpoArgs.lossType].flat().includes("sft")) {
    log('   ("sigmoid" is DPO\'s loss; "sft" adds the chosen completions\' NLL (RPO), which keeps the model fluent.)');
  }
  const ref = model.frozenCopy();
  const dpoPrinter = metricsPrinter(
    "dpo",
    [
      "loss",
      "rewards/accuracies",
      "rewards/margins",
      "rewards/chosen",
      "rewards/rejected",
      "logps/chosen",
      "logps/rejected",
    ],
    log,
  );
  const dpo = new DPOTrainer({
    model,
    refModel: ref,
    args: {
      outputDir: "runs/demo-dpo",
      lrSchedulerType: "linear",
      warmupSteps: 3,
      perDeviceTrainBatchSize: p.dpoBatch,
      numTrainEpochs: p.dpoEpochs,
      loggingSteps: Math.max(1, Math.floor(dpoSteps / 8)),
      saveStrategy: "no",
      maxLength: 32,
      padTokenId: tok.padTokenId,
      seed,
      ...dpoArgs,
    },
    trainDataset: pairs,
    processingClass: tok,
    callbacks: [dpoPrinter],
  });
  await dpo.train();
  dpo.dispose?.();
  log(`   DPO done in ${lap("dpo")} s.`);

  // 4. After.
  evalOpts.rng = new Rng(seed + 100);
  const after = await ruleRate(model, tok, heldPrompts, followsRule, evalOpts);
  const afterGreedy = await ruleRate(model, tok, heldPrompts, followsRule, greedyOpts);
  const heldMetrics = (await evaluatePreferences(model, ref, heldPairs, { tokenizer: tok, beta, batchSize: 32 }))
    .metrics;
  lap("evalAfter");
  log(`\n4. After DPO, on held-out prompts:`);
  printSamples("greedy samples:", afterGreedy.samples, 4, log);
  const last = dpoPrinter.last;

  // 5. bf16: the trained model as a bf16 checkpoint; a few DPO steps in float32 and in bf16 AMP.
  const bf16 = await runBf16Phase({ model, tok, pairs, steps: 5, batch: p.dpoBatch, seed, log });
  lap("bf16");

  log(`\nResult (rule: "${RULE}")`);
  log(
    `  rule rate, sampled T=1 : ${pct(before.rate)} → ${pct(after.rate)}   (${after.n} samples on ${heldPrompts.length} held-out prompts)`,
  );
  log(`  rule rate, greedy      : ${pct(beforeGreedy.rate)} → ${pct(afterGreedy.rate)}`);
  log(
    `  final train  rewards/accuracies ${fmt(last["rewards/accuracies"])}  rewards/margins ${fmt(last["rewards/margins"])}  loss ${fmt(last.loss)}`,
  );
  log(
    `  held-out pairs rewards/accuracies ${fmt(heldMetrics["rewards/accuracies"])}  rewards/margins ${fmt(heldMetrics["rewards/margins"])}  sigmoid loss ${fmt(heldMetrics.loss)}  (${heldPairs.length} pairs)`,
  );
  if (bf16.skipped === undefined) {
    log(`  bf16 AMP vs float32, 5 DPO steps: max |Δ loss| ${bf16.maxDiff.toExponential(1)}`);
  }
  log(
    `  time: SFT ${timings.sft.toFixed(1)} s, DPO ${timings.dpo.toFixed(1)} s, evaluation ${(timings.evalBefore + timings.evalAfter).toFixed(1)} s, bf16 phase ${timings.bf16.toFixed(1)} s`,
  );

  ref.dispose();
  model.dispose();
  return {
    mode: "tiny",
    rule: RULE,
    ruleRateBefore: before.rate,
    ruleRateAfter: after.rate,
    greedyRateBefore: beforeGreedy.rate,
    greedyRateAfter: afterGreedy.rate,
    samplesBefore: beforeGreedy.samples.slice(0, 4),
    samplesAfter: afterGreedy.samples.slice(0, 4),
    sftFinalLoss: sftPrinter.last.loss,
    train: { ...last },
    heldOut: heldMetrics,
    bf16,
    timings,
  };
}
