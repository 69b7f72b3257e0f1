import { describe, expect, it } from "vitest";
import { ConfigError } from "../../src/errors/index.js";
import { getWarmupSteps, LRScheduler, lrLambda } from "../../src/optim/schedules.js";

describe("learning-rate schedules (transformers' get_*_schedule_with_warmup)", () => {
  it("linear with warmup: 0 → peak over warmup, then linearly to 0 at total", () => {
    const s = new LRScheduler("linear", 1e-3, 2, 10);
    const lrs: number[] = [];
    for (let i = 0; i <= 10; i++) {
      lrs.push(s.lr);
      s.step();
    }
    const want = [0, 0.5, 1, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0].map((x) => x * 1e-3);
    for (const [i, lr] of lrs.entries()) expect(lr).toBeCloseTo(want[i]!, 15);
  });

  it("cosine with warmup: half a cosine from peak to 0", () => {
    // progress p = (step − w) / (T − w); λ = ½(1 + cos(π p))
    expect(lrLambda("cosine", 1, 4, 12)).toBe(0.25);
    expect(lrLambda("cosine", 4, 4, 12)).toBe(1);
    expect(lrLambda("cosine", 8, 4, 12)).toBeCloseTo(0.5, 15);
    expect(lrLambda("cosine", 6, 4, 12)).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI / 4)), 15);
    expect(lrLambda("cosine", 12, 4, 12)).toBe(0);
    expect(lrLambda("cosine", 14, 4, 12)).toBeGreaterThanOrEqual(0);
  });

  it("constant ignores warmup, constant_with_warmup uses it (as transformers)", () => {
    expect(lrLambda("constant", 0, 5, 10)).toBe(1);
    expect(lrLambda("constant_with_warmup", 0, 5, 10)).toBe(0);
    expect(lrLambda("constant_with_warmup", 2, 5, 10)).toBe(0.4);
    expect(lrLambda("constant_with_warmup", 7, 5, 10)).toBe(1);
  });

  it("warmup steps: explicit steps win, else ceil(ratio × total)", () => {
    expect(getWarmupSteps(100, 7, 0.5)).toBe(7);
    expect(getWarmupSteps(101, 0, 0.1)).toBe(11);
    expect(getWarmupSteps(100, 0, 0)).toBe(0);
  });

  it("state round-trips and refuses a different schedule; unknown types are ConfigErrors", () => {
    const a = new LRScheduler("cosine", 0.1, 3, 20);
    for (let i = 0; i < 7; i++) a.step();
    const b = new LRScheduler("cosine", 0.1, 3, 20);
    b.loadState(JSON.parse(JSON.stringify(a.state())));
    expect(b.lr).toBe(a.lr);
    expect(() => new LRScheduler("linear", 0.1, 3, 20).loadState(a.state())).toThrow(ConfigError);
    expect(() => new LRScheduler("polynomial" as never, 0.1, 3, 20)).toThrow(/known: "constant"/);
  });
});
