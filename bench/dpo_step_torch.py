#!/usr/bin/env python3
"""PyTorch peer of prefkit's `npm run bench`: the same DPO step (and KV-cache greedy generation) on a
SmolLM-135M-shaped random Llama, written in plain torch (no transformers).

    /usr/bin/python3 bench/dpo_step_torch.py --layers 8 --steps 3
    /usr/bin/python3 bench/dpo_step_torch.py --workload generate --layers 30

Prints one JSON line per workload on stdout; progress goes to stderr. Shapes, loss and optimizer match
bench/run.mjs: 2 pairs x 128 tokens (chosen + rejected concatenated, batch 4), the first 32 tokens of
each row are the prompt, sigmoid DPO loss with beta 0.1, a frozen reference forward under no_grad,
torch.optim.AdamW (lr 1e-6, no weight decay, no clipping). The random weights and tokens differ from
prefkit's (different RNGs), so only the first loss (ln 2, policy == reference) is comparable exactly.
"""
import argparse
import copy
import json
import math
import platform
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SMOL = dict(
    vocab_size=49152,
    hidden_size=576,
    intermediate_size=1536,
    num_attention_heads=9,
    num_key_value_heads=3,
    rope_theta=100000.0,
    rms_norm_eps=1e-5,
    initializer_range=0.02,
)


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def peak_rss_mb():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope_tables(head_dim, positions, theta):
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    freqs = positions.float()[:, None] * inv_freq[None, :]  # [T, D/2]
    emb = torch.cat((freqs, freqs), dim=-1)  # [T, D]
    return emb.cos(), emb.sin()


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        self.n_heads = c["num_attention_heads"]
        self.n_kv = c["num_key_value_heads"]
        self.head_dim = h // self.n_heads
        self.q_proj = nn.Linear(h, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(h, self.n_kv * self.head_dim, bias=False)
        self.v_proj = nn.Linear(h, self.n_kv * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, h, bias=False)

    def forward(self, x, cos, sin, mask, cache=None):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        rep = self.n_heads // self.n_kv
        k = k.repeat_interleave(rep, dim=1)  # repeat_kv
        v = v.repeat_interleave(rep, dim=1)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim)
        if mask is not None:
            scores = scores + mask
        probs = torch.softmax(scores, dim=-1)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(b, t, -1)
        return self.o_proj(out)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, i = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, mask, cache=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    """Llama with a tied LM head (SmolLM's layout)."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        for m in self.modules():  # HF _init_weights
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, mean=0.0, std=c["initializer_range"])

    def forward(self, ids, caches=None, past=0):
        b, t = ids.shape
        head_dim = self.c["hidden_size"] // self.c["num_attention_heads"]
        cos, sin = rope_tables(head_dim, torch.arange(past, past + t), self.c["rope_theta"])
        mask = None
        if t > 1:
            total = past + t
            causal = torch.full((t, total), float("-inf")).triu(past + 1)
            mask = causal[None, None]
        x = self.embed_tokens(ids)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, mask, None if caches is None else caches[i])
        x = self.norm(x)
        return F.linear(x, self.embed_tokens.weight)  # tied head


def selective_log_softmax(logits, index):
    """TRL's selective_log_softmax for float32: gather minus a per-row logsumexp (no [B,T,V] log-softmax kept)."""
    selected = torch.gather(logits, dim=-1, index=index.unsqueeze(-1)).squeeze(-1)
    lse = torch.stack([torch.logsumexp(row, dim=-1) for row in logits])
    return selected - lse


def sequence_logps(model, ids, completion_mask):
    logits = model(ids)[:, :-1]
    labels = ids[:, 1:]
    per_token = selective_log_softmax(logits, labels)
    return (per_token * completion_mask[:, 1:]).sum(-1)


def dpo_step(policy, reference, optimizer, ids, mask, pairs, beta):
    with torch.no_grad():
        ref = sequence_logps(reference, ids, mask)
    logps = sequence_logps(policy, ids, mask)
    chosen, rejected = logps[:pairs], logps[pairs:]
    ref_chosen, ref_rejected = ref[:pairs], ref[pairs:]
    logits = (chosen - ref_chosen) - (rejected - ref_rejected)
    loss = (-F.logsigmoid(beta * logits)).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def config_for(layers):
    return dict(SMOL, num_hidden_layers=layers)


