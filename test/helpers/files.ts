/**
 * File-system snapshots for tests that must show a run or a save left everything else as it was.
 */
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { expect } from "vitest";

/**
 * Every file under `dir`, as relative path → sha256 of its bytes (directories as `name/` → `"dir"` when
 * `dirs` is set), for before/after comparisons.
 */
export async function fileTree(dir: string, options: { dirs?: boolean } = {}): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string, rel: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (options.dirs) out[`${rel}${e.name}/`] = "dir";
        await walk(p, `${rel}${e.name}/`);
      } else
        out[`${rel}${e.name}`] = createHash("sha256")
          .update(await readFile(p))
          .digest("hex");
    }
  };
  await walk(dir, "");
  return out;
}

/** A safetensors reader: tensor name → values. */
export type TensorFileReader = (path: string) => Promise<Iterable<readonly [string, { data: ArrayLike<number> }]>>;

/**
 * Read back every `.safetensors` file under `dir` and expect every value of every tensor to be finite.
 * @returns how many files were read.
 */
export async function expectFiniteTensorFiles(dir: string, read: TensorFileReader): Promise<number> {
  const files = Object.keys(await fileTree(dir)).filter((f) => f.endsWith(".safetensors"));
  for (const f of files) {
    for (const [name, t] of await read(join(dir, f))) {
      expect(
        Array.prototype.every.call(t.data, (x: number) => Number.isFinite(x)),
        `${f}: ${name}`,
      ).toBe(true);
    }
  }
  return files.length;
}
