/**
 * Float64 statistics over plain reward arrays with torch's conventions (Bessel-corrected std, NaN-ignoring
 * `nanmean`/`nansum`, TRL's `nanstd`), and the grouping of consecutive completions of one prompt.
 * Shared by GRPO and RLOO; not part of the public API.
 * @module
 */
import { ConfigError } from "@prefkit/core";
import { checkNumber } from "../common/checks.js";

/** The arithmetic mean (NaN for no values). */
export const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** torch's `std()` (Bessel-corrected); NaN for fewer than two values, as torch. */
export function unbiasedStd(xs: readonly number[]): number {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

/** torch's `nanmean`: the mean of the non-NaN values (NaN if there are none). */
export function nanMean(xs: readonly number[]): number {
  return mean(xs.filter((x) => !Number.isNaN(x)));
}

/** TRL's `nanstd`: the Bessel-corrected std of the non-NaN values (NaN for fewer than two). */
export function nanStd(xs: readonly number[]): number {
  const kept = xs.filter((x) => !Number.isNaN(x));
  return kept.length > 1 ? unbiasedStd(kept) : Number.NaN;
}

/** torch's `nansum` of a row: NaN entries count as 0. */
export const nanSum = (xs: readonly number[]) => xs.reduce((a, x) => (Number.isNaN(x) ? a : a + x), 0);

/** `torch.isclose(std, 0)` with its default atol 1e-8 (NaN is not close to anything). */
export const isZeroStd = (s: number) => Math.abs(s) <= 1e-8;

/** Throws a {@link ConfigError} unless `numGenerations` is a positive integer dividing `rows`. */
export function checkGroups(rows: number, numGenerations: number): void {
  checkNumber("numGenerations", numGenerations, (v) => Number.isInteger(v) && v >= 1, "an integer >= 1");
  if (rows % numGenerations !== 0) {
    throw new ConfigError(`must divide the number of completions (${rows}), got ${numGenerations}`, {
      field: "numGenerations",
    });
  }
}

/** Splits `xs` into consecutive groups of `size` (TRL's `.view(-1, num_generations)`). */
export function groupsOf<T>(xs: readonly T[], size: number): T[][] {
  return Array.from({ length: xs.length / size }, (_, g) => xs.slice(g * size, (g + 1) * size));
}
