// prepareOutputDir: transformers-like output-directory rules, with the file system compared before and after.
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fileTree } from "../../../../test/helpers/files.js";
import { prepareOutputDir } from "../../src/checkpoint/output-dir.js";
import { ConfigError } from "../../src/errors/index.js";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "prefkit-outdir-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const tree = (dir: string) => fileTree(dir, { dirs: true });

async function refusal(dir: string, options: Parameters<typeof prepareOutputDir>[1] = {}): Promise<ConfigError> {
  const e = await prepareOutputDir(dir, options).catch((x: unknown) => x);
  expect(e).toBeInstanceOf(ConfigError);
  return e as ConfigError;
}

describe("prepareOutputDir", () => {
  const FINAL = ["config.json", "model.safetensors", "README.md"];

  it("refuses an empty name, a file, the model directory and a directory containing it", async () => {
    expect((await refusal("")).message).toBe(
      'field "outputDir": is empty: that would write into the working directory; give a directory',
    );
    expect((await refusal("  ")).field).toBe("outputDir");
    const file = join(root, "a-file");
    await writeFile(file, "x");
    expect((await refusal(file)).message).toBe(`${file}, field "outputDir": exists and is not a directory`);
    expect(await readFile(file, "utf8")).toBe("x");
    const model = join(root, "models", "m");
    await mkdir(model, { recursive: true });
    await writeFile(join(model, "model.safetensors"), "weights");
    const before = await tree(join(root, "models"));
    expect((await refusal(model, { modelDirs: [model] })).message).toBe(
      `${model}, field "outputDir": is the model directory ${model}: the run would overwrite the model; choose another`,
    );
    const parent = join(root, "models");
    expect((await refusal(parent, { modelDirs: [model] })).message).toBe(
      `${parent}, field "outputDir": contains the model directory ${model}; choose an output directory outside it`,
    );
    // through a symlink too
    const link = join(root, "link-to-m");
    await symlink(model, link);
    expect((await refusal(link, { modelDirs: [model] })).message).toContain("is the model directory");
    expect(await tree(parent)).toEqual(before);
    // a run directory inside the model directory is fine
    expect(await prepareOutputDir(join(model, "runs", "x"), { modelDirs: [model] })).toEqual({
      previousRun: [],
      removed: [],
    });
  });

  it("accepts a missing or empty directory, and one holding only other files", async () => {
    expect(await prepareOutputDir(join(root, "nope"))).toEqual({ previousRun: [], removed: [] });
    const dir = join(root, "others");
    await mkdir(join(dir, "data"), { recursive: true });
    await writeFile(join(dir, "notes.txt"), "n");
    expect(await prepareOutputDir(dir, { finalFiles: FINAL })).toEqual({ previousRun: [], removed: [] });
  });

  it("refuses a directory without a run that holds a file the run would overwrite, even with overwriteOutputDir", async () => {
    const dir = join(root, "cwd-like");
    await mkdir(dir);
    await writeFile(join(dir, "README.md"), "# my project\n");
    await writeFile(join(dir, "config.json"), "{}\n");
    const before = await tree(dir);
    for (const overwriteOutputDir of [false, true]) {
      expect((await refusal(dir, { finalFiles: FINAL, overwriteOutputDir })).message).toBe(
        `${dir}, field "outputDir": holds README.md, config.json, which the run would overwrite and no prefkit run wrote; choose an empty or new directory`,
      );
    }
    expect(await tree(dir)).toEqual(before);
  });

  it("refuses an earlier run unless resuming; overwriteOutputDir removes prefkit's run files and nothing else", async () => {
    const dir = join(root, "run");
    for (const n of [1, 2]) {
      await mkdir(join(dir, `checkpoint-${n}`), { recursive: true });
      await writeFile(join(dir, `checkpoint-${n}`, "trainer_state.json"), "{}");
    }
    await mkdir(join(dir, ".tmp-checkpoint-3-1-2"));
    await mkdir(join(dir, "charts"));
    await writeFile(join(dir, "charts", "loss.png"), "png");
    for (const f of ["metrics.jsonl", "metrics.csv", "report.html", "model.safetensors", "config.json", "README.md"]) {
      await writeFile(join(dir, f), f);
    }
    await writeFile(join(dir, "notes.txt"), "mine");
    await mkdir(join(dir, "ref_logps"));
    await writeFile(join(dir, "ref_logps", "ref-logps-abc.json"), "{}");
    const before = await tree(dir);
    const e = await refusal(dir, { finalFiles: FINAL });
    expect(e.message).toBe(
      `${dir}, field "outputDir": holds an earlier run (.tmp-checkpoint-3-1-2, README.md, charts, checkpoint-1, …): ` +
        "resume it (--resume-from-checkpoint, resumeFromCheckpoint) or replace it (--overwrite-output-dir, " +
        "overwriteOutputDir; removes only prefkit's own files)",
    );
    expect(await tree(dir)).toEqual(before);
    const resumed = await prepareOutputDir(dir, { finalFiles: FINAL, resume: true });
    expect(resumed.removed).toEqual([]);
    expect(await tree(dir)).toEqual(before);
    const cleared = await prepareOutputDir(dir, { finalFiles: FINAL, overwriteOutputDir: true });
    expect(cleared.removed).toEqual([
      ".tmp-checkpoint-3-1-2",
      "README.md",
      "charts",
      "checkpoint-1",
      "checkpoint-2",
      "config.json",
      "metrics.csv",
      "metrics.jsonl",
      "model.safetensors",
      "report.html",
    ]);
    const after = await tree(dir);
    expect(Object.keys(after).sort()).toEqual(["notes.txt", "ref_logps/", "ref_logps/ref-logps-abc.json"]);
    for (const k of Object.keys(after)) expect(after[k]).toBe(before[k]);
  });
});
