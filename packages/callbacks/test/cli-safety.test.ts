// Issue 12: every row of its table, through the real `prefkit` CLI. Each case compares the file system
// before and after (nothing of the user's deleted or changed), the exit code, and the one-line message.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readSafetensors } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectFiniteTensorFiles, fileTree } from "../../../test/helpers/files.js";
import { REPO_ROOT, sharedPath } from "../../../test/helpers/shared.js";
import { runCli } from "../src/cli/main.js";
import { DIST, prefkit } from "./cli-helpers.js";

const DATA = join(REPO_ROOT, "examples/data/tiny-prefs.jsonl");
const model = sharedPath("assets/stories260K");

/** The CLI in this process (for refusals that happen before any engine or model is loaded). */
async function inProcess(args: string[]) {
  let stdout = "";
  let stderr = "";
  const sink = (append: (s: string) => void) =>
    ({
      write: (s: string) => {
        append(s);
        return true;
      },
    }) as unknown as NodeJS.WritableStream;
  const io = {
    stdout: sink((s) => {
      stdout += s;
    }),
    stderr: sink((s) => {
      stderr += s;
    }),
  };
  const code = await runCli(args, io);
  return { code, stdout, stderr };
}

const tree = (dir: string) => fileTree(dir);

const quick = ["--samples", "0", "--no-progress", "--per-device-train-batch-size", "4"];

/** `prefkit dpo` on stories260K: the dataset, the output directory, then any other flags. */
const dpo = (dataset: string, out: string, ...extra: string[]) =>
  prefkit(["dpo", "--model", model!, "--dataset", dataset, "--output", out, ...quick, ...extra]);

let dir = "";
beforeAll(async () => {
  expect(existsSync(DIST), `${DIST} is missing: run npm run build first`).toBe(true);
  dir = await mkdtemp(join(tmpdir(), "pk-cli-safety-"));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("output directories", () => {
  it.skipIf(!model)(
    '--output "" is refused before anything is written into the working directory, exit 2',
    async () => {
      const cwd = join(dir, "cwd");
      await mkdir(cwd);
      await writeFile(join(cwd, "README.md"), "# my project\n");
      await writeFile(join(cwd, "config.json"), '{"mine": true}\n');
      const before = await tree(cwd);
      const r = prefkit(["dpo", "--model", model!, "--dataset", DATA, "--output", "", ...quick], cwd);
      expect([r.code, r.stderr]).toEqual([
        2,
        'prefkit dpo: config error: field "outputDir": is empty: that would write into the working directory; give a directory\n',
      ]);
      expect(await tree(cwd)).toEqual(before);
    },
  );

  it.skipIf(!model)("--output equal to --model is refused and the model is untouched, exit 2", async () => {
    const m = join(dir, "model-copy");
    await cp(model!, m, { recursive: true });
    const before = await tree(m);
    const r = await inProcess(["dpo", "--model", m, "--dataset", DATA, "--output", m, ...quick]);
    expect([r.code, r.stderr]).toEqual([
      2,
      `prefkit dpo: config error: ${m}, field "outputDir": is the model directory ${m}: the run would overwrite the model; choose another\n`,
    ]);
    expect(await tree(m)).toEqual(before);
  });

  it.skipIf(!model)("--output that is an existing file is one line naming it, exit 2 (no EEXIST stack)", async () => {
    const file = join(dir, "a-file");
    await writeFile(file, "keep");
    const r = await inProcess(["dpo", "--model", model!, "--dataset", DATA, "--output", file, ...quick]);
    expect([r.code, r.stderr]).toEqual([
      2,
      `prefkit dpo: config error: ${file}, field "outputDir": exists and is not a directory\n`,
    ]);
    expect(await readFile(file, "utf8")).toBe("keep");
  });

  it.skipIf(!model)(
    "the same --output twice: run 2 is refused (nothing changed); --overwrite-output-dir replaces only run 1's files; a finished run resumed trains nothing; staging dirs of a killed run go",
    async () => {
      const out = join(dir, "twice");
      const run = (...extra: string[]) => dpo(DATA, out, "--save-steps", "1", ...extra);
      expect(run("--max-steps", "3").code).toBe(0);
      await writeFile(join(out, "notes.txt"), "mine\n");
      const before = await tree(out);
      const second = run("--max-steps", "2");
      expect(second.code).toBe(2);
      expect(second.stderr).toBe(
        `prefkit dpo: config error: ${out}, field "outputDir": holds an earlier run (README.md, checkpoint-1, checkpoint-2, checkpoint-3, …): ` +
          "resume it (--resume-from-checkpoint, resumeFromCheckpoint) or replace it (--overwrite-output-dir, overwriteOutputDir; removes only prefkit's own files)\n",
      );
      expect(await tree(out)).toEqual(before);

      const third = run("--max-steps", "2", "--overwrite-output-dir");
      expect([third.code, third.stderr]).toEqual([0, ""]);
      const names = (await readdir(out)).sort();
      expect(names).not.toContain("checkpoint-3"); // no mixed directory
      expect(names).toEqual(
        expect.arrayContaining(["checkpoint-1", "checkpoint-2", "metrics.jsonl", "model.safetensors", "notes.txt"]),
      );
      expect(await readFile(join(out, "notes.txt"), "utf8")).toBe("mine\n");
      const steps = (await readFile(join(out, "metrics.jsonl"), "utf8"))
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).step);
      expect(Math.max(...steps)).toBe(2);

      // a kill -9 during a save left a staging directory; the next start removes it (and only it)
      const deadPid = spawnSync(process.execPath, ["-e", ""]).pid;
      await mkdir(join(out, `.tmp-checkpoint-3-${deadPid}-${Date.now()}`, "x"), { recursive: true });
      await mkdir(join(out, ".tmp-mine"));
      const finished = await tree(out);
      const resumed = run("--max-steps", "2", "--resume-from-checkpoint", "true");
      expect(resumed.code).toBe(0);
      expect(resumed.stderr).toBe(
        "resumeFromCheckpoint: the checkpoint is at step 2 and maxSteps is 2: the run has finished; nothing to train\n",
      );
      const after = await tree(out);
      for (const f of Object.keys(finished).filter((f) => f.startsWith("checkpoint-"))) {
        expect(after[f], f).toBe(finished[f]);
      }
      expect(after["model.safetensors"]).toBe(finished["checkpoint-2/model.safetensors"]);
      const left = (await readdir(out)).filter((n) => n.startsWith("."));
      expect(left).toEqual([".tmp-mine"]);
      expect(existsSync(join(out, "checkpoint-3"))).toBe(false);
    },
  );
});

