/** Readers for the golden fixtures (`../shared/fixtures/hf-golden` and `test/fixtures/golden`). */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { initEngine, tf } from "@prefkit/core";
import { sharedPath } from "../../../../test/helpers/shared.js";

/** A float32 array stored as base64. */
export interface B64Array {
  dtype: "float32";
  shape: number[];
  b64: string;
}

/** The fields of golden.json the modeling tests use. */
export interface Golden {
  input_ids: number[][];
  attention_mask: number[][];
  position_ids: number[][];
  logits: B64Array;
  logits_compare_mask: number[][];
  hidden_states: B64Array[];
  lm_loss_all: number;
  dpo_logps: {
    loss_mask: number[][];
    per_token_logps: number[][];
    logps_sum: number[];
    n_tokens: number[];
    logps_mean: number[];
  };
}

/** Decode a base64 float32 array. */
export function decode(a: B64Array): Float32Array {
  const bytes = Buffer.from(a.b64, "base64");
  const out = new Float32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** Read `<dir>/golden.json`. */
export function readGolden(dir: string): Golden {
  return JSON.parse(readFileSync(join(dir, "golden.json"), "utf8")) as Golden;
}

const here = dirname(fileURLToPath(import.meta.url));
/** The package's own golden fixtures. */
export const LOCAL_GOLDEN = resolve(here, "..", "fixtures", "golden");

/** Every fixture directory (name, path) found in the shared and local golden folders. */
export function goldenFixtures(): { name: string; dir: string }[] {
  const roots = [sharedPath("fixtures/hf-golden"), existsSync(LOCAL_GOLDEN) ? LOCAL_GOLDEN : undefined];
  const out: { name: string; dir: string }[] = [];
  for (const root of roots) {
    if (!root) continue;
    for (const name of readdirSync(root).sort()) {
      const dir = join(root, name);
      if (existsSync(join(dir, "golden.json")) && existsSync(join(dir, "config.json"))) out.push({ name, dir });
    }
  }
  return out;
}

/**
 * Largest |a − b| over [B, T, ...] arrays, only at (b, t) where mask[b][t] = 1.
 * @param inner product of the trailing dimensions.
 */
export function maskedMaxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, mask: number[][], inner: number): number {
  let worst = 0;
  const t = mask[0]!.length;
  for (const [bi, row] of mask.entries()) {
    for (const [ti, m] of row.entries()) {
      if (!m) continue;
      const base = (bi * t + ti) * inner;
      for (let k = 0; k < inner; k++) worst = Math.max(worst, Math.abs(a[base + k]! - b[base + k]!));
    }
  }
  return worst;
}

/**
 * Activate a backend, failing loudly if it cannot be set. `"wasm+prefkit"` is wasm with
 * prefkit's engine kernels (matmul routing, segment sum), as trainers run it.
 */
export async function useBackend(name: string): Promise<void> {
  if (name === "wasm+prefkit") {
    await initEngine({ backend: "wasm", threads: 1 });
    return;
  }
  if (tf.getBackend() === name) return;
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`backend ${name} could not be activated`);
}
