/**
 * Issue 16: PPO's and GRPO's rollouts sample on the native decode step (the fast path's `generate()`) and
 * give exactly the rollout of the tfjs decoding for the same seed (responses, log π_old within 1e-5, the
 * update's numbers); each update logs the seconds of its phases under `time/`.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initEngine, nativeBlasPlugin, nativeBlasStatus } from "@prefkit/core";
import type { PreTrainedModelForCausalLM } from "@prefkit/models";
import { nativeDecoderStatus } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { makeTrainer as makeGroupTrainer } from "../grpo-trainer/setup.js";
import { makePPOTrainer, policy } from "./setup.js";

const available = nativeBlasStatus().available && nativeDecoderStatus().available;
const insist = process.env.CI === "true" || process.env.PREFKIT_NATIVE === "1";
if (!available && !insist) console.warn("native rollout tests skipped: the native addons are not built");

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "prefkit-native-rollout-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const TIME = ["time/generation", "time/reference", "time/value", "time/scoring", "time/rollout"];

/** Which sessions `generate()` decoded on, for a model. */
function sessionKinds(model: PreTrainedModelForCausalLM): string[] {
  const kinds: string[] = [];
  const start = model.startDecoding.bind(model);
  vi.spyOn(model, "startDecoding").mockImplementation((batch, capacity) => {
    const session = start(batch, capacity);
    kinds.push(session?.kind ?? "tfjs");
    return session;
  });
  return kinds;
}

describe.skipIf(!available && !insist)("rollouts on the native decode step", () => {
  beforeAll(async () => {
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
  });

  it("PPO: the tfjs decoding's rollout and update, and the time/* split of each update", async () => {
    const run = async (native: boolean) => {
      const model = policy();
      model.decoder.useNativeGeneration = native;
      const kinds = sessionKinds(model);
      const trainer = makePPOTrainer(join(dir, `ppo-${native}`), { model }, { maxSteps: 2 });
      await trainer.train();
      const rollout = trainer.lastRollout!;
      const logs = trainer.state.logHistory.filter((e) => "objective/kl" in e);
      trainer.dispose();
      model.dispose();
      return { kinds, rollout, logs };
    };
    const native = await run(true);
    const tfjs = await run(false);
    expect(new Set(native.kinds)).toEqual(new Set(["native"]));
    expect(new Set(tfjs.kinds)).toEqual(new Set(["tfjs"]));
    expect(native.rollout.responses).toEqual(tfjs.rollout.responses);
    let worst = 0;
    for (const [i, row] of native.rollout.logprobs.entries()) {
      for (const [t, x] of row.entries()) worst = Math.max(worst, Math.abs(x - tfjs.rollout.logprobs[i]![t]!));
    }
    expect(worst).toBeLessThan(1e-5);
    for (const [i, l] of native.logs.entries()) {
      for (const name of ["objective/scores", "objective/kl", "loss/policy_avg", "val/ratio"]) {
        expect(l[name], name).toBeCloseTo(tfjs.logs[i]![name]!, 4);
      }
      for (const name of [...TIME, "time/optimization", "time/update"]) expect(l[name], name).toBeGreaterThan(0);
      const phases = l["time/generation"]! + l["time/reference"]! + l["time/value"]! + l["time/scoring"]!;
      expect(phases).toBeLessThanOrEqual(l["time/rollout"]!);
      expect(l["time/rollout"]! + l["time/optimization"]!).toBeLessThanOrEqual(l["time/update"]! + 1e-9);
    }
  });

  it("GRPO: the tfjs decoding's completions and rewards, with time/* (no reference or value pass at β = 0)", async () => {
    const run = async (native: boolean) => {
      const model = policy();
      model.decoder.useNativeGeneration = native;
      const kinds = sessionKinds(model);
      const trainer = makeGroupTrainer("grpo", join(dir, `grpo-${native}`), { model }, { maxSteps: 2 });
      await trainer.train();
      const logs = trainer.state.logHistory.filter((e) => "reward" in e);
      const completions = trainer.lastRollout!.responses;
      trainer.dispose();
      model.dispose();
      return { kinds, logs, completions };
    };
    const native = await run(true);
    const tfjs = await run(false);
    expect(new Set(native.kinds)).toEqual(new Set(["native"]));
    expect(native.completions).toEqual(tfjs.completions);
    for (const [i, l] of native.logs.entries()) {
      expect(l["reward"]).toBeCloseTo(tfjs.logs[i]!["reward"]!, 6);
      expect(l["time/reference"]).toBe(0);
      expect(l["time/value"]).toBe(0);
      expect(l["time/generation"]).toBeGreaterThan(0);
      expect(l["time/optimization"]).toBeGreaterThan(0);
    }
  });
});