/** Every tensor of every safetensors file under `out`, checked finite; returns how many files were read. */
const assertFiniteSafetensors = (out: string) =>
  expectFiniteTensorFiles(out, async (f) => (await readSafetensors(f)).tensors);

describe("non-finite training", () => {
  it.skipIf(!model)(
    "lr 1e38 with the default loggingSteps: exit 6 naming the step, no model saved, no non-finite tensor in any file",
    async () => {
      const out = join(dir, "nan");
      const r = dpo(DATA, out, "--learning-rate", "1e38", "--max-steps", "5");
      expect(r.code).toBe(6);
      expect(r.stderr).toBe(
        "prefkit dpo: training diverged at step 2: loss is NaN (grad_norm=NaN); that update was not applied; nothing was saved after it (no checkpoint was saved)\n",
      );
      const names = await readdir(out);
      for (const f of ["model.safetensors", "config.json", "README.md"]) expect(names).not.toContain(f);
      expect(await assertFiniteSafetensors(out)).toBe(0);

      // with a warm-up step at lr 0 and a save every step, the good checkpoints stay and are finite
      const saved = join(dir, "nan-saved");
      const s = dpo(
        DATA,
        saved,
        "--learning-rate",
        "1e38",
        "--max-steps",
        "5",
        "--warmup-steps",
        "2",
        "--save-steps",
        "1",
      );
      expect(s.code).toBe(6);
      // The portable path computes a finite loss and a NaN gradient at step 3; the fast path's fused decoder
      // already a NaN loss. Either way the line names step 3, both values, and the last good checkpoint.
      const what = /^grad_norm is NaN \(loss=13\.2705\d*\)$|^loss is NaN \(grad_norm=NaN\)$/;
      const line = s.stderr.match(
        /^prefkit dpo: training diverged at step 3: (.*); that update was not applied; nothing was saved after it \(newest checkpoint: (.*)\)\n$/,
      );
      expect(line, s.stderr).not.toBeNull();
      expect(line![1]).toMatch(what);
      expect(line![2]).toBe(join(saved, "checkpoint-2"));
      expect((await readdir(saved)).filter((n) => n.startsWith("checkpoint-")).sort()).toEqual([
        "checkpoint-1",
        "checkpoint-2",
      ]);
      expect(existsSync(join(saved, "model.safetensors"))).toBe(false);
      expect(await assertFiniteSafetensors(saved)).toBe(4);
    },
  );

  it.skipIf(!model)("lr 1e6: the exploding loss and the vanished gradients are each reported once, exit 0", () => {
    const out = join(dir, "lr1e6");
    const r = dpo(DATA, out, "--learning-rate", "1e6", "--max-steps", "6", "--save-strategy", "no");
    expect(r.code).toBe(0);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(
      /^step 2: loss 1\d\.\d+ is more than 10× its first value 0\.69314\d+: training is diverging; lower the learning rate$/,
    );
    expect(lines[1]).toMatch(
      /^step 4: grad_norm has been exactly 0 for 3 steps while the loss moved \(1\d\.\d+ → 1\d\.\d+\): the gradients vanished \(saturated outputs\?\); the learning rate may be far too high$/,
    );
  });
});

