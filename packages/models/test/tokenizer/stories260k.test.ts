import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "@prefkit/core";
import { AutoTokenizer, MISTRAL_INST_TEMPLATE, PreTrainedTokenizer, stripDoubledBos } from "@prefkit/models";
import { beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";

const dir = sharedPath("assets/stories260K");

interface Fixtures {
  tokenizer: { bos_id: number; eos_id: number; unk_id: number; cases: { text: string; ids: number[] }[] };
  greedy: { ids: number[]; text: string };
}

describe.skipIf(!dir)("stories260K tokenizer (SentencePiece-style BPE, byte fallback)", () => {
  let tok: PreTrainedTokenizer;
  let fx: Fixtures;
  beforeAll(async () => {
    tok = await AutoTokenizer.fromPretrained(dir!);
    fx = JSON.parse(readFileSync(join(dir!, "fixtures.json"), "utf8")) as Fixtures;
  });

  it("encodes all 25 fixture strings to the recorded HF-tokenizers ids and decodes them back", () => {
    expect(fx.tokenizer.cases).toHaveLength(25);
    for (const { text, ids } of fx.tokenizer.cases) {
      expect(tok.encode(text), JSON.stringify(text)).toEqual(ids);
      expect(tok.decode(ids, { skipSpecialTokens: true }), JSON.stringify(text)).toBe(text);
    }
  });

  it("adds BOS as tokenizer_config says (add_bos_token true, add_eos_token false)", () => {
    expect(tok.prefixSpecialIds).toEqual([1]);
    expect(tok.suffixSpecialIds).toEqual([]);
    expect(tok.encode("Hello world")).toEqual([1, 346, 306, 414, 263, 304, 341]);
    expect(tok.encode("Hello world", { addSpecialTokens: false })).toEqual([346, 306, 414, 263, 304, 341]);
    expect(tok.encode("")).toEqual([1]);
    expect(tok.decode([1, 346, 306, 414, 263, 304, 341])).toBe("<s> Hello world");
    expect(tok.decode([])).toBe("");
  });

  it("resolves special tokens, sides and limits from tokenizer_config.json", () => {
    expect([tok.bosToken, tok.bosTokenId]).toEqual(["<s>", fx.tokenizer.bos_id]);
    expect([tok.eosToken, tok.eosTokenId]).toEqual(["</s>", fx.tokenizer.eos_id]);
    expect([tok.unkToken, tok.unkTokenId]).toEqual(["<unk>", fx.tokenizer.unk_id]);
    expect(tok.padTokenId).toBeUndefined(); // pad_token: null, as in HF
    expect(tok.paddingSide).toBe("right");
    expect(tok.modelMaxLength).toBe(512);
    expect(tok.vocabSize).toBe(512);
    expect(tok.cleanUpTokenizationSpaces).toBe(false);
  });

  it("decodes the known greedy continuation", () => {
    expect(tok.decode(fx.greedy.ids, { skipSpecialTokens: true })).toBe(fx.greedy.text);
    expect(tok.decode(fx.greedy.ids).startsWith("<s> Once upon")).toBe(true);
  });

  it("ensurePadToken falls back to eos (TRL) and keeps an existing pad", async () => {
    const own = await AutoTokenizer.fromPretrained(dir!);
    expect(own.ensurePadToken()).toBe(2);
    expect([own.padToken, own.padTokenId]).toEqual(["</s>", 2]);
    own.setSpecialToken("pad", "<unk>");
    expect(own.ensurePadToken()).toBe(0);
    expect(() => own.setSpecialToken("pad", "<nope>")).toThrow(ConfigError);
  });

  it("has no chat template: a clear ConfigError, and an explicit one works without doubled BOS", () => {
    expect(tok.hasChatTemplate).toBe(false);
    const msgs = [{ role: "user", content: "Hello world" }];
    expect(() => tok.applyChatTemplate(msgs)).toThrow(ConfigError);
    expect(() => tok.applyChatTemplate(msgs)).toThrow(/chat_template.*no chat template/);
    const text = tok.applyChatTemplate(msgs, { chatTemplate: MISTRAL_INST_TEMPLATE });
    expect(text).toBe("<s>[INST] Hello world [/INST]");
    const ids = tok.applyChatTemplate(msgs, { chatTemplate: MISTRAL_INST_TEMPLATE, tokenize: true });
    expect(ids[0]).toBe(1);
    expect(ids[1]).not.toBe(1);
    // Tokenizing the rendered text the HF-default way (special tokens on) doubles the BOS.
    const doubled = tok.encode(text);
    expect(doubled.slice(0, 2)).toEqual([1, 1]);
    expect(stripDoubledBos(doubled, tok.bosTokenId)).toEqual(ids);
    expect(tok.stripDoubledBos(ids)).toBe(ids);
    expect(tok.chatTemplateAddsBos({ chatTemplate: MISTRAL_INST_TEMPLATE })).toBe(true);
  });

  it("fromFiles without tokenizer_config.json: BOS still comes from the post-processor, no token strings", async () => {
    const bare = await PreTrainedTokenizer.fromFiles(join(dir!, "tokenizer.json"));
    expect(bare.encode("Hello world")).toEqual([1, 346, 306, 414, 263, 304, 341]);
    expect(bare.bosToken).toBeUndefined();
    expect(bare.cleanUpTokenizationSpaces).toBe(true); // @huggingface/tokenizers' default with {}
    const withConfig = await PreTrainedTokenizer.fromFiles(
      join(dir!, "tokenizer.json"),
      join(dir!, "tokenizer_config.json"),
    );
    expect(withConfig.bosTokenId).toBe(1);
  });

  it("names the file in errors", async () => {
    await expect(AutoTokenizer.fromPretrained(join(dir!, "original"))).rejects.toThrow(/original\/tokenizer\.json/);
  });
});
