import { EventEmitter } from "eventemitter3";
import type { TrainingArgs } from "../interfaces/trainer.js";
import {
  CALLBACK_EVENTS,
  type Callback,
  type CallbackEventName,
  type EvaluatePayload,
  type LogPayload,
  type SavePayload,
  type TrainerControl,
  type TrainerState,
} from "../interfaces/callback.js";

/** The payload type of each callback event (`undefined` for events without one). */
export interface CallbackPayloadMap {
  /** No payload. */
  onInitEnd: undefined;
  /** No payload. */
  onTrainBegin: undefined;
  /** No payload. */
  onEpochBegin: undefined;
  /** No payload. */
  onEpochEnd: undefined;
  /** No payload. */
  onStepBegin: undefined;
  /** No payload. */
  onSubstepEnd: undefined;
  /** No payload. */
  onStepEnd: undefined;
  /** The evaluation metrics. */
  onEvaluate: EvaluatePayload;
  /** The logged values. */
  onLog: LogPayload;
  /** The checkpoint directory. */
  onSave: SavePayload;
  /** No payload. */
  onTrainEnd: undefined;
}

type Listener = (args: unknown, state: unknown, control: unknown, payload: unknown) => unknown;

/**
 * Dispatches callback events on an eventemitter3 bus, awaiting each listener in registration
 * order (so async callbacks are supported and see each other's flag changes).
 *
 * As in transformers' `CallbackHandler`, the flags an event answers are reset before its
 * listeners run: `onStepBegin` clears `shouldLog`/`shouldEvaluate`/`shouldSave`, `onLog` clears
 * `shouldLog`, `onEvaluate` clears `shouldEvaluate`, `onSave` clears `shouldSave`,
 * `onEpochBegin` clears `shouldEpochStop`, `onTrainBegin` clears `shouldTrainingStop`.
 */
export class CallbackHandler<TArgs extends TrainingArgs = TrainingArgs> {
  private readonly bus = new EventEmitter<string>();
  private readonly registered: Array<{ callback: Callback<TArgs>; listeners: Array<[string, Listener]> }> = [];

  /** @param callbacks initial callbacks, in the order they will be called. */
  constructor(callbacks: Iterable<Callback<TArgs>> = []) {
    for (const cb of callbacks) this.add(cb);
  }

  /** The registered callbacks, in call order. */
  get callbacks(): Callback<TArgs>[] {
    return this.registered.map((r) => r.callback);
  }

  /** Add a callback (called after those already registered). */
  add(callback: Callback<TArgs>): this {
    const listeners: Array<[string, Listener]> = [];
    for (const event of CALLBACK_EVENTS) {
      const hook = callback[event] as Listener | undefined;
      if (typeof hook !== "function") continue;
      const listener: Listener = (a, s, c, p) => hook.call(callback, a, s, c, p);
      this.bus.on(event, listener);
      listeners.push([event, listener]);
    }
    this.registered.push({ callback, listeners });
    return this;
  }

  /** Remove a callback added earlier. Returns false if it was not registered. */
  remove(callback: Callback<TArgs>): boolean {
    const i = this.registered.findIndex((r) => r.callback === callback);
    if (i < 0) return false;
    for (const [event, listener] of this.registered[i]!.listeners) this.bus.off(event, listener);
    this.registered.splice(i, 1);
    return true;
  }

  /**
   * Fire `event`: reset the flags it answers, then await every listener in order.
   * Returns `control` (mutated by the callbacks).
   */
  async emit<E extends CallbackEventName>(
    event: E,
    args: Readonly<TArgs>,
    state: Readonly<TrainerState>,
    control: TrainerControl,
    ...payload: CallbackPayloadMap[E] extends undefined ? [] : [CallbackPayloadMap[E]]
  ): Promise<TrainerControl> {
    switch (event) {
      case "onTrainBegin":
        control.shouldTrainingStop = false;
        break;
      case "onEpochBegin":
        control.shouldEpochStop = false;
        break;
      case "onStepBegin":
        control.shouldLog = false;
        control.shouldEvaluate = false;
        control.shouldSave = false;
        break;
      case "onLog":
        control.shouldLog = false;
        break;
      case "onEvaluate":
        control.shouldEvaluate = false;
        break;
      case "onSave":
        control.shouldSave = false;
        break;
    }
    for (const listener of this.bus.listeners(event) as Listener[]) {
      await listener(args, state, control, payload[0]);
    }
    return control;
  }
}
