import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "@prefkit/core";
import {
  AutoTokenizer,
  CHATML_TEMPLATE,
  chatTemplatesFromField,
  commonPrefixLength,
  isPrefix,
  MISTRAL_INST_TEMPLATE,
  renderChatTemplate,
  SMOLLM2_CHAT_TEMPLATE,
  stripDoubledBos,
} from "@prefkit/models";
import { afterAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";

const dir = sharedPath("assets/stories260K");
const CONV = [
  { role: "user", content: "Hi" },
  { role: "assistant", content: "Hello!" },
];

describe("renderChatTemplate and the built-in templates", () => {
  it("ChatML renders each turn and the generation prompt", () => {
    expect(renderChatTemplate(CHATML_TEMPLATE, CONV)).toBe(
      "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n",
    );
    expect(renderChatTemplate(CHATML_TEMPLATE, CONV.slice(0, 1), { addGenerationPrompt: true })).toBe(
      "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  it("SmolLM2's ChatML adds its default system turn only when there is no system message", () => {
    expect(renderChatTemplate(SMOLLM2_CHAT_TEMPLATE, CONV.slice(0, 1))).toBe(
      "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n" +
        "<|im_start|>user\nHi<|im_end|>\n",
    );
    expect(renderChatTemplate(SMOLLM2_CHAT_TEMPLATE, [{ role: "system", content: "Be brief." }, CONV[0]!])).toBe(
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
    );
  });

  it("Mistral [INST] renders v0.2 style and raises on bad role order", () => {
    const ctx = { bos_token: "<s>", eos_token: "</s>" };
    const four = [...CONV, { role: "user", content: "Bye" }, { role: "assistant", content: "Ciao" }];
    expect(renderChatTemplate(MISTRAL_INST_TEMPLATE, four, {}, ctx)).toBe(
      "<s>[INST] Hi [/INST]Hello!</s>[INST] Bye [/INST]Ciao</s>",
    );
    expect(() => renderChatTemplate(MISTRAL_INST_TEMPLATE, [CONV[1]!], {}, ctx)).toThrow(/must alternate/);
    expect(() => renderChatTemplate(MISTRAL_INST_TEMPLATE, [{ role: "system", content: "x" }], {}, ctx)).toThrow(
      ConfigError,
    );
  });

  it("passes extra options through as template variables, and handles continueFinalMessage", () => {
    expect(
      renderChatTemplate("{{ enable_thinking }}|{{ add_generation_prompt }}", [], { enable_thinking: false }),
    ).toBe("false|false");
    expect(renderChatTemplate(CHATML_TEMPLATE, CONV, { continueFinalMessage: true })).toBe(
      "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!",
    );
    expect(() =>
      renderChatTemplate(CHATML_TEMPLATE, CONV, { continueFinalMessage: true, addGenerationPrompt: true }),
    ).toThrow(ConfigError);
    expect(() => renderChatTemplate("{% for %}", CONV)).toThrow(/does not parse/);
  });

  it("reads chat_template as a string or a named list", () => {
    expect(chatTemplatesFromField("T")).toEqual({ default: "T" });
    expect(
      chatTemplatesFromField([
        { name: "default", template: "A" },
        { name: "tool_use", template: "B" },
      ]),
    ).toEqual({
      default: "A",
      tool_use: "B",
    });
    expect(() => chatTemplatesFromField([{ name: "x" }], "cfg.json")).toThrow(/cfg\.json.*chat_template\[0\]/);
  });

  it("token-space helpers", () => {
    expect(commonPrefixLength([1, 2, 3], [1, 2, 4])).toBe(2);
    expect(isPrefix([1, 2], [1, 2, 3])).toBe(true);
    expect(isPrefix([1, 3], [1, 2, 3])).toBe(false);
    expect(isPrefix([1, 2, 3, 4], [1, 2, 3])).toBe(false);
    expect(stripDoubledBos([1, 1, 5], 1)).toEqual([1, 5]);
    expect(stripDoubledBos([1, 5], 1)).toEqual([1, 5]);
    expect(stripDoubledBos([1, 1, 5], undefined)).toEqual([1, 1, 5]);
  });
});

describe.skipIf(!dir)("AutoTokenizer.fromPretrained: template and special-token sources", () => {
  const tmp = mkdtempSync(join(tmpdir(), "prefkit-tok-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const makeDir = (name: string, files: Record<string, string | object>) => {
    const d = mkdtempSync(join(tmp, `${name}-`));
    copyFileSync(join(dir!, "tokenizer.json"), join(d, "tokenizer.json"));
    for (const [file, content] of Object.entries(files)) {
      writeFileSync(join(d, file), typeof content === "string" ? content : JSON.stringify(content));
    }
    return d;
  };

  it("chat_template.jinja wins over tokenizer_config's chat_template", async () => {
    const d = makeDir("jinja", {
      "tokenizer_config.json": { bos_token: "<s>", eos_token: "</s>", chat_template: "CONFIG" },
      "chat_template.jinja": MISTRAL_INST_TEMPLATE,
    });
    const tok = await AutoTokenizer.fromPretrained(d);
    expect(tok.applyChatTemplate(CONV)).toBe("<s>[INST] Hi [/INST]Hello!</s>");
  });

  it("a named-template list: default is used, tool_use when tools are given, and by name", async () => {
    const d = makeDir("named", {
      "tokenizer_config.json": {
        chat_template: [
          { name: "default", template: "D" },
          { name: "tool_use", template: "T{{ tools | length }}" },
        ],
      },
    });
    const tok = await AutoTokenizer.fromPretrained(d);
    expect(tok.applyChatTemplate(CONV)).toBe("D");
    expect(tok.applyChatTemplate(CONV, { tools: [{}, {}] })).toBe("T2");
    expect(tok.applyChatTemplate(CONV, { chatTemplate: "tool_use", tools: [] })).toBe("T0");
    expect(tok.applyChatTemplate(CONV, { chatTemplate: "X{{ messages | length }}" })).toBe("X2");
    tok.chatTemplate = CHATML_TEMPLATE;
    expect(tok.applyChatTemplate(CONV, { addGenerationPrompt: true }).endsWith("<|im_start|>assistant\n")).toBe(true);
  });

  it("special tokens: AddedToken objects, special_tokens_map.json, then generation_config ids", async () => {
    const objects = await AutoTokenizer.fromPretrained(
      makeDir("objects", {
        "tokenizer_config.json": { bos_token: { content: "<s>", special: true }, eos_token: { content: "</s>" } },
      }),
    );
    expect([objects.bosTokenId, objects.eosTokenId, objects.padTokenId]).toEqual([1, 2, undefined]);

    const mapped = await AutoTokenizer.fromPretrained(
      makeDir("map", { "special_tokens_map.json": { eos_token: { content: "</s>" }, pad_token: "<unk>" } }),
    );
    expect([mapped.bosToken, mapped.eosTokenId, mapped.padTokenId]).toEqual([undefined, 2, 0]);

    const fromIds = await AutoTokenizer.fromPretrained(
      makeDir("ids", { "generation_config.json": { bos_token_id: 1, eos_token_id: [2, 0] } }),
    );
    expect([fromIds.bosToken, fromIds.bosTokenId, fromIds.eosToken, fromIds.eosTokenId]).toEqual(["<s>", 1, "</s>", 2]);
  });

  it("takes padding_side/truncation_side from the config and reports bad values and bad JSON", async () => {
    const left = await AutoTokenizer.fromPretrained(
      makeDir("left", {
        "tokenizer_config.json": { padding_side: "left", truncation_side: "left", pad_token: "<unk>" },
      }),
    );
    expect([left.paddingSide, left.truncationSide]).toEqual(["left", "left"]);
    expect(left.encodeBatch(["Hello world", "Hello"]).attentionMask[1]![0]).toBe(0);
    await expect(
      AutoTokenizer.fromPretrained(makeDir("side", { "tokenizer_config.json": { padding_side: "middle" } })),
    ).rejects.toThrow(/padding_side/);
    await expect(AutoTokenizer.fromPretrained(makeDir("bad", { "tokenizer_config.json": "{nope" }))).rejects.toThrow(
      /tokenizer_config\.json: not valid JSON/,
    );
  });
});
