/**
 * `logProbHistogram`: per-text mean token log-probs, compared across datasets in a histogram.
 * @module
 */
import { join } from "node:path";
import { type CausalLM, ConfigError, sequenceLogProbs, type TokenizerLike, tf } from "@prefkit/core";
import { writeFileAtomic } from "../metrics-file.js";
import { histogramSpec, renderChart } from "../report/charts.js";

/** A named set of texts. */
export interface TextDataset {
  /** Legend name, e.g. `"TinyStories"` or `"WikiText-2"`. */
  name: string;
  /** The texts. */
  texts: readonly string[];
}

/** Options of {@link logProbHistogram}. */
export interface LogProbHistogramOptions {
  /** Directory for the PNG and SVG (and `logprobs.json`). Omit to compute only. */
  outDir?: string;
  /** File stem. Default `"logprob_histogram"`. */
  fileName?: string;
  /** Tokens kept per text (from the start, BOS included). Default 128. */
  maxLength?: number;
  /** Texts per forward pass. Default 8. */
  batchSize?: number;
  /** Histogram bins. Default 30. */
  bins?: number;
}

/** Result of {@link logProbHistogram}. */
export interface LogProbHistogramResult {
  /** Per dataset: the per-text mean token log-probs, in text order, and their mean. */
  datasets: Array<{ name: string; values: number[]; mean: number }>;
  /** Mean of the per-text means, by dataset name. */
  means: Record<string, number>;
  /** Path of the PNG, when `outDir` was given. */
  png?: string;
  /** Path of the SVG, when `outDir` was given. */
  svg?: string;
}

/**
 * For every text, the mean over its tokens of log p(token | prefix) (each text tokenised with the
 * tokenizer's special tokens, cut to `maxLength`; the first token is not scored), then a histogram
 * comparing the datasets, as in the SmolLM model card's in- vs out-of-distribution plot. Texts with
 * fewer than two tokens are skipped. Every tensor is released.
 * @throws ConfigError when a dataset has no scorable text.
 */
export async function logProbHistogram(
  model: CausalLM,
  tokenizer: TokenizerLike,
  datasets: readonly TextDataset[],
  options: LogProbHistogramOptions = {},
): Promise<LogProbHistogramResult> {
  const maxLength = options.maxLength ?? 128;
  const bs = options.batchSize ?? 8;
  const pad = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
  const result: LogProbHistogramResult = { datasets: [], means: {} };
  for (const ds of datasets) {
    const encoded = ds.texts.map((t) => tokenizer.encode(t).slice(0, maxLength)).filter((ids) => ids.length >= 2);
    if (encoded.length === 0)
      throw new ConfigError(`dataset "${ds.name}" has no text of 2+ tokens`, { field: "datasets" });
    const values: number[] = [];
    for (let i = 0; i < encoded.length; i += bs) {
      const chunk = encoded.slice(i, i + bs);
      const t = Math.max(...chunk.map((ids) => ids.length));
      const inputIds = chunk.map((ids) => [...ids, ...new Array<number>(t - ids.length).fill(pad)]);
      const mask = chunk.map((ids) => [
        ...new Array<number>(ids.length).fill(1),
        ...new Array<number>(t - ids.length).fill(0),
      ]);
      const means = tf.tidy(() =>
        Array.from(sequenceLogProbs(model, inputIds, mask, { attentionMask: mask }).means.dataSync()),
      );
      values.push(...means);
    }
    const mean = values.reduce((a, v) => a + v, 0) / values.length;
    result.datasets.push({ name: ds.name, values, mean });
    result.means[ds.name] = mean;
  }
  if (options.outDir !== undefined) {
    const stem = options.fileName ?? "logprob_histogram";
    const points = result.datasets.flatMap((d) => d.values.map((value) => ({ value, group: d.name })));
    const title = `Mean token log-prob per text (${result.datasets.map((d) => `${d.name} ${d.mean.toFixed(2)}`).join(", ")})`;
    const chart = await renderChart(histogramSpec(title, points, "mean log-prob per token", options.bins ?? 30));
    result.png = join(options.outDir, `${stem}.png`);
    result.svg = join(options.outDir, `${stem}.svg`);
    await writeFileAtomic(result.png, chart.png);
    await writeFileAtomic(result.svg, chart.svg);
    await writeFileAtomic(join(options.outDir, `${stem}.json`), `${JSON.stringify(result.datasets, null, 2)}\n`);
  }
  return result;
}
