import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { formatDuration, ProgressCallback } from "../src/index.js";
import { harness } from "./helpers.js";

function sink() {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  }) as Writable & { isTTY?: boolean };
  return { stream, text: () => chunks.join("") };
}

describe("ProgressCallback (not a TTY)", () => {
  it("writes plain lines with step, loss, lr and ETA and no control characters", async () => {
    const out = sink();
    let now = 0;
    const cb = new ProgressCallback({ stream: out.stream, label: "dpo", now: () => now });
    const h = harness([cb]);
    h.state.maxSteps = 4;
    await h.begin();
    now = 2000;
    await h.step({ loss: 0.6925, learning_rate: 1e-6 });
    now = 4000;
    await h.step({ loss: 0.5, learning_rate: 5e-7 });
    await h.log({ eval_loss: 0.45, eval_runtime: 1 });
    await h.log({ train_loss: 0.6, train_runtime: 4 });
    await h.end();
    const text = out.text();
    expect(text).toBe(
      [
        "dpo: 4 steps",
        "dpo step 1/4 (25%) loss=0.6925 lr=1.00e-6 elapsed=2s eta=6s",
        "dpo step 2/4 (50%) loss=0.5 lr=5.00e-7 elapsed=4s eta=4s",
        "dpo step 2/4 eval_loss=0.45",
        "dpo done: 2 steps in 4s, train_loss=0.6",
        "",
      ].join("\n"),
    );
    // biome-ignore lint/suspicious/noControlCharactersInRegex: checking for them is the point
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
  });

  it("defaults to plain mode when the stream is not a TTY", async () => {
    const out = sink();
    const h = harness([new ProgressCallback({ stream: out.stream })]);
    await h.begin();
    await h.end();
    expect(out.text()).toBe("train: 10 steps\n");
  });

  it("formats durations", () => {
    expect([formatDuration(59.4), formatDuration(1234), formatDuration(7260), formatDuration(Number.NaN)]).toEqual([
      "59s",
      "20m34s",
      "2h01m",
      "?",
    ]);
  });
});
