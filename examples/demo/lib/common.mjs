import { sampleCompletions } from "./generate.mjs";

/** Format a number for a metrics line. */
export function fmt(x) {
  if (typeof x !== "number" || !Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e4)) return x.toExponential(2);
  return x.toFixed(a >= 100 ? 1 : 3);
}

/** Percentage with no decimals. */
export function pct(x) {
  return `${(100 * x).toFixed(0)}%`;
}

/**
 * A callback that prints one line per `onLog` with the given metric names (TRL's names) and keeps
 * the last logged values in `last`.
 */
export function metricsPrinter(phase, keys, out = console.log) {
  const started = performance.now();
  const printer = {
    name: "DemoMetricsPrinter",
    last: {},
    onLog(_args, state, _control, payload) {
      const logs = payload?.logs ?? {};
      if ("train_runtime" in logs) return;
      Object.assign(printer.last, logs);
      const secs = ((performance.now() - started) / 1000).toFixed(1);
      const parts = keys.filter((k) => k in logs).map((k) => `${k} ${fmt(logs[k])}`);
      const total = state.maxSteps > 0 ? `/${state.maxSteps}` : "";
      out(`  [${phase}] step ${String(state.globalStep).padStart(3)}${total}  ${parts.join("  ")}  (${secs} s)`);
    },
  };
  return printer;
}

/**
 * Sample `k` completions of every prompt and score them with `rule(prompt, text)`.
 * @returns {{ rate: number, n: number, samples: { prompt: string, completion: string, ok: boolean }[] }}
 */
export async function ruleRate(model, tok, prompts, rule, opts) {
  const { k, temperature, maxNewTokens, rng, topK = 0 } = opts;
  let hits = 0;
  let n = 0;
  const samples = [];
  for (const prompt of prompts) {
    const ids = tok.encode(prompt);
    const outs = await sampleCompletions(model, ids, {
      k,
      maxNewTokens,
      temperature,
      topK,
      eosTokenId: tok.eosTokenId,
      rng,
    });
    for (const c of outs) {
      const completion = tok.decode(c, { skipSpecialTokens: true });
      const ok = rule(prompt, completion);
      hits += ok ? 1 : 0;
      n += 1;
      samples.push({ prompt, completion, ok });
    }
  }
  return { rate: n > 0 ? hits / n : 0, n, samples };
}

/** Print a few samples, marking those that follow the rule. */
export function printSamples(title, samples, count, out = console.log) {
  out(`  ${title}`);
  for (const s of samples.slice(0, count)) {
    out(`    ${s.ok ? "✓" : "✗"} ${JSON.stringify(s.prompt)} →${JSON.stringify(s.completion)}`);
  }
}
