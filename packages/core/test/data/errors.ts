import { expect } from "vitest";
import { DatasetError } from "../../src/errors/index.js";

/** The {@link DatasetError} `fn` throws; fails the test when it throws something else or nothing. */
export function thrown(fn: () => unknown): DatasetError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DatasetError);
    return e as DatasetError;
  }
  throw new Error("expected a DatasetError");
}
