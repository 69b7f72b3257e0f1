/**
 * stories260K (real pretrained Llama): `generate` with the KV cache reproduces the README's 40
 * greedy ids from BOS, and `generateText` decodes continuations of text, chat and batched prompts.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { tf } from "@prefkit/core";
import {
  AutoModelForCausalLM,
  AutoTokenizer,
  generate,
  generateText,
  type PreTrainedModelForCausalLM,
  type PreTrainedTokenizer,
} from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";
import { useBackend } from "../modeling/golden.js";

const dir = sharedPath("assets/stories260K");

interface Fixtures {
  greedy: { prompt_ids: number[]; max_new_tokens: number; ids: number[]; text: string };
}

describe.skipIf(!dir).each(["wasm", "cpu"])("stories260K generation on %s", (backend) => {
  let model: PreTrainedModelForCausalLM;
  let tokenizer: PreTrainedTokenizer;
  let fx: Fixtures;
  beforeAll(async () => {
    await useBackend(backend);
    model = await AutoModelForCausalLM.fromPretrained(dir!);
    tokenizer = await AutoTokenizer.fromPretrained(dir!);
    fx = JSON.parse(readFileSync(join(dir!, "fixtures.json"), "utf8")) as Fixtures;
  });
  afterAll(() => model?.dispose());

  it("greedy-generates the README's 40 ids from BOS (model.generate and generate())", async () => {
    const { prompt_ids, max_new_tokens, ids } = fx.greedy;
    const before = tf.memory().numTensors;
    const out = await model.generate([prompt_ids], { maxNewTokens: max_new_tokens });
    expect(out.sequences[0]).toEqual(ids);
    expect(out.numGeneratedTokens).toEqual([40]);
    expect(out.finished).toEqual([false]); // the model never emits </s> in these 40 steps
    expect((await generate(model, [prompt_ids], { maxNewTokens: 40 })).sequences[0]).toEqual(ids);
    expect(tokenizer.decode(out.newTokens[0]!, { skipSpecialTokens: true })).toBe(fx.greedy.text);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("generateText continues a string prompt (BOS added once) and returns only the new text", async () => {
    const ids = fx.greedy.ids;
    const res = await generateText(model, tokenizer, "Once upon a time", { maxNewTokens: 12 });
    expect(res.promptIds).toEqual(ids.slice(0, 5));
    expect(res.tokenIds).toEqual(ids.slice(5, 17));
    expect(res.numGeneratedTokens).toBe(12);
    expect(res.text).toBe(tokenizer.decode(ids.slice(5, 17), { skipSpecialTokens: true }));
    expect(res.text.startsWith(",")).toBe(true);
  });

  it("generateText batches prompts of different lengths with left padding, each as alone", async () => {
    const prompts = ["Once upon a time", "Once upon a time, there was a little girl named Lily.", "Tom"];
    const batch = await generateText(model, tokenizer, prompts, { maxNewTokens: 10 });
    expect(batch).toHaveLength(3);
    for (const [i, p] of prompts.entries()) {
      const alone = await generateText(model, tokenizer, p, { maxNewTokens: 10 });
      expect(batch[i], p).toEqual(alone);
    }
    expect(batch[1]!.tokenIds).toEqual(
      fx.greedy.ids.slice(batch[1]!.promptIds.length, batch[1]!.promptIds.length + 10),
    );
  });

  it("generateText applies the chat template with the generation prompt and no doubled BOS", async () => {
    const chat = await AutoTokenizer.fromPretrained(dir!, {
      chatTemplate:
        "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}Once{% endif %}",
    });
    const res = await generateText(model, chat, [{ role: "user", content: "" }], { maxNewTokens: 8, eosTokenId: 2 });
    expect(res.promptIds).toEqual([1, 403]); // "<s> Once": one BOS, and the generation prompt
    expect(res.tokenIds).toEqual(fx.greedy.ids.slice(2, 10));
    const both = await generateText(model, chat, [[{ role: "user", content: "" }], "Once upon"], { maxNewTokens: 4 });
    expect(both[0]!.tokenIds).toEqual(res.tokenIds.slice(0, 4));
  });
});
