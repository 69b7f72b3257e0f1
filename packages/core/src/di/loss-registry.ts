import { ConfigError } from "../errors/index.js";
import type { Loss, LossFactory, LossOutput } from "../interfaces/loss.js";

/** Options of {@link LossRegistry.register}. */
export interface RegisterLossOptions {
  /** Replace an existing registration of the same name in this registry. Default false. */
  override?: boolean;
}

/**
 * Losses by name. A config's `lossType: "my-loss"` finds a user's loss exactly as it finds
 * `"sigmoid"`: both are {@link LossFactory} entries here.
 *
 * Registries form a chain. {@link defaultLossRegistry} is the process-wide root that
 * `@prefkit/losses` fills on import; every run container gets a child registry
 * (see `createRunContainer`), so a loss registered for one run is visible to that run only,
 * while globally registered losses are visible to all runs. Lookups try the child first.
 */
export class LossRegistry {
  private readonly factories = new Map<string, LossFactory<any, any, any>>();

  /** @param parent registry consulted when a name is not registered here. */
  constructor(readonly parent?: LossRegistry) {}

  /** Register `factory` under `name`. Throws a {@link ConfigError} if the name is taken here (unless `override`). */
  register<TConfig, TInputs, TOutput extends LossOutput>(
    name: string,
    factory: LossFactory<TConfig, TInputs, TOutput>,
    options: RegisterLossOptions = {},
  ): this {
    if (!name) throw new ConfigError("a loss needs a non-empty name", { field: "lossType" });
    if (this.factories.has(name) && !options.override) {
      throw new ConfigError(`loss "${name}" is already registered (pass { override: true } to replace it)`, {
        field: "lossType",
      });
    }
    this.factories.set(name, factory);
    return this;
  }

  /** True when `name` is registered here or in a parent. */
  has(name: string): boolean {
    return this.factories.has(name) || (this.parent?.has(name) ?? false);
  }

  /** Every registered name (this registry and its parents), sorted. */
  names(): string[] {
    const all = new Set<string>(this.parent?.names() ?? []);
    for (const n of this.factories.keys()) all.add(n);
    return [...all].sort();
  }

  /**
   * The factory registered under `name`. Throws a {@link ConfigError} on `field` that lists
   * the known names when there is none.
   */
  get<TConfig = unknown, TInputs = unknown, TOutput extends LossOutput = LossOutput>(
    name: string,
    field = "lossType",
  ): LossFactory<TConfig, TInputs, TOutput> {
    const own = this.factories.get(name);
    if (own) return own;
    if (this.parent?.has(name)) return this.parent.get(name, field);
    const known = this.names();
    throw new ConfigError(
      `unknown loss type "${name}"; known: ${known.length ? known.map((n) => `"${n}"`).join(", ") : "(none registered)"}`,
      { field },
    );
  }

  /** Build the loss `name` from `config` (see {@link LossRegistry.get}). */
  create<TConfig = unknown, TInputs = unknown, TOutput extends LossOutput = LossOutput>(
    name: string,
    config: TConfig,
    field = "lossType",
  ): Loss<TInputs, TOutput> {
    return this.get<TConfig, TInputs, TOutput>(name, field)(config);
  }
}

/** The process-wide registry: built-in losses, and user losses meant for every run. */
export const defaultLossRegistry: LossRegistry = new LossRegistry();

/** Register a loss in {@link defaultLossRegistry} (visible to every run). */
export function registerLoss<TConfig, TInputs, TOutput extends LossOutput>(
  name: string,
  factory: LossFactory<TConfig, TInputs, TOutput>,
  options?: RegisterLossOptions,
): LossRegistry {
  return defaultLossRegistry.register(name, factory, options);
}