describe("bad data", () => {
  it.skipIf(!model)("a 10 MB single-line row trains (cut to maxLength in token space)", async () => {
    const words = ["the", "cat", "sat", "on", "a", "mat", "and", "ran"];
    let big = "";
    for (let i = 0; big.length < 10 * 1024 * 1024; i++) big += ` ${words[i % words.length]}`;
    const file = join(dir, "big.jsonl");
    const small = await readFile(DATA, "utf8");
    await writeFile(file, `${JSON.stringify({ prompt: "Once upon a time", chosen: big, rejected: " no." })}\n${small}`);
    const r = dpo(file, join(dir, "big"), "--max-steps", "1", "--save-strategy", "no");
    expect([r.code, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toContain("dpo: 1 steps, train_loss=0.693");
  });

  it.skipIf(!model || !existsSync("/dev/zero"))(
    "/dev/zero as the dataset: one line naming file and line, exit 4",
    () => {
      const r = dpo("/dev/zero", join(dir, "zero"));
      expect([r.code, r.stderr]).toEqual([
        4,
        "prefkit dpo: data error: /dev/zero, row 1: line is longer than 16 MB (maxLineBytes): not a JSON Lines file, or a row far too large to train on\n",
      ]);
    },
  );

  it.skipIf(!model)(
    "chosen == rejected: one row is dropped with a warning; every row is exit 4; invalid UTF-8 is named",
    async () => {
      const lines = (await readFile(DATA, "utf8")).trim().split("\n");
      const same = JSON.stringify({ prompt: "Tom saw", chosen: " a cat.", rejected: " a cat." });
      const mixed = join(dir, "mixed.jsonl");
      const latin1 = Buffer.concat([
        Buffer.from('{"prompt":"Caf'),
        Buffer.from([0xe9]),
        Buffer.from('","chosen":" good.","rejected":" bad."}\n'),
      ]);
      await writeFile(mixed, Buffer.concat([Buffer.from(`${lines.join("\n")}\n${same}\n`), latin1]));
      const r = dpo(mixed, join(dir, "mixed"), "--max-steps", "1", "--save-strategy", "no");
      expect(r.code).toBe(0);
      expect(r.stderr).toBe(
        `${mixed}: 1 line(s) are not valid UTF-8 (first: line 14); their invalid bytes were read as U+FFFD\n` +
          "format: 14 rows in, 13 out, 1 dropped (chosen == rejected: 1)\n",
      );
      const all = join(dir, "all-same.jsonl");
      await writeFile(all, `${same}\n${same}\n`);
      const e = dpo(all, join(dir, "all-same"));
      expect([e.code, e.stderr]).toEqual([
        4,
        "format: 2 rows in, 0 out, 2 dropped (chosen == rejected: 2)\n" +
          `prefkit dpo: data error: ${all}: dataset has no usable rows (2 in, all dropped)\n`,
      ]);
    },
  );

  it.skipIf(!model)('a message with role "usr" is refused naming row and field, exit 4', async () => {
    const file = join(dir, "roles.jsonl");
    const msg = (role: string, content: string) => ({ role, content });
    await writeFile(
      file,
      `${JSON.stringify({ prompt: [msg("user", "hi")], chosen: [msg("assistant", "a")], rejected: [msg("assistant", "b")] })}\n` +
        `${JSON.stringify({ prompt: [msg("usr", "hi")], chosen: [msg("assistant", "a")], rejected: [msg("assistant", "b")] })}\n`,
    );
    const r = dpo(file, join(dir, "roles"));
    expect([r.code, r.stderr]).toEqual([
      4,
      `prefkit dpo: data error: ${file}, row 2, field "prompt[0].role": message 0 has role "usr"; expected one of system, user, assistant, tool\n`,
    ]);
  });
});

describe("config parsing", () => {
  it("--learning-rate 0x10 and learning_rate: 0x10 are refused, exit 2", async () => {
    const flag = await inProcess(["dpo", "--model", "m", "--dataset", "d", "--learning-rate", "0x10"]);
    expect([flag.code, flag.stderr]).toEqual([
      2,
      'prefkit dpo: config error: field "learningRate": must be a number, got "0x10"\n',
    ]);
    const cfg = join(dir, "hex.yaml");
    await writeFile(cfg, "learning_rate: 0x10\n");
    const file = await inProcess(["dpo", "--config", cfg, "--model", "m", "--dataset", "d"]);
    expect([file.code, file.stderr]).toEqual([
      2,
      'prefkit dpo: config error: field "learningRate": must be a number, got "0x10"\n',
    ]);
    for (const bad of ["Infinity", "0b11", "1_000", ".inf", ""]) {
      expect((await inProcess(["dpo", "--model", "m", "--dataset", "d", "--max-steps", bad])).code, bad).toBe(2);
    }
    const ok = join(dir, "ok.yaml");
    await writeFile(ok, "learning_rate: 1e-5\nbeta: .5\n");
    // valid numbers pass the config stage and stop at the missing model instead (exit 5)
    expect((await inProcess(["dpo", "--config", ok, "--model", join(dir, "none"), "--dataset", "d"])).code).toBe(5);
  });

  it("a key given twice in snake and camel case names both, exit 2", async () => {
    for (const [name, text] of [
      ["twice.yaml", "max_steps: 2\nmaxSteps: 5\n"],
      ["twice.json", '{"max_steps": 2, "maxSteps": 5}'],
    ] as const) {
      const cfg = join(dir, name);
      await writeFile(cfg, text);
      const r = await inProcess(["dpo", "--config", cfg, "--model", "m", "--dataset", "d"]);
      expect([r.code, r.stderr]).toEqual([
        2,
        `prefkit dpo: config error: ${cfg}, field "maxSteps": given twice, as "max_steps" and as "maxSteps": keep one\n`,
      ]);
    }
    const same = join(dir, "same.json");
    await writeFile(same, '{"beta": 0.1, "beta": 0.2}');
    const r = await inProcess(["dpo", "--config", same, "--model", "m", "--dataset", "d"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^prefkit dpo: config error: .*same\.json: not valid JSON or YAML \(Map keys must be unique/,
    );
  });

  it.skipIf(!model)("relative paths in --config are relative to the config file's folder", async () => {
    const cfgDir = join(dir, "cfg");
    await mkdir(cfgDir);
    await symlink(model!, join(cfgDir, "model"));
    await cp(DATA, join(cfgDir, "data.jsonl"));
    await writeFile(
      join(cfgDir, "dpo.yaml"),
      "model_name_or_path: model\ndataset_name: data.jsonl\noutput_dir: out\nmax_steps: 1\nsave_strategy: 'no'\nper_device_train_batch_size: 4\n",
    );
    const elsewhere = join(dir, "elsewhere");
    await mkdir(elsewhere);
    const r = prefkit(["dpo", "--config", join(cfgDir, "dpo.yaml"), "--samples", "0", "--no-progress"], elsewhere);
    expect([r.code, r.stderr]).toEqual([0, ""]);
    expect(existsSync(join(cfgDir, "out", "model.safetensors"))).toBe(true);
    expect(await readdir(elsewhere)).toEqual([]);
  });
});

describe("exit codes for model problems", () => {
  it("a missing --model path is exit 5 naming it", async () => {
    const missing = join(dir, "no-such-model");
    const r = await inProcess(["dpo", "--model", missing, "--dataset", DATA, "--output", join(dir, "x")]);
    expect([r.code, r.stderr]).toEqual([
      5,
      `prefkit dpo: checkpoint error: ${missing}, field "model": the model directory does not exist\n`,
    ]);
  });

  it.skipIf(!model)("a config.json that does not match the weights is exit 5 naming the tensor", async () => {
    const m = join(dir, "mismatch");
    await cp(model!, m, { recursive: true });
    const config = JSON.parse(await readFile(join(m, "config.json"), "utf8"));
    await writeFile(
      join(m, "config.json"),
      JSON.stringify({ ...config, intermediate_size: config.intermediate_size + 2 }),
    );
    const r = prefkit(["dpo", "--model", m, "--dataset", DATA, "--output", join(dir, "mm"), ...quick]);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/^prefkit dpo: checkpoint error: .*tensor "model\.layers\.0\.mlp\.\w+_proj\.weight".*\n$/);
    expect(r.stderr.split("\n")).toHaveLength(2);
  });
});
