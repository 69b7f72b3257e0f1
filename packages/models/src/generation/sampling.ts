/**
 * Token selection from one row of logits, in plain JS over a `Float32Array`: greedy argmax,
 * and sampling with transformers' warpers in their order (temperature → top-k → top-p). Kept
 * out of tfjs so that it is exact, seeded by core's `Rng`, and unit-testable.
 * @module
 */
import { ConfigError, type Rng } from "@prefkit/core";

/** The warpers of {@link samplingDistribution}. */
export interface SamplingOptions {
  /** Divide the logits by this (> 0). Default 1. */
  temperature?: number;
  /** Keep tokens whose logit is ≥ the k-th largest (ties kept, as HF's `TopKLogitsWarper`); 0 = off. */
  topK?: number;
  /** Keep the most likely tokens while the mass before them is < topP (HF's `TopPLogitsWarper`, ≥ 1 token); 1 = off. */
  topP?: number;
}

/**
 * Check sampling options, naming the field.
 * @throws ConfigError for a non-positive temperature, a negative or fractional topK, or topP outside (0, 1].
 */
export function validateSamplingOptions(options: SamplingOptions): void {
  const { temperature, topK, topP } = options;
  if (temperature !== undefined && !(temperature > 0 && Number.isFinite(temperature))) {
    throw new ConfigError(`must be a finite number > 0, got ${temperature}`, { field: "temperature" });
  }
  if (topK !== undefined && !(Number.isInteger(topK) && topK >= 0)) {
    throw new ConfigError(`must be an integer ≥ 0 (0 = off), got ${topK}`, { field: "topK" });
  }
  if (topP !== undefined && !(topP > 0 && topP <= 1)) {
    throw new ConfigError(`must be in (0, 1] (1 = off), got ${topP}`, { field: "topP" });
  }
}

/** Index of the largest logit (the first one on ties, as `torch.argmax`). */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  let bestValue = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/** `log softmax(logits / temperature)[token]`, computed in float64 over the whole vocabulary. */
export function tokenLogProb(logits: ArrayLike<number>, token: number, temperature = 1): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]! / temperature);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! / temperature - max);
  return logits[token]! / temperature - max - Math.log(sum);
}

/** The k-th largest value of `values` (1-based), by quickselect on a copy. */
function kthLargest(values: Float64Array, k: number): number {
  const a = Float64Array.from(values);
  let lo = 0;
  let hi = a.length - 1;
  const target = k - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! > pivot) i++;
      while (a[j]! < pivot) j--;
      if (i <= j) {
        const tmp = a[i]!;
        a[i] = a[j]!;
        a[j] = tmp;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return a[target]!;
  }
  return a[target]!;
}

/**
 * The distribution sampling draws from: softmax of the warped logits, with removed tokens at
 * probability 0. Sums to 1 (in float64).
 */
export function samplingDistribution(logits: ArrayLike<number>, options: SamplingOptions = {}): Float64Array {
  validateSamplingOptions(options);
  const temperature = options.temperature ?? 1;
  const topK = options.topK ?? 0;
  const topP = options.topP ?? 1;
  const n = logits.length;
  const scaled = new Float64Array(n);
  for (let i = 0; i < n; i++) scaled[i] = logits[i]! / temperature;
  if (topK > 0 && topK < n) {
    const threshold = kthLargest(scaled, topK);
    for (let i = 0; i < n; i++) if (scaled[i]! < threshold) scaled[i] = Number.NEGATIVE_INFINITY;
  }
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) max = Math.max(max, scaled[i]!);
  const probs = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const p = scaled[i] === Number.NEGATIVE_INFINITY ? 0 : Math.exp(scaled[i]! - max);
    probs[i] = p;
    sum += p;
  }
  for (let i = 0; i < n; i++) probs[i] = probs[i]! / sum;
  if (topP < 1) {
    const candidates: number[] = [];
    for (let i = 0; i < n; i++) if (probs[i]! > 0) candidates.push(i);
    // Stable descending order: equal probabilities keep index order, like a stable torch.sort.
    candidates.sort((a, b) => probs[b]! - probs[a]! || a - b);
    let before = 0;
    let kept = 0;
    for (const i of candidates) {
      if (kept > 0 && before >= topP) probs[i] = 0;
      else kept++;
      before += probs[i] === 0 ? 0 : probs[i]!;
    }
    let keptSum = 0;
    for (let i = 0; i < n; i++) keptSum += probs[i]!;
    for (let i = 0; i < n; i++) probs[i] = probs[i]! / keptSum;
  }
  return probs;
}

/** Draw an index from a distribution with one uniform number from `rng` (inverse CDF). */
export function sampleFromDistribution(probs: Float64Array, rng: Rng): number {
  const u = rng.next();
  let cumulative = 0;
  let last = 0;
  for (let i = 0; i < probs.length; i++) {
    const p = probs[i]!;
    if (p === 0) continue;
    cumulative += p;
    last = i;
    if (u < cumulative) return i;
  }
  return last; // rounding left u just above the total
}

/** Sample one token id from a row of logits with the given warpers. */
export function sampleToken(logits: ArrayLike<number>, options: SamplingOptions, rng: Rng): number {
  if (!(options.topK ?? 0) && (options.topP ?? 1) >= 1) return sampleTemperature(logits, options.temperature ?? 1, rng);
  return sampleFromDistribution(samplingDistribution(logits, options), rng);
}

/** Reused by {@link sampleTemperature} (a vocabulary-sized float64 buffer per row and step otherwise). */
let scratch = new Float64Array(0);

/**
 * Plain temperature sampling (no top-k, no top-p) without allocating: the same float64 operations, in the
 * same order, as {@link samplingDistribution} then {@link sampleFromDistribution}, so the same token for
 * the same draw.
 */
function sampleTemperature(logits: ArrayLike<number>, temperature: number, rng: Rng): number {
  validateSamplingOptions({ temperature });
  const n = logits.length;
  if (scratch.length < n) scratch = new Float64Array(n);
  const e = scratch;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    e[i] = logits[i]! / temperature;
    max = Math.max(max, e[i]!);
  }
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const p = e[i] === Number.NEGATIVE_INFINITY ? 0 : Math.exp(e[i]! - max);
    e[i] = p;
    sum += p;
  }
  const u = rng.next();
  let cumulative = 0;
  let last = 0;
  for (let i = 0; i < n; i++) {
    const p = e[i]! / sum;
    if (p === 0) continue;
    cumulative += p;
    last = i;
    if (u < cumulative) return i;
  }
  return last;
}
