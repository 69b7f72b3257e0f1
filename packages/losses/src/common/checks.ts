/**
 * The field checks every method's config and loss options share: each throws a {@link ConfigError} naming
 * the field, the allowed values and what it got.
 * @module
 */
import { ConfigError } from "@prefkit/core";

/** Throws a {@link ConfigError} naming `field` unless `value` is a finite number satisfying `ok`. */
export function checkNumber(field: string, value: unknown, ok: (v: number) => boolean, allowed: string): void {
  if (typeof value !== "number" || !Number.isFinite(value) || !ok(value)) {
    throw new ConfigError(`must be ${allowed}, got ${JSON.stringify(value)}`, { field });
  }
}

/** Throws a {@link ConfigError} naming `field` unless `value` is one of `allowed`. */
export function checkOneOf<T extends string>(field: string, value: unknown, allowed: readonly T[]): asserts value is T {
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(`must be one of ${allowed.map((a) => `"${a}"`).join(", ")}, got ${JSON.stringify(value)}`, {
      field,
    });
  }
}

/** Throws a {@link ConfigError} naming `field` unless `value` is `null` or an integer ≥ `min`. */
export function checkOptionalInt(field: string, value: unknown, min: number): void {
  if (value === null) return;
  checkNumber(field, value, (v) => Number.isInteger(v) && v >= min, `null or an integer >= ${min}`);
}
