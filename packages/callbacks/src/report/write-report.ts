/**
 * `writeReport(runDir)`: `report.html` plus PNG and SVG charts from a run's metrics.
 * @module
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { DatasetError } from "@prefkit/core";
import { assertReplaceable, readRunMetrics, writeFileAtomic } from "../metrics-file.js";
import { lineChartSpec, renderChart, type SeriesPoint } from "./charts.js";

/** A chart of the report: which logged metrics it plots. */
export interface ChartDefinition {
  /** File stem (`charts/<name>.png`). */
  name: string;
  /** Chart title. */
  title: string;
  /** Metric names (TRL names) plotted as series; absent ones are left out. */
  metrics: string[];
  /** y-axis title. */
  yTitle?: string;
}

/**
 * The charts a report draws, each only when at least one of its metrics was logged: loss (train and
 * eval), DPO rewards and accuracies, PPO's `objective/*`, reward-model accuracy and margin, learning
 * rate and gradient norm.
 */
export const DEFAULT_CHARTS: readonly ChartDefinition[] = [
  { name: "loss", title: "Loss", metrics: ["loss", "eval_loss"], yTitle: "loss" },
  {
    name: "rewards",
    title: "Implicit rewards (DPO, KTO, ORPO, CPO)",
    metrics: [
      "rewards/chosen",
      "rewards/rejected",
      "rewards/margins",
      "eval_rewards/chosen",
      "eval_rewards/rejected",
      "eval_rewards/margins",
    ],
    yTitle: "reward",
  },
  {
    name: "reward_accuracies",
    title: "Reward accuracy",
    metrics: ["rewards/accuracies", "eval_rewards/accuracies"],
    yTitle: "accuracy",
  },
  { name: "kl", title: "KL to the reference", metrics: ["objective/kl", "kl", "eval_kl"], yTitle: "KL" },
  {
    name: "odds_ratio",
    title: "ORPO log odds",
    metrics: ["log_odds_ratio", "log_odds_chosen", "eval_log_odds_ratio", "eval_log_odds_chosen"],
    yTitle: "log odds",
  },
  { name: "nll", title: "NLL term (ORPO, CPO)", metrics: ["nll_loss", "eval_nll_loss"], yTitle: "NLL" },
  {
    name: "scores",
    title: "PPO scores and RLHF reward",
    metrics: ["objective/scores", "objective/rlhf_reward", "objective/non_score_reward"],
    yTitle: "reward",
  },
  {
    name: "completion_lengths",
    title: "Completion lengths (GRPO, RLOO)",
    metrics: ["completions/mean_length", "completions/clipped_ratio"],
    yTitle: "tokens / share",
  },
  { name: "rm_accuracy", title: "Reward model accuracy", metrics: ["accuracy", "eval_accuracy"], yTitle: "accuracy" },
  { name: "rm_margin", title: "Reward model margin", metrics: ["margin", "eval_margin"], yTitle: "margin" },
  { name: "learning_rate", title: "Learning rate", metrics: ["learning_rate", "lr"], yTitle: "learning rate" },
  { name: "grad_norm", title: "Gradient norm", metrics: ["grad_norm"], yTitle: "norm" },
];

/**
 * GRPO's and RLOO's reward curves, one series per reward function: every `rewards/<name>/mean` (and its
 * `eval_` twin) the run logged, next to the total `reward`.
 */
export function rewardFunctionCharts(records: ReadonlyArray<Record<string, number>>): ChartDefinition[] {
  const names = new Set<string>();
  for (const r of records) for (const k of Object.keys(r)) if (/^(eval_)?rewards\/[^/]+\/mean$/.test(k)) names.add(k);
  if (names.size === 0) return [];
  return [
    {
      name: "reward_functions",
      title: "Rewards per reward function",
      metrics: ["reward", "eval_reward", ...[...names].sort()],
      yTitle: "reward",
    },
  ];
}

/** One prompt with the model's completion before and after training (`samples.json`). */
export interface SampleGeneration {
  /** The prompt. */
  prompt: string;
  /** Completion of the starting model. */
  before?: string;
  /** Completion of the trained model. */
  after?: string;
}

/** File name of the sample generations in a run directory: an array of {@link SampleGeneration}. */
export const SAMPLES_FILE = "samples.json";

/** Options of {@link writeReport}. */
export interface WriteReportOptions {
  /** Records to plot instead of reading `metrics.jsonl` (or the newest `trainer_state.json`). */
  records?: ReadonlyArray<Record<string, number>>;
  /** Charts to draw. Default {@link DEFAULT_CHARTS}. */
  charts?: readonly ChartDefinition[];
  /** Report title. Default: `prefkit run <basename(runDir)>`. */
  title?: string;
}

/** A chart the report wrote. */
export interface WrittenChart {
  /** Chart name. */
  name: string;
  /** Chart title. */
  title: string;
  /** Absolute path of the PNG. */
  png: string;
  /** Absolute path of the SVG. */
  svg: string;
  /** Series drawn (metric names). */
  series: string[];
}

/** What {@link writeReport} wrote. */
export interface ReportResult {
  /** Path of `report.html`. */
  html: string;
  /** The charts, in report order (only those with data). */
  charts: WrittenChart[];
  /** Number of log records read. */
  records: number;
  /** Number of sample generations shown. */
  samples: number;
}

const escapeHtml = (s: string) =>
  s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");

