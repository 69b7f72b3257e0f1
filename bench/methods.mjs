#!/usr/bin/env node
// DPO vs the reference-free ORPO and CPO/SimPO (and KTO), one training step each through the real trainers
// on the SmolLM-135M shape, every method in its own child process so peak RSS is the method's own: what
// dropping the reference (no frozen copy, no reference forward) saves. One JSON line per method on stdout.
//
//   node bench/methods.mjs [--layers 30] [--steps 3] [--methods dpo,orpo,cpo,kto] [--backend native|wasm]
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Rng } from "@prefkit/core";
import { smolConfig } from "./smol.mjs";

const { values: opts } = parseArgs({
  options: {
    layers: { type: "string", default: "30" },
    steps: { type: "string", default: "3" },
    methods: { type: "string", default: "dpo,orpo,cpo,kto" },
    backend: { type: "string", default: "native" },
    child: { type: "string" },
  },
});

const PAIRS = 2;
const PROMPT = 32;
const COMPLETION = 96;

function peakRssMB() {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  return m ? Math.round(Number(m[1]) / 102.4) / 10 : Number.NaN;
}

/** 2 pairs of random token ids: prompt 32, completions 96 (128 tokens per row, as the dpo workload). */
function pairs(vocab) {
  const rng = new Rng(1);
  const ids = (n) => Array.from({ length: n }, () => 3 + rng.int(vocab - 3));
  return Array.from({ length: PAIRS }, () => ({
    promptIds: ids(PROMPT),
    chosenIds: ids(COMPLETION),
    rejectedIds: ids(COMPLETION),
  }));
}

async function child(method) {
  const { initEngine, nativeBlasPlugin } = await import("@prefkit/core");
  const { createTrainer } = await import("@prefkit/losses");
  const { PreTrainedModelForCausalLM } = await import("@prefkit/models");
  const native = opts.backend === "native";
  const info = await initEngine({
    backend: native ? "cpu" : opts.backend,
    threads: 2,
    ...(native ? { plugins: [nativeBlasPlugin()] } : {}),
  });
  const layers = Number(opts.layers);
  const steps = Number(opts.steps);
  const config = smolConfig(layers);
  const model = PreTrainedModelForCausalLM.fromConfig(config, { seed: 0 });
  const data = pairs(config.vocab_size);
  const rows =
    method === "kto"
      ? data.flatMap((p) => [
          { promptIds: p.promptIds, completionIds: p.chosenIds, label: true },
          { promptIds: p.promptIds, completionIds: p.rejectedIds, label: false },
        ])
      : data;
  const out = mkdtempSync(join(tmpdir(), "prefkit-bench-methods-"));
  const times = [];
  let last = performance.now();
  const trainer = createTrainer(method, {
    model,
    trainDataset: rows,
    warn: () => {},
    callbacks: [
      {
        onStepBegin: () => {
          last = performance.now();
        },
        onStepEnd: () => void times.push((performance.now() - last) / 1000),
      },
    ],
    args: {
      outputDir: out,
      maxSteps: 1 + steps,
      perDeviceTrainBatchSize: method === "kto" ? 2 * PAIRS : PAIRS,
      saveStrategy: "no",
      loggingSteps: 1,
      learningRate: 1e-6,
      maxLength: null,
      ...(method === "cpo" ? { lossType: "simpo", cpoAlpha: 0 } : {}),
    },
  });
  await trainer.train();
  rmSync(out, { recursive: true, force: true });
  const measured = times.slice(1).sort((a, b) => a - b);
  const median = measured[Math.floor(measured.length / 2)];
  console.log(
    JSON.stringify({
      method,
      layers,
      backend: info.backend,
      plugins: info.kernelPlugins.map((p) => p.name),
      rows: 2 * PAIRS,
      seqLen: PROMPT + COMPLETION,
      referenceModel: method === "dpo" || method === "kto" ? "frozen copy" : "none",
      stepSeconds: Math.round(median * 1e4) / 1e4,
      stepSecondsAll: measured.map((t) => Math.round(t * 1e4) / 1e4),
      peakRssMB: peakRssMB(),
      losses: trainer.state.logHistory.filter((e) => "loss" in e).map((e) => e.loss),
    }),
  );
}

if (opts.child) await child(opts.child);
else {
  const self = fileURLToPath(import.meta.url);
  for (const method of opts.methods.split(",")) {
    const r = spawnSync(
      process.execPath,
      [self, "--child", method, "--layers", opts.layers, "--steps", opts.steps, "--backend", opts.backend],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
    );
    const line = r.stdout
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .at(-1);
    console.log(line ?? JSON.stringify({ method, error: `exited ${r.status ?? r.signal}` }));
  }
}
