/**
 * The SwiGLU feed-forward block: `down(silu(gate(x)) · up(x))`.
 * @module
 */
import { tf } from "@prefkit/core";
import type { LinearModule } from "./linear.js";

/** The projections of one MLP, in mutable slots so plugins can wrap them. */
export interface MLPModules {
  /** `mlp.gate_proj`: hidden → intermediate. */
  gateProj: LinearModule;
  /** `mlp.up_proj`: hidden → intermediate. */
  upProj: LinearModule;
  /** `mlp.down_proj`: intermediate → hidden. */
  downProj: LinearModule;
}

/** SwiGLU MLP (`hidden_act: silu`). */
export class MLP {
  /** Mutable module slots. */
  readonly modules: MLPModules;

  /** Assemble from modules. */
  constructor(modules: MLPModules) {
    this.modules = modules;
  }

  /** `[B, T, hidden]` → `[B, T, hidden]`. */
  apply(x: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const gate = this.modules.gateProj.apply(x);
      const activated = tf.mul(gate, tf.sigmoid(gate));
      return this.modules.downProj.apply(tf.mul(activated, this.modules.upProj.apply(x))) as tf.Tensor3D;
    });
  }
}