/** Read `samples.json` from `runDir` (an array of {@link SampleGeneration}, or `{ samples: [...] }`); `[]` when absent. */
export async function readSamples(runDir: string): Promise<SampleGeneration[]> {
  const file = join(runDir, SAMPLES_FILE);
  if (!existsSync(file)) return [];
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, "utf8"));
  } catch (e) {
    throw new DatasetError(`not valid JSON (${(e as Error).message})`, { file });
  }
  const list = Array.isArray(json) ? json : (json as { samples?: unknown }).samples;
  if (!Array.isArray(list)) throw new DatasetError("expected an array of { prompt, before, after }", { file });
  return list.map((r, i) => {
    if (typeof r !== "object" || r === null || typeof (r as SampleGeneration).prompt !== "string") {
      throw new DatasetError('expected an object with a string "prompt"', { file, row: i + 1, field: "prompt" });
    }
    return r as SampleGeneration;
  });
}

/** The points of `metrics` found in `records` (finite values only). */
export function seriesPoints(
  records: ReadonlyArray<Record<string, number>>,
  metrics: readonly string[],
): SeriesPoint[] {
  const out: SeriesPoint[] = [];
  for (const r of records) {
    for (const m of metrics) {
      const v = r[m];
      if (typeof v === "number" && Number.isFinite(v) && typeof r["step"] === "number") {
        out.push({ step: r["step"], value: v, series: m });
      }
    }
  }
  return out;
}

/** True for a `report.html` prefkit wrote (its generator tag, or the sections reports had before the tag). */
export function isPrefkitReport(text: string): boolean {
  return (
    text.includes('<meta name="generator" content="prefkit">') ||
    (text.includes("<h2>Final values</h2>") && text.includes(" log records, "))
  );
}

/** Last finite value of every metric, for the summary table. */
function finalValues(records: ReadonlyArray<Record<string, number>>): Array<[string, number, number]> {
  const last = new Map<string, [number, number]>();
  for (const r of records) {
    for (const [k, v] of Object.entries(r)) {
      if (k !== "step" && Number.isFinite(v)) last.set(k, [v, r["step"] ?? 0]);
    }
  }
  return [...last.entries()].map(([k, [v, s]]) => [k, v, s]);
}

/**
 * Write `<runDir>/report.html` with a PNG and an SVG per chart under `<runDir>/charts/`, from the
 * run's `metrics.jsonl` (or the given records). Charts are drawn only for metrics that were logged
 * (see {@link DEFAULT_CHARTS}); the page also has a table of final values and, when
 * `<runDir>/samples.json` exists, the sample generations before and after training. Every file is
 * written atomically, and an existing `report.html` only when prefkit wrote it.
 * @throws DatasetError when `metrics.jsonl` or `samples.json` is malformed (naming file and line).
 * @throws ConfigError naming the file when `runDir` holds a `report.html` prefkit did not write.
 */
export async function writeReport(runDir: string, options: WriteReportOptions = {}): Promise<ReportResult> {
  const html = join(runDir, "report.html");
  await assertReplaceable(html, isPrefkitReport);
  const records = options.records ?? (await readRunMetrics(runDir));
  const charts: WrittenChart[] = [];
  for (const def of options.charts ?? [...DEFAULT_CHARTS, ...rewardFunctionCharts(records)]) {
    const points = seriesPoints(records, def.metrics);
    if (points.length === 0) continue;
    const rendered = await renderChart(lineChartSpec(def.title, points, def.yTitle));
    const png = join(runDir, "charts", `${def.name}.png`);
    const svg = join(runDir, "charts", `${def.name}.svg`);
    await writeFileAtomic(png, rendered.png);
    await writeFileAtomic(svg, rendered.svg);
    charts.push({ name: def.name, title: def.title, png, svg, series: [...new Set(points.map((p) => p.series))] });
  }
  const samples = await readSamples(runDir);
  const title = options.title ?? `prefkit run ${basename(runDir)}`;
  await writeFileAtomic(html, renderHtml(title, records, charts, samples));
  return { html, charts, records: records.length, samples: samples.length };
}

function renderHtml(
  title: string,
  records: ReadonlyArray<Record<string, number>>,
  charts: readonly WrittenChart[],
  samples: readonly SampleGeneration[],
): string {
  const rows = finalValues(records)
    .map(([k, v, s]) => `<tr><td>${escapeHtml(k)}</td><td>${v.toPrecision(6)}</td><td>${s}</td></tr>`)
    .join("\n");
  const figures = charts
    .map(
      (c) =>
        `<figure><img src="charts/${c.name}.png" alt="${escapeHtml(c.title)}" width="960">` +
        `<figcaption>${escapeHtml(c.title)}: ${c.series.map(escapeHtml).join(", ")} ` +
        `(<a href="charts/${c.name}.svg">SVG</a>)</figcaption></figure>`,
    )
    .join("\n");
  const sampleRows = samples
    .map(
      (s) =>
        `<tr><td><pre>${escapeHtml(s.prompt)}</pre></td><td><pre>${escapeHtml(s.before ?? "")}</pre></td>` +
        `<td><pre>${escapeHtml(s.after ?? "")}</pre></td></tr>`,
    )
    .join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="generator" content="prefkit">
<title>${escapeHtml(title)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1100px; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
pre { white-space: pre-wrap; margin: 0; font-size: 0.9em; }
figure { margin: 1.5em 0; }
img { max-width: 100%; height: auto; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p>${records.length} log records, ${charts.length} charts.</p>
<h2>Charts</h2>
${figures || "<p>No metrics were logged.</p>"}
<h2>Final values</h2>
<table><thead><tr><th>metric</th><th>value</th><th>step</th></tr></thead><tbody>
${rows}
</tbody></table>
${
  samples.length > 0
    ? `<h2>Sample generations</h2>
<table><thead><tr><th>prompt</th><th>before</th><th>after</th></tr></thead><tbody>
${sampleRows}
</tbody></table>`
    : ""
}
</body>
</html>
`;
}
