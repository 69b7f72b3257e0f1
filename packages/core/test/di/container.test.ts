import "reflect-metadata";
import { container as globalContainer, inject, injectable, Lifecycle } from "tsyringe";
import { beforeAll, describe, expect, it } from "vitest";
import { createRunContainer, installPlugins, lossRegistryOf, resolveAllOrEmpty } from "../../src/di/container.js";
import { defaultLossRegistry, LossRegistry } from "../../src/di/loss-registry.js";
import { lossPlugin } from "../../src/di/plugins.js";
import { CALLBACKS, ENGINE, LOSS, MODEL, PLUGINS, TOKENIZER } from "../../src/di/tokens.js";
import { defaultEngine } from "../../src/engine/engine.js";
import { tf } from "../../src/engine/tf.js";
import { ConfigError } from "../../src/errors/index.js";
import type { Loss } from "../../src/interfaces/loss.js";

beforeAll(async () => {
  await tf.setBackend("cpu");
});

const constLoss = (name: string, v: number) => (): Loss<unknown> => ({ name, compute: () => ({ loss: tf.scalar(v) }) });

/** A per-run service with state, injected by token only. */
@injectable()
class StepCounter {
  count = 0;
  constructor(@inject(TOKENIZER) readonly tokenizer: { id: string }) {}
}

describe("run containers", () => {
  it("two run containers do not leak registrations or instances into each other", async () => {
    // A container-scoped service registered once, globally: each run container made afterwards
    // gets its own instance.
    globalContainer.register(StepCounter, { useClass: StepCounter }, { lifecycle: Lifecycle.ContainerScoped });
    const a = createRunContainer();
    const b = createRunContainer();
    a.register(TOKENIZER, { useValue: { id: "tok-a" } });
    b.register(TOKENIZER, { useValue: { id: "tok-b" } });
    const ca = a.resolve(StepCounter);
    ca.count = 5;
    const cb = b.resolve(StepCounter);
    expect(ca).toBe(a.resolve(StepCounter));
    expect(cb).not.toBe(ca);
    expect(cb.count).toBe(0);
    expect(ca.tokenizer.id).toBe("tok-a");
    expect(cb.tokenizer.id).toBe("tok-b");
    // registrations stay in their container
    a.register(MODEL, { useValue: { which: "a" } });
    expect(b.isRegistered(MODEL, true)).toBe(false);
    expect(globalContainer.isRegistered(MODEL, true)).toBe(false);
    a.register(CALLBACKS, { useValue: { name: "cb-a" } });
    expect(resolveAllOrEmpty(b, CALLBACKS)).toEqual([]);
    // loss registries: per run, chained to the global default
    installPlugins(a, [lossPlugin("run-a-only", constLoss("run-a-only", 1))]);
    expect(lossRegistryOf(a).has("run-a-only")).toBe(true);
    expect(lossRegistryOf(b).has("run-a-only")).toBe(false);
    expect(defaultLossRegistry.has("run-a-only")).toBe(false);
    expect(lossRegistryOf(a)).not.toBe(lossRegistryOf(b));
    expect(a.resolve(ENGINE)).toBe(defaultEngine);
    expect(a.resolve<typeof defaultEngine>(ENGINE).tf).toBe(tf);
    expect(resolveAllOrEmpty(a, PLUGINS)).toHaveLength(1);
    expect(resolveAllOrEmpty(b, PLUGINS)).toHaveLength(0);
  });

  it("a nested run container sees its parent's losses but not the reverse", () => {
    const parent = createRunContainer();
    lossRegistryOf(parent).register("parent-loss", constLoss("parent-loss", 2));
    const child = createRunContainer(parent);
    lossRegistryOf(child).register("child-loss", constLoss("child-loss", 3));
    expect(lossRegistryOf(child).names()).toEqual(expect.arrayContaining(["parent-loss", "child-loss"]));
    expect(lossRegistryOf(parent).has("child-loss")).toBe(false);
  });

  it("rejects duplicate plugin names and malformed plugins with ConfigError", () => {
    const c = createRunContainer();
    installPlugins(c, [{ name: "p", register() {} }]);
    expect(() => installPlugins(c, [{ name: "p", register() {} }])).toThrow(/plugin "p" is installed twice/);
    expect(() => installPlugins(c, [{ name: "q" } as never])).toThrow(ConfigError);
  });
});

describe("LossRegistry", () => {
  it("finds losses by name through the chain and lists known names for an unknown one", () => {
    const root = new LossRegistry();
    root.register("sigmoid", constLoss("sigmoid", 0.5));
    const run = new LossRegistry(root).register("my-loss", constLoss("my-loss", 7));
    expect(run.create("sigmoid", {}).name).toBe("sigmoid");
    expect(run.create("my-loss", {}).name).toBe("my-loss");
    let err: unknown;
    try {
      run.get("nope");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe("lossType");
    expect((err as Error).message).toBe('field "lossType": unknown loss type "nope"; known: "my-loss", "sigmoid"');
    expect(() => run.register("my-loss", constLoss("x", 0))).toThrow(/already registered/);
    run.register("my-loss", constLoss("replaced", 0), { override: true });
    expect(run.create("my-loss", {}).name).toBe("replaced");
    // a run may shadow a global name without touching the global one
    run.register("sigmoid", constLoss("shadow", 0));
    expect(run.create("sigmoid", {}).name).toBe("shadow");
    expect(root.create("sigmoid", {}).name).toBe("sigmoid");
  });

  it("LOSS can be provided by a factory reading the registry", () => {
    const c = createRunContainer();
    lossRegistryOf(c).register("k", constLoss("k", 4));
    c.register(LOSS, { useFactory: (cc) => lossRegistryOf(cc).create("k", {}) });
    const loss = c.resolve<Loss<unknown>>(LOSS);
    const out = loss.compute(undefined);
    expect(out.loss.dataSync()[0]).toBe(4);
    out.loss.dispose();
  });
});
