import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT, sharedPath } from "../../../test/helpers/shared.js";
import { configDefaults, configFields, formatDefault, mergeConfigObject, readConfigFile } from "../src/cli/config.js";
import { buildProgram } from "../src/cli/main.js";
import { BIN, DIST, prefkit } from "./cli-helpers.js";
import { isPng } from "./helpers.js";

describe("prefkit CLI", () => {
  let dir = "";
  beforeAll(async () => {
    // The bin runs the built package (as `npx prefkit` does); CI builds before testing.
    expect(existsSync(DIST), `${DIST} is missing: run npm run build first`).toBe(true);
    dir = await mkdtemp(join(tmpdir(), "pk-cli-"));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("config-docs.json is generated from the current config TSDoc", async () => {
    // @ts-expect-error: a plain .mjs script
    const { generateConfigDocs, CONFIG_DOCS_FILE } = await import("../../../scripts/gen-config-docs.mjs");
    expect(await readFile(CONFIG_DOCS_FILE, "utf8"), "run node scripts/gen-config-docs.mjs").toBe(generateConfigDocs());
  });

  it("--help of each training command lists every config field with its default", () => {
    // One spawn checks the real bin; the other commands' help is rendered in-process (each spawn costs seconds).
    const program = buildProgram({ stdout: process.stdout, stderr: process.stderr });
    for (const kind of ["sft", "dpo", "reward", "ppo"] as const) {
      const stdout = program.commands.find((c) => c.name() === kind)!.helpInformation();
      const flat = stdout.replace(/\s+/g, " ");
      for (const f of configFields(kind)) {
        expect(f.doc, `${kind}.${f.name} has no TSDoc`).not.toBe("(undocumented)");
        expect(flat).toContain(
          `${f.flag} <value>`.replace(
            "<value>",
            /boolean/.test(f.type) && !/string/.test(f.type) ? "[value]" : "<value>",
          ),
        );
        expect(flat).toContain(`(default: ${formatDefault(f.default)})`);
      }
    }
    const spawned = prefkit(["dpo", "--help"]);
    expect(spawned.code).toBe(0);
    const dpo = spawned.stdout.replace(/\s+/g, " ");
    for (const f of configFields("dpo")) expect(dpo).toContain(`(default: ${formatDefault(f.default)})`);
    expect(dpo).toContain("--beta <value> β: strength of the implicit KL constraint");
    expect(dpo).toContain("[number] (default: 0.1)");
    expect(dpo).toContain("--loss-type <value>");
    expect(dpo).toContain('(default: ["sigmoid"])');
    expect(dpo).toContain("Exit codes:");
    const top = prefkit(["--help"]);
    expect(top.code).toBe(0);
    for (const c of ["sft", "dpo", "reward", "ppo", "generate", "eval", "report", "env"])
      expect(top.stdout).toContain(`  ${c}`);
  });

  it("takes TRL's gradient_checkpointing from a config file (snake_case) or a flag", async () => {
    const yaml = join(dir, "checkpointing.yaml");
    await writeFile(yaml, "gradient_checkpointing: true\nper_device_train_batch_size: 1\n");
    for (const kind of ["dpo", "reward", "sft", "ppo"] as const) {
      expect((await readConfigFile(yaml, kind)).fields).toEqual({
        gradientCheckpointing: true,
        perDeviceTrainBatchSize: 1,
      });
      expect(configDefaults(kind)["gradientCheckpointing"]).toBe(false);
    }
    expect(mergeConfigObject({ gradientCheckpointing: "false" }, "dpo").fields).toEqual({
      gradientCheckpointing: false,
    });
    expect(() => mergeConfigObject({ gradient_checkpointing: "sometimes" }, "dpo")).toThrow(
      /field "gradientCheckpointing": must be true or false, got "sometimes"/,
    );
  });

  it("a bad config value is a one-line error naming the field and the allowed values, exit 2", async () => {
    const bad = prefkit(["dpo", "--model", "m", "--dataset", "d", "--loss-type", "sigmoidd"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(
      'prefkit dpo: config error: field "lossType[0]": must be one of "sigmoid", "hinge", "ipo", "robust", "exo_pair", ' +
        '"nca_pair", "bco_pair", "sppo_hard", "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop", "sigmoid_norm", ' +
        '"sft", got "sigmoidd"\n',
    );
    const num = prefkit(["dpo", "--model", "m", "--dataset", "d", "--beta", "abc"]);
    expect([num.code, num.stderr]).toEqual([
      2,
      'prefkit dpo: config error: field "beta": must be a number, got "abc"\n',
    ]);
    const yaml = join(dir, "bad.yaml");
    await writeFile(yaml, "learning_rate: 1e-5\nlr_scheduler_type: cosine_with_min_lr\n");
    const fromFile = prefkit(["sft", "--config", yaml, "--model", "m", "--dataset", "d"]);
    expect(fromFile.code).toBe(2);
    expect(fromFile.stderr).toBe(
      'prefkit sft: config error: field "lrSchedulerType": must be one of "constant", "constant_with_warmup", "linear", "cosine", got "cosine_with_min_lr"\n',
    );
    const unknown = join(dir, "unknown.json");
    await writeFile(unknown, JSON.stringify({ betta: 0.2 }));
    expect(prefkit(["dpo", "--config", unknown]).stderr).toBe(
      `prefkit dpo: config error: ${unknown}, field "betta": unknown dpo config field (see \`prefkit dpo --help\` for the fields)\n`,
    );
    expect(prefkit(["dpo", "--no-such-flag"]).code).toBe(2);
  });

  const model = sharedPath("assets/stories260K");
  it.skipIf(!model)(
    "prefkit dpo on stories260K writes checkpoints, metrics.jsonl, report + PNGs, a model card",
    async () => {
      const out = join(dir, "run");
      const cfg = join(dir, "dpo.yaml");
      await writeFile(cfg, "beta: 0.1\nper_device_train_batch_size: 4\nlogging_steps: 1\n");
      const r = prefkit([
        "dpo",
        "--model",
        model!,
        "--dataset",
        join(REPO_ROOT, "examples/data/tiny-prefs.jsonl"),
        "--config",
        cfg,
        "--output",
        out,
        "--max-steps",
        "2",
        "--save-steps",
        "1",
        "--learning-rate",
        "1e-3",
        "--samples",
        "1",
        "--sample-max-new-tokens",
        "8",
      ]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      // Not a TTY: plain progress lines, no control characters.
      expect(r.stdout).toMatch(/^dpo: 2 steps\ndpo step 1\/2 \(50%\) loss=0\.6931 lr=/);
      // biome-ignore lint/suspicious/noControlCharactersInRegex: checking for them is the point
      expect(r.stdout).not.toMatch(/[\u001b\r]/);
      const files = await readdir(out);
      expect(files).toEqual(
        expect.arrayContaining([
          "checkpoint-1",
          "checkpoint-2",
          "metrics.jsonl",
          "report.html",
          "README.md",
          "model.safetensors",
          "config.json",
          "samples.json",
        ]),
      );
      const lines = (await readFile(join(out, "metrics.jsonl"), "utf8"))
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      expect(lines[0]).toMatchObject({
        step: 1,
        loss: 0.6931471824645996,
        "rewards/margins": 0,
        learning_rate: 0.0005,
      });
      expect(lines[1].step).toBe(2);
      expect(lines[1]["rewards/margins"]).toBeGreaterThan(0);
      const pngs = (await readdir(join(out, "charts"))).filter((f) => f.endsWith(".png"));
      expect(pngs).toEqual(expect.arrayContaining(["loss.png", "rewards.png", "learning_rate.png"]));
      const html = await readFile(join(out, "report.html"), "utf8");
      for (const p of pngs) {
        expect(isPng(new Uint8Array(await readFile(join(out, "charts", p))))).toBe(true);
        expect(html).toContain(`charts/${p}`);
      }
      const card = await readFile(join(out, "README.md"), "utf8");
      expect(card).toContain("library_name: prefkit\n");
      expect(card).toContain("- dpo\n");
      expect(card).toContain("| beta | 0.1 |");
      expect(existsSync(join(out, "checkpoint-2", "README.md"))).toBe(true);
    },
  );

  it.skipIf(!model)(
    "prefkit reward then prefkit ppo on stories260K: checkpoints, metrics.jsonl with PPO metrics, report + PNGs, model cards",
    async () => {
      const data = join(REPO_ROOT, "examples/data/tiny-prefs.jsonl");
      const rm = join(dir, "rm");
      const r1 = prefkit(["reward", "--model", model!, "--dataset", data, "--output", rm, "--max-steps", "1"]);
      expect(r1.stderr).toBe("");
      expect(r1.code).toBe(0);
      expect(await readdir(rm)).toEqual(expect.arrayContaining(["model.safetensors", "config.json", "README.md"]));
      const out = join(dir, "ppo");
      const r = prefkit([
        "ppo",
        "--model",
        model!,
        "--reward-model",
        rm,
        "--dataset",
        data,
        "--output",
        out,
        "--max-steps",
        "2",
        "--save-steps",
        "2",
        "--logging-steps",
        "1",
        "--per-device-train-batch-size",
        "4",
        "--response-length",
        "12",
      ]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const files = await readdir(out);
      expect(files).toEqual(
        expect.arrayContaining(["checkpoint-2", "metrics.jsonl", "report.html", "README.md", "model.safetensors"]),
      );
      const lines = (await readFile(join(out, "metrics.jsonl"), "utf8"))
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      // One record per training log, then the end-of-training summary (as HF's Trainer logs it).
      expect(lines.map((l) => l.step)).toEqual([1, 2, 2]);
      expect(lines[2]).toHaveProperty("train_runtime");
      for (const name of ["objective/kl", "objective/scores", "objective/rlhf_reward", "val/ratio", "loss/policy_avg"])
        expect(Number.isFinite(lines[0][name]), name).toBe(true);
      // The first mini-batch of the first update runs the rollout's own weights.
      expect(Math.abs(lines[0]["val/ratio"] - 1)).toBeLessThan(0.01);
      const pngs = (await readdir(join(out, "charts"))).filter((f) => f.endsWith(".png"));
      expect(pngs).toEqual(expect.arrayContaining(["loss.png", "kl.png", "learning_rate.png"]));
      const card = await readFile(join(out, "README.md"), "utf8");
      expect(card).toContain("- ppo\n");
      expect(existsSync(join(out, "checkpoint-2", "trainer_state.json"))).toBe(true);
    },
  );

  const hasScript = existsSync("/usr/bin/script");
  it.skipIf(!model || !hasScript)("in a pseudo-terminal (util-linux `script`) the progress bar draws in place", () => {
    const out = join(dir, "tty");
    const cmd = [
      process.execPath,
      BIN,
      "dpo",
      "--model",
      model!,
      "--dataset",
      join(REPO_ROOT, "examples/data/tiny-prefs.jsonl"),
      "--output",
      out,
      "--max-steps",
      "3",
      "--per-device-train-batch-size",
      "4",
      "--save-strategy",
      "no",
      "--samples",
      "0",
    ]
      .map((a) => `'${a}'`)
      .join(" ");
    const r = spawnSync("/usr/bin/script", ["-qec", cmd, "/dev/null"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      env: { ...process.env, PREFKIT_THREADS: "1", TERM: "xterm" },
      timeout: 300_000,
    });
    expect(r.status, r.stderr).toBe(0);
    // A bar redrawn in place: carriage returns or ANSI cursor control, and the final 100% state.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: checking for them is the point
    expect(r.stdout).toMatch(/[\r\u001b]/);
    expect(r.stdout).toMatch(/100% \| 3\/3 steps/);
    // Not the plain per-step lines of the non-TTY mode.
    expect(r.stdout).not.toMatch(/^dpo step 1\/3 \(33%\)/m);
  });
});
