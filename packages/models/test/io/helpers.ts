import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CheckpointError } from "@prefkit/core";
import { expect } from "vitest";

/** Build a safetensors file from a raw header value (any JSON) and a data buffer. */
export function craft(header: unknown, data: Uint8Array = new Uint8Array(0), headerLength?: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength ?? json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Run `fn` and return the CheckpointError it throws; fails the test on anything else. */
export function checkpointErrorOf(fn: () => unknown): CheckpointError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CheckpointError);
    return e as CheckpointError;
  }
  throw new Error("expected a CheckpointError, nothing was thrown");
}

/** Same as {@link checkpointErrorOf} for async functions. */
export async function asyncErrorOf<E extends Error>(
  fn: () => Promise<unknown>,
  type: new (...a: any[]) => E,
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(type);
    return e as E;
  }
  throw new Error(`expected a ${type.name}, nothing was thrown`);
}

/** A fresh temporary directory, removed by the returned cleanup. */
export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "prefkit-io-"));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Deterministic pseudo-random float32 data. */
export function randomData(n: number, seed = 1, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}