def run_dpo(a):
    torch.manual_seed(a.seed)
    c = config_for(a.layers)
    policy = Llama(c)
    reference = copy.deepcopy(policy)
    for p in reference.parameters():
        p.requires_grad_(False)
    reference.eval()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=a.lr, weight_decay=0.0)
    rows = 2 * a.pairs
    g = torch.Generator().manual_seed(a.seed + 1)
    ids = torch.randint(3, c["vocab_size"], (rows, a.seq), generator=g)
    mask = torch.zeros(rows, a.seq)
    mask[:, a.prompt :] = 1.0
    losses, times = [], []
    for i in range(1 + a.steps):
        t0 = time.perf_counter()
        loss = dpo_step(policy, reference, optimizer, ids, mask, a.pairs, a.beta)
        dt = time.perf_counter() - t0
        losses.append(loss)
        if i > 0:
            times.append(dt)
        log(f"[torch dpo {a.layers}L] step {i}{' (warm-up)' if i == 0 else ''}: {dt:.2f}s loss {loss:.6f}")
    step = statistics.median(times)
    return {
        "workload": "dpo",
        "engine": "torch",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "layers": a.layers,
        "batch": rows,
        "seqLen": a.seq,
        "steps": a.steps,
        "stepSeconds": round(step, 4),
        "stepSecondsAll": [round(t, 4) for t in times],
        "tokensPerSecond": round(rows * a.seq / step, 2),
        "peakRssMB": round(peak_rss_mb(), 1),
        "losses": [round(x, 6) for x in losses],
    }


@torch.no_grad()
def greedy(model, prompt, new_tokens):
    caches = [dict() for _ in model.layers]
    logits = model(prompt, caches, 0)
    past = prompt.shape[1]
    out = []
    for _ in range(new_tokens):
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        out.append(nxt)
        logits = model(nxt, caches, past)
        past += 1
    return torch.cat(out, dim=1)


def run_generate(a):
    torch.manual_seed(a.seed)
    model = Llama(config_for(a.layers)).eval()
    g = torch.Generator().manual_seed(a.seed + 2)
    results = []
    shapes = [(batch, a.gen_tokens) for batch in a.gen_batches]
    if a.gen_long_tokens > 0:
        shapes.append((1, a.gen_long_tokens))
    for batch, new_tokens in shapes:
        prompt = torch.randint(3, SMOL["vocab_size"], (batch, a.gen_prompt), generator=g)
        greedy(model, prompt, 2)  # warm-up
        times = []
        # One timed run of the long shape (its 128 steps already average out), as prefkit's bench does.
        for _ in range(a.gen_reps if new_tokens == a.gen_tokens else 1):
            t0 = time.perf_counter()
            greedy(model, prompt, new_tokens)
            times.append(time.perf_counter() - t0)
        sec = statistics.median(times)
        log(f"[torch generate {a.layers}L] batch {batch}: {sec:.2f}s for {new_tokens} new tokens")
        results.append(
            {
                "workload": "generate",
                "engine": "torch",
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "layers": a.layers,
                "batch": batch,
                "promptLen": a.gen_prompt,
                "newTokens": new_tokens,
                "seconds": round(sec, 4),
                "tokensPerSecond": round(batch * new_tokens / sec, 2),
                "peakRssMB": round(peak_rss_mb(), 1),
            }
        )
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", choices=["dpo", "generate"], default="dpo")
    p.add_argument("--layers", type=int, default=30)
    p.add_argument("--steps", type=int, default=3, help="measured steps after one warm-up step")
    p.add_argument("--pairs", type=int, default=2)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--prompt", type=int, default=32, help="prompt tokens per row (not scored)")
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=1e-6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gen-batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8])
    p.add_argument("--gen-prompt", type=int, default=16)
    p.add_argument("--gen-tokens", type=int, default=32)
    p.add_argument("--gen-reps", type=int, default=3)
    p.add_argument(
        "--gen-long-tokens", type=int, default=128, help="also batch 1 with this many new tokens (0: no such line)"
    )
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    log(f"torch {torch.__version__} on {platform.python_version()}, {torch.get_num_threads()} threads")
    if a.workload == "dpo":
        print(json.dumps(run_dpo(a)), flush=True)
    else:
        for line in run_generate(a):
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
