/**
 * Seeded, serialisable random numbers. One {@link Rng} drives data order, dropout seeds and
 * initialisation, so two runs with the same seed give identical numbers, and a resumed run
 * continues the same stream from its saved {@link RngState}.
 * @module
 */

/** Serialisable state of an {@link Rng} (four 32-bit words of xoshiro128**). */
export interface RngState {
  /** Algorithm tag, for forward compatibility. */
  algorithm: "xoshiro128**";
  /** The four state words. */
  s: [number, number, number, number];
}

function splitmix32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x9e3779b9) >>> 0;
    let z = a;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** A small, fast, seeded generator (xoshiro128**) whose state can be saved and restored. */
export class Rng {
  private s: Uint32Array;

  /** Seed with any integer (the same seed always gives the same stream). */
  constructor(seed = 42) {
    const next = splitmix32(seed);
    this.s = new Uint32Array([next(), next(), next(), next()]);
    if (this.s.every((w) => w === 0)) this.s[0] = 1;
  }

  /** Rebuild a generator from a saved state. */
  static fromState(state: RngState): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }

  /** The current state (a copy), for checkpoints. */
  getState(): RngState {
    return { algorithm: "xoshiro128**", s: [this.s[0]!, this.s[1]!, this.s[2]!, this.s[3]!] };
  }

  /** Restore a state produced by {@link Rng.getState}. */
  setState(state: RngState): void {
    if (state.algorithm !== "xoshiro128**" || state.s.length !== 4) {
      throw new Error(`unsupported RNG state: ${JSON.stringify(state).slice(0, 80)}`);
    }
    this.s = new Uint32Array(state.s);
  }

  /** Next uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform float in [0, 1) with 32 bits of randomness. */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n > 0)) throw new RangeError(`Rng.int needs n > 0, got ${n}`);
    return Math.floor(this.next() * n);
  }

  /** Standard normal sample (Box–Muller). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** A fresh integer seed for a tfjs op that takes `seed` (dropout, random init). */
  seed(): number {
    return this.nextUint32() & 0x7fffffff;
  }

  /** Fisher–Yates shuffle of a copy of `items`. */
  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = out[i]!;
      out[i] = out[j]!;
      out[j] = tmp;
    }
    return out;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): number[] {
    return this.shuffle(Array.from({ length: n }, (_, i) => i));
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
