/**
 * Issue 15 item 1, memory: a bf16 checkpoint loaded with `dtype: "bfloat16"` is read tensor by tensor
 * straight into its bit patterns, so the process's peak RSS (VmHWM) grows by about the file's size.
 *
 * Each load runs in a fresh child process (so VmHWM is that load's peak), on the BUILT packages
 * (`npm run build` first, as CI does). The baseline is measured, not assumed: the same child loading a
 * tiny bf16 checkpoint (node, tfjs and prefkit started, the cpu backend active, one load done), so it
 * holds everything that does not grow with the checkpoint. The assertion is peak ≤ baseline + 1.2 × file
 * size. The float32 load of the same checkpoint (twice the file's size in variables) must break that
 * bound, so the measurement can tell the two apart.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../../../test/helpers/shared.js";
import { childJson, llamaBf16Config as config, writeBf16Checkpoint as writeCheckpoint } from "./bf16-checkpoint.js";

const DIST = join(REPO_ROOT, "packages/models/dist/index.js");
const CORE_DIST = join(REPO_ROOT, "packages/core/dist/index.js");

const CHILD = `
import { readFileSync } from "node:fs";
const { tf } = await import(${JSON.stringify(pathToFileURL(CORE_DIST).href)});
const { AutoModelForCausalLM } = await import(${JSON.stringify(pathToFileURL(DIST).href)});
const [dir, dtype] = process.argv.slice(2);
await tf.setBackend("cpu");
const model = await AutoModelForCausalLM.fromPretrained(dir, { dtype });
const hwm = Number(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))[1]) * 1024;
console.log(JSON.stringify({ hwm, half: model.halfPrecisionWeights().size, dtype: model.dtype }));
`;

function peakOfLoad(dir: string, dtype: string): { hwm: number; half: number; dtype: string } {
  return childJson(join(root, "child.mjs"), [dir, dtype]);
}

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "prefkit-load16-mem-"));
  await writeFile(join(root, "child.mjs"), CHILD);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("peak RSS of loading a bf16 checkpoint", () => {
  it("bfloat16: ≤ baseline + 1.2 × the file size; float32 breaks that bound", async () => {
    expect(existsSync(DIST), `${DIST} is missing: run npm run build first`).toBe(true);
    const tiny = join(root, "tiny");
    const big = join(root, "big");
    await import("node:fs/promises").then((fs) => Promise.all([fs.mkdir(tiny), fs.mkdir(big)]));
    await writeCheckpoint(tiny, config(1, 256));
    const size = await writeCheckpoint(big, config(8, 32000)); // ~155M parameters, ~310 MB
    expect(size).toBeGreaterThan(300e6);

    const baseline = peakOfLoad(tiny, "bfloat16").hwm;
    const bf16 = peakOfLoad(big, "bfloat16");
    expect(bf16.dtype).toBe("bfloat16");
    expect(bf16.half).toBe(2 + 8 * 7); // embedding, lm_head and every projection stayed 16-bit
    const f32 = peakOfLoad(big, "float32");
    const mb = (x: number) => `${(x / 2 ** 20).toFixed(0)} MB`;
    console.log(
      `load peak RSS: baseline ${mb(baseline)}, file ${mb(size)}, bfloat16 ${mb(bf16.hwm)} ` +
        `(baseline + ${((bf16.hwm - baseline) / size).toFixed(3)} × file), float32 ${mb(f32.hwm)} ` +
        `(baseline + ${((f32.hwm - baseline) / size).toFixed(3)} × file)`,
    );
    expect(bf16.hwm).toBeLessThanOrEqual(baseline + 1.2 * size);
    expect(f32.hwm).toBeGreaterThan(baseline + 1.5 * size);
  });
});
