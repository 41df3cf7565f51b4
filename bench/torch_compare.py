#!/usr/bin/env python3
"""The PyTorch side of loralab's benchmarks, for ratios measured on the same machine.

Run with a Python that has torch (Debian 12: `apt-get install python3-torch`, then
`/usr/bin/python3 bench/torch_compare.py`; on the GPU machine: the installed PyTorch, `--device cuda`).
Prints JSON rows shaped like `deno task bench --json`; `--parts` picks among:
  - matmul: f32 matmul GFLOP/s at n x n (`--sizes`; 128..2048, plus 4096 on cuda), TF32 off,
  - shapes: y = x W^T at GPT-2-small's linears (N x K = 2304x768, 768x768, 3072x768, 768x3072) at
    M = `--gpt2-m` (default B*T of `--gpt2-batch`) and M = 1, like bench/qmatmul.ts --gpt2-m,
  - layer: a LoRA layer (768x768, r=8) forward+backward on 1024 tokens,
  - shipped: training steps (tokens/s) of the shipped model's shape (GPT-2 architecture, 1.85 M
    parameters, batch 8 x 128): full fine-tuning and LoRA r=8 on every linear of the blocks, AdamW,
  - gpt2: the PEFT anchor: transformers' GPT2LMHeadModel(GPT2Config()) randomly initialised (dropout
    0, as ours), peft LoraConfig(r=8, lora_alpha=16, lora_dropout=0, target_modules=["c_attn",
    "c_proj", "c_fc"], fan_in_fan_out=True), AdamW, batch x context `--gpt2-batch` (8x1024 on cuda),
    tokens/s and peak memory; `--methods lora,full`. When transformers or peft cannot be imported,
    the plain model below stands in (LoRA on all four block linears) and each row says so.
Defaults: cpu runs matmul,layer,shipped; cuda runs all five. TF32 is off everywhere (fp32 anchor).
The shipped-shape model is a plain nanoGPT-style GPT-2 written here (no transformers/peft needed).
"""
import argparse, gc, json, math, time

import torch
import torch.nn as nn
import torch.nn.functional as F


