/**
 * The browser example: fetch a HF model directory from the serving origin, run DPO steps with
 * prefkit's own trainer, and draw the loss as it goes. `window.prefkitRun` exposes the result
 * to the end-to-end test (examples/browser/browser.test.ts).
 */
import { initEngine, Rng, type TokenizedPreference } from "@prefkit/core";
import { DPOTrainer } from "@prefkit/losses";
import { causalLMFromBytes } from "@prefkit/models";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";

interface RunState {
  done: boolean;
  error?: string;
  backend?: string;
  losses: number[];
  metrics: Array<Record<string, number>>;
}

declare global {
  interface Window {
    prefkitRun: RunState;
  }
}

const run: RunState = { done: false, losses: [], metrics: [] };
window.prefkitRun = run;
const $ = (id: string) => document.getElementById(id)!;

/** Pairs whose chosen completion repeats one token range and the rejected one another. */
function preferencePairs(vocabSize: number, n: number, seed: number): TokenizedPreference[] {
  const rng = new Rng(seed);
  const lo = Math.min(100, vocabSize >> 2);
  const width = Math.max(2, Math.min(20, vocabSize >> 3));
  const span = (start: number, len: number) => Array.from({ length: len }, () => start + rng.int(width));
  return Array.from({ length: n }, () => ({
    promptIds: [1, ...span(lo + 2 * width, 4)],
    chosenIds: span(lo, 6),
    rejectedIds: span(lo + width, 6),
  }));
}

function drawLoss(losses: number[], steps: number): void {
  const svg = $("chart");
  const w = 640;
  const h = 240;
  const pad = 30;
  const max = Math.max(Math.LN2 * 1.1, ...losses);
  const x = (i: number) => pad + ((w - 2 * pad) * i) / Math.max(1, steps - 1);
  const y = (v: number) => h - pad - ((h - 2 * pad) * v) / max;
  const points = losses.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  svg.innerHTML = `
    <line x1="${pad}" y1="${y(Math.LN2)}" x2="${w - pad}" y2="${y(Math.LN2)}" stroke="#bbb" stroke-dasharray="4" />
    <text x="${w - pad - 40}" y="${y(Math.LN2) - 4}" font-size="11" fill="#888">ln 2</text>
    <polyline points="${points}" fill="none" stroke="#2a6fdb" stroke-width="2" />
    <text x="${pad}" y="16" font-size="12">DPO loss, step ${losses.length}/${steps}</text>`;
}

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const backend = params.get("backend") ?? "wasm";
  const steps = Number(params.get("steps") ?? 20);
  setWasmPaths("/wasm/");
  const info = await initEngine({ backend });
  run.backend = info.backend;
  $("backend").textContent = info.backend;

  $("status").textContent = "fetching the model…";
  const config = await (await fetch("/model/config.json")).json();
  const weights = new Uint8Array(await (await fetch("/model/model.safetensors")).arrayBuffer());
  const model = causalLMFromBytes(config, weights);
  const vocab = Number(config.vocab_size);

  $("status").textContent = `training ${config.model_type}, ${config.num_hidden_layers} layers, on ${info.backend}…`;
  const trainer = new DPOTrainer({
    model,
    args: {
      outputDir: "browser-run",
      beta: 0.1,
      learningRate: 5e-3,
      lrSchedulerType: "constant",
      maxSteps: steps,
      perDeviceTrainBatchSize: 4,
      loggingSteps: 1,
      saveStrategy: "no",
    },
    trainDataset: preferencePairs(vocab, 32, 7),
    callbacks: [
      {
        onLog: (_args, _state, _control, { logs }) => {
          if (typeof logs["loss"] !== "number") return;
          run.losses.push(logs["loss"]);
          run.metrics.push({ ...logs });
          drawLoss(run.losses, steps);
          const margin = logs["rewards/margins"] ?? Number.NaN;
          $("log").textContent +=
            `step ${run.losses.length}: loss ${logs["loss"].toFixed(4)}  rewards/margins ${margin.toFixed(4)}\n`;
        },
      },
    ],
  });
  await trainer.train();
  trainer.dispose();
  model.dispose();
  $("status").textContent = `done: loss ${run.losses[0]?.toFixed(4)} → ${run.losses.at(-1)?.toFixed(4)}`;
}

main()
  .catch((e: unknown) => {
    run.error = e instanceof Error ? `${e.message}\n${e.stack ?? ""}` : String(e);
    $("status").textContent = `error: ${run.error}`;
  })
  .finally(() => {
    run.done = true;
  });
