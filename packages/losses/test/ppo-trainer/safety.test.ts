// Issue 12 for PPO: saveModel leaves the rest of the directory as it was; prompts with unknown roles are refused.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatasetError, type TokenizerLike, tf } from "@prefkit/core";
import { PPOTrainer, tokenizePrompts } from "@prefkit/losses";
import { AutoModelForCausalLM } from "@prefkit/models";
import { afterAll, beforeAll, expect, it } from "vitest";
import { fileTree } from "../../../../test/helpers/files.js";
import { TINY_LLAMA_WITH_SPECIAL_TOKENS } from "../../../../test/helpers/tiny-llama.js";

let dir: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  dir = await mkdtemp(join(tmpdir(), "prefkit-ppo-save-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const tokenizer: TokenizerLike = {
  encode: (text) => [...text].map((ch) => ch.charCodeAt(0) - 97),
  decode: (ids) => ids.map((id) => String.fromCharCode(97 + id)).join(""),
  applyChatTemplate: (messages) => messages.map((m) => m.content).join(""),
  hasChatTemplate: false,
  bosTokenId: 1,
  eosTokenId: 2,
  padTokenId: 0,
};

const tree = (d: string) => fileTree(d);

it("PPOTrainer.saveModel keeps the run's checkpoints and the user's files", async () => {
  const out = join(dir, "run");
  await mkdir(join(out, "checkpoint-2"), { recursive: true });
  await writeFile(join(out, "checkpoint-2", "trainer_state.json"), "{}");
  await writeFile(join(out, "metrics.jsonl"), '{"step":1}\n');
  await writeFile(join(out, "notes.txt"), "mine");
  const before = await tree(out);
  const model = AutoModelForCausalLM.fromConfig(TINY_LLAMA_WITH_SPECIAL_TOKENS, { seed: 1 });
  const trainer = new PPOTrainer({
    model,
    rewardModel: (completions) => completions.map(() => 0),
    trainDataset: [{ inputIds: [1, 3, 4] }, { inputIds: [1, 5] }],
    processingClass: tokenizer,
    args: { outputDir: out, perDeviceTrainBatchSize: 2, valueHead: "policy" },
  });
  await trainer.saveModel(out);
  const after = await tree(out);
  for (const [f, h] of Object.entries(before)) expect(after[f], f).toBe(h);
  expect(Object.keys(after).sort()).toEqual([...Object.keys(before), "config.json", "model.safetensors"].sort());
  trainer.dispose();
  model.dispose();
});

it('a prompt message with role "usr" is refused naming row and field', async () => {
  const rows = [{ prompt: [{ role: "user", content: "abc" }] }, { prompt: [{ role: "usr", content: "abc" }] }];
  const e = await tokenizePrompts(rows, { ...tokenizer, hasChatTemplate: true }).catch((x: unknown) => x);
  expect(e).toBeInstanceOf(DatasetError);
  expect((e as DatasetError).message).toBe(
    'row 2, field "prompt[0].role": message 0 has role "usr"; expected one of system, user, assistant, tool',
  );
});