def timeit(fn, min_s, warmup=1):
    """Mean ms per call of fn after `warmup` calls; the GPU is synchronised after every call."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        sync()
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
    """nanoGPT-style GPT-2 with a tied head; `forward(idx, tgt)` returns the mean cross-entropy."""

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
    """Freezes the model and wraps every block linear (c_attn, c_proj, c_fc, mlp_proj) in LoRA r=8."""
    for p in model.parameters():
        p.requires_grad_(False)
    for b in model.h:
        for name in ["c_attn", "c_proj", "c_fc", "mlp_proj"]:
            setattr(b, name, LoRALinear(getattr(b, name)))


GPT2_SHAPES = [("gpt2 attn.c_attn", 2304, 768), ("gpt2 attn.c_proj", 768, 768),
               ("gpt2 mlp.c_fc", 3072, 768), ("gpt2 mlp.c_proj", 768, 3072)]


def peak_bytes(dev):
    return torch.cuda.max_memory_allocated() if dev.startswith("cuda") else None


def gpt2_rows(dev, B, T, layers, vocab, methods, min_s):
    """Training steps of a GPT-2-small-shaped model: transformers + peft, else the plain model."""
    note, impl = None, "transformers+peft"
    try:
        import transformers
        import peft
        from transformers import GPT2Config, GPT2LMHeadModel
        from peft import LoraConfig, get_peft_model
        versions = {"transformers": transformers.__version__, "peft": peft.__version__}
    except Exception as e:  # noqa: BLE001 - any import failure means: use the fallback
        impl, versions = "fallback: nanoGPT-style model in this script", {}
        note = f"transformers/peft not importable ({type(e).__name__}: {e}); LoRA on c_attn, c_proj, c_fc, mlp_proj"
    rows = []
    for method in methods:
        torch.manual_seed(0)
        attn = None
        if impl == "transformers+peft":
            cfg = GPT2Config(vocab_size=vocab, n_positions=max(1024, T), n_layer=layers,
                             resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
            model = GPT2LMHeadModel(cfg).to(dev)
            attn = getattr(model.config, "_attn_implementation", None)
            if method == "lora":
                model = get_peft_model(model, LoraConfig(
                    r=8, lora_alpha=16, lora_dropout=0.0,
                    target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True))
            model.train()

            def loss_of(idx):
                return model(input_ids=idx, labels=idx).loss
        else:
            model = GPT(vocab, max(1024, T), 768, layers, 12).to(dev)
            if method == "lora":
                lora_ize(model)

            def loss_of(idx):
                return model(idx, (idx + 1) % vocab)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0)
        idx = torch.randint(0, vocab, (B, T), device=dev)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_of(idx)
            loss.backward()
            opt.step()
            loss.item()  # one read-back per step, as bench/train_step.ts

        if dev.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        ms = timeit(step, min_s, warmup=2)
        name = "GPT-2 small (124 M)" if layers == 12 and vocab == 50257 else \
            f"GPT-2 small shape, {layers} layers, vocab {vocab}"
        row = {"bench": f"train step {name} {method} {B}x{T}", "model": name, "method": method,
               "batch": B, "context": T, "ms": ms, "tokens_per_s": B * T / (ms / 1000),
               "impl": impl, **versions,
               "targets": ["all parameters"] if method == "full" else
               (["c_attn", "c_proj", "c_fc"] if impl == "transformers+peft"
                else ["c_attn", "c_proj", "c_fc", "mlp_proj"]),
               "trainable_params": sum(p.numel() for p in params),
               "total_params": sum(p.numel() for p in model.parameters()),
               "peak_bytes": peak_bytes(dev)}
        if attn:
            row["attn_implementation"] = attn
        if note:
            row["note"] = note
        rows.append(row)
        del model, opt, params, step, loss_of, idx
        gc.collect()
        if dev.startswith("cuda"):
            torch.cuda.empty_cache()
    return rows


def parse_bt(s):
    b, t = (int(v) for v in s.split("x"))
    return b, t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--min-s", type=float, default=1.5)
    ap.add_argument("--parts", default=None, help="matmul,shapes,layer,shipped,gpt2")
    ap.add_argument("--sizes", default=None, help="n of the n x n matmuls")
    ap.add_argument("--gpt2-batch", default=None, help="BxT (8x1024 on cuda, 1x32 otherwise)")
    ap.add_argument("--gpt2-m", type=int, default=None, help="M of the shapes (default B*T)")
    ap.add_argument("--gpt2-layers", type=int, default=12)
    ap.add_argument("--gpt2-vocab", type=int, default=50257)
    ap.add_argument("--methods", default="lora,full")
    a = ap.parse_args()
    dev = a.device
    cuda = dev.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        ap.error(f"--device {dev}: torch.cuda.is_available() is False")
    # fp32 everywhere: no TF32 in matmuls or convolutions (the anchor is fp32).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if hasattr(torch, "set_float32_matmul_precision"):
        torch.set_float32_matmul_precision("highest")
    torch.manual_seed(0)
    parts = (a.parts or ("matmul,shapes,layer,shipped,gpt2" if cuda else "matmul,layer,shipped")).split(",")
    sizes = [int(v) for v in (a.sizes or ("128,256,512,1024,2048,4096" if cuda else "128,256,512,1024,2048")).split(",")]
    B, T = parse_bt(a.gpt2_batch or ("8x1024" if cuda else "1x32"))
    gpt2_m = a.gpt2_m or B * T
    rows = []
    if "matmul" in parts:
        for n in sizes:
            x, y = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
            ms = timeit(lambda: x @ y, a.min_s)
            rows.append({"bench": f"matmul f32 {n}", "n": n, "ms": ms, "gflops": 2 * n**3 / ms / 1e6})
            del x, y
    if "shapes" in parts:
        for M in [gpt2_m, 1]:
            for label, N, K in GPT2_SHAPES:
                x, w = torch.randn(M, K, device=dev), 0.02 * torch.randn(N, K, device=dev)
                ms = timeit(lambda: x @ w.t(), a.min_s)
                rows.append({"bench": f"matmul-t f32 {label} {M}x{N}x{K}", "shape": label, "M": M, "N": N, "K": K,
                             "format": "f32", "ms": ms, "gflops": 2 * M * N * K / ms / 1e6,
                             "gbps": N * K * 4 / ms / 1e6})
                del x, w
    if "layer" in parts:
        lin = LoRALinear(nn.Linear(768, 768).to(dev)).to(dev)
        xx = torch.randn(1024, 768, device=dev, requires_grad=True)

        def lora_step():
            lin.zero_grad(set_to_none=True)
            lin(xx).sum().backward()

        ms = timeit(lora_step, a.min_s)
        rows.append({"bench": "lora-layer fwd+bwd 768x768 r8 f32 base, 1024 tokens", "ms": ms, "tokens_per_s": 1024 / (ms / 1000)})
    if "shipped" in parts:
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
    if "gpt2" in parts:
        rows += gpt2_rows(dev, B, T, a.gpt2_layers, a.gpt2_vocab, a.methods.split(","), a.min_s)
    info = {"bench": "torch_compare", "torch": torch.__version__, "device": dev,
            "threads": torch.get_num_threads(), "tf32": False}
    if cuda:
        info["gpu"] = torch.cuda.get_device_name()
    print(json.dumps({**info, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
