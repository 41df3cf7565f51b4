#!/usr/bin/env python3
"""The PyTorch side of loralab's benchmarks, for ratios measured on the same machine.

Run with a Python that has torch (Debian 12: `apt-get install python3-torch`, then
`/usr/bin/python3 bench/torch_compare.py`; on the GPU machine: the installed PyTorch, `--device cuda`).
Prints JSON rows shaped like `deno task bench --json`:
  - f32 matmul GFLOP/s at 128..2048 (TF32 off),
  - a LoRA layer (768x768, r=8) forward+backward on 1024 tokens,
  - training steps (tokens/s) of the shipped model's shape (GPT-2 architecture, 1.85 M parameters,
    batch 8 x 128): full fine-tuning and LoRA r=8 on every linear of the blocks, AdamW.
The model is a plain nanoGPT-style GPT-2 written here (no transformers/peft needed on the CPU).
"""
import argparse, json, math, time

import torch
import torch.nn as nn
import torch.nn.functional as F


def timeit(fn, min_s):
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if time.perf_counter() - t0 >= min_s:
            return (time.perf_counter() - t0) / n * 1000


class LoRALinear(nn.Module):
    """y = x W^T + b + s (x A^T) B^T with W frozen (PEFT's init: A Kaiming-uniform, B zero)."""

    def __init__(self, base: nn.Linear, r=8, alpha=16):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.A = nn.Parameter(torch.empty(r, base.in_features))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))
        self.s = alpha / r

    def forward(self, x):
        return self.base(x) + self.s * (x @ self.A.t()) @ self.B.t()


class Block(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        self.H = H

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.H)
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        y = att.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        x = x + self.c_proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, V, P, C, L, H):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(P, C)
        self.h = nn.ModuleList(Block(C, H) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)

    def forward(self, idx, tgt):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for b in self.h:
            x = b(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))


def lora_ize(model):
    for p in model.parameters():
        p.requires_grad_(False)
    for b in model.h:
        for name in ["c_attn", "c_proj", "c_fc", "mlp_proj"]:
            setattr(b, name, LoRALinear(getattr(b, name)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--min-s", type=float, default=1.5)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    dev = a.device
    rows = []
    for n in [128, 256, 512, 1024, 2048]:
        x, y = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
        ms = timeit(lambda: x @ y, a.min_s)
        rows.append({"bench": f"matmul f32 {n}", "ms": ms, "gflops": 2 * n**3 / ms / 1e6})
    lin = LoRALinear(nn.Linear(768, 768).to(dev)).to(dev)
    xx = torch.randn(1024, 768, device=dev, requires_grad=True)

    def lora_step():
        lin.zero_grad(set_to_none=True)
        lin(xx).sum().backward()

    ms = timeit(lora_step, a.min_s)
    rows.append({"bench": "lora-layer fwd+bwd 768x768 r8 f32 base, 1024 tokens", "ms": ms, "tokens_per_s": 1024 / (ms / 1000)})
    for method in ["full", "lora"]:
        m = GPT(257, 128, 192, 4, 6).to(dev)
        if method == "lora":
            lora_ize(m)
        opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4, weight_decay=0)
        idx = torch.randint(0, 257, (8, 128), device=dev)

        def step():
            opt.zero_grad(set_to_none=True)
            m(idx, (idx + 1) % 257).backward()
            opt.step()

        ms = timeit(step, a.min_s)
        rows.append({"bench": f"train step shipped base (1.85 M) {method} 8x128", "ms": ms, "tokens_per_s": 1024 / (ms / 1000)})
    print(json.dumps({"bench": "torch_compare", "torch": torch.__version__, "device": dev, "threads": torch.get_num_threads(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
