import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ConfigError, tf } from "@prefkit/core";
import { afterAll, beforeAll, expect } from "vitest";

/** The torch float64 reference values written by scripts/reference/losses_reference.py. */
export const reference = JSON.parse(
  readFileSync(fileURLToPath(new URL("./fixtures/losses_reference.json", import.meta.url)), "utf8"),
);

/** The torch float64 reference values written by scripts/reference/methods_reference.py (KTO … RLOO). */
export const methodsReference = JSON.parse(
  readFileSync(fileURLToPath(new URL("./fixtures/methods_reference.json", import.meta.url)), "utf8"),
);

/**
 * The torch float64 reference values written by scripts/reference/dpo_options_reference.py (TRL's
 * `_compute_loss` with `ld_alpha` / `use_weighting`, and `SyncRefModelCallback`'s soft update).
 */
export const dpoOptionsReference = JSON.parse(
  readFileSync(fileURLToPath(new URL("./fixtures/dpo_options_reference.json", import.meta.url)), "utf8"),
);

/** Largest |actual − expected| / max(1, |expected|) seen per test file, reported at the end. */
export const worst = { error: 0, where: "" };

type Nested = number | Nested[];

function flatten(x: Nested): number[] {
  return Array.isArray(x) ? x.flatMap(flatten) : [x];
}

/** Asserts |a − e| ≤ tol·max(1, |e|) elementwise; `actual` may be a tensor. */
export function expectClose(actual: tf.Tensor | Nested, expected: Nested, where: string, tol = 1e-6): void {
  const a = actual instanceof tf.Tensor ? Array.from(actual.dataSync()) : flatten(actual);
  const e = flatten(expected);
  expect(a.length, `${where}: length`).toBe(e.length);
  for (let i = 0; i < e.length; i++) {
    const err = Math.abs(a[i]! - e[i]!) / Math.max(1, Math.abs(e[i]!));
    if (err > worst.error) {
      worst.error = err;
      worst.where = `${where}[${i}]`;
    }
    expect(err, `${where}[${i}]: got ${a[i]}, expected ${e[i]}`).toBeLessThanOrEqual(tol);
  }
}

/**
 * Runs the calling test file on the cpu backend and, at its end, logs the largest scaled error against
 * the torch reference (`label: max scaled error vs torch float64 = …`).
 */
export function cpuAgainstTorch(label: string): void {
  beforeAll(async () => {
    await tf.setBackend("cpu");
  });
  afterAll(() => {
    console.log(`${label}: max scaled error vs torch float64 = ${worst.error.toExponential(2)} at ${worst.where}`);
  });
}

/** The `field` of the {@link ConfigError} `fn` throws; fails the test when it throws something else or nothing. */
export function configErrorField(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).field;
  }
  throw new Error("expected a ConfigError");
}

/**
 * A log entry without its wall-clock values (`eps`, `train_runtime`, and the on-policy trainers'
 * `time/*` split), for comparing two runs' logs.
 */
export function withoutTimes(entry: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(entry).filter(([k]) => k !== "eps" && k !== "train_runtime" && !k.startsWith("time/")),
  );
}
