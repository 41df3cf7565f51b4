#!/usr/bin/env python3
"""PyTorch's side of bench/scale.ts: the same checkpoint folder, the same measurements.

Usage: python3 bench/scale_torch.py DIR [--steps 3] [--batch 1] [--ctx 128] [--decode 32]
Prints one JSON object: load_s (transformers' LlamaForCausalLM.from_pretrained in fp32, or, with
CUDA and bitsandbytes, in NF4 + double quantization as QLoRA loads it), method, train step
tokens/s (peft LoRA r=8, alpha=16, every block linear, AdamW; the first step is a warm-up),
decode tokens/s (greedy generate with the KV cache after a 16-token prompt) and peak_rss (bytes,
ru_maxrss) or the peak CUDA bytes. Needs torch, transformers and peft; bench/scale.ts runs it only
where `import torch` works and reports its failure without failing itself.

Not run on the machine that wrote bench/scale.ts (no PyTorch there): untested.
"""
import argparse, json, resource, sys, time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--decode", type=int, default=32)
    a = ap.parse_args()
    from transformers import LlamaForCausalLM
    from peft import LoraConfig, get_peft_model

    cuda = torch.cuda.is_available()
    dev = "cuda" if cuda else "cpu"
    kw = {"torch_dtype": torch.float32}
    method = "lora (fp32 base)"
    if cuda:
        try:
            from transformers import BitsAndBytesConfig
            import bitsandbytes  # noqa: F401

            kw = {
                "quantization_config": BitsAndBytesConfig(
                    load_in_4bit=True,
                    bnb_4bit_quant_type="nf4",
                    bnb_4bit_use_double_quant=True,
                    bnb_4bit_compute_dtype=torch.float32,
                ),
                "device_map": {"": 0},
            }
            method = "qlora (bitsandbytes nf4 + dq)"
        except ImportError:
            pass
    t0 = time.perf_counter()
    model = LlamaForCausalLM.from_pretrained(a.dir, **kw)
    if "device_map" not in kw:
        model.to(dev)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    load_s = time.perf_counter() - t0
    cfg = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )
    model = get_peft_model(model, cfg)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    g = torch.Generator().manual_seed(2)
    V = model.config.vocab_size
    times = []
    for _ in range(a.steps):
        ids = torch.randint(0, 268, (a.batch, a.ctx + 1), generator=g).to(dev)
        t = time.perf_counter()
        out = model(input_ids=ids[:, :-1], labels=ids[:, 1:])
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        sync()
        times.append(time.perf_counter() - t)
    timed = times[1:] if len(times) > 1 else times
    step_s = sum(timed) / len(timed) if timed else float("nan")
    model.eval()
    decode_tps = float("nan")
    if a.decode > 0:
        prompt = torch.randint(0, 268, (1, 16), generator=g).to(dev)
        with torch.no_grad():
            t = time.perf_counter()
            model.generate(input_ids=prompt, max_new_tokens=1, do_sample=False, use_cache=True)
            sync()
            first = time.perf_counter() - t
            t = time.perf_counter()
            model.generate(
                input_ids=prompt, max_new_tokens=a.decode, min_new_tokens=a.decode,
                do_sample=False, use_cache=True,
            )
            sync()
            total = time.perf_counter() - t
        decode_tps = (a.decode - 1) / max(1e-9, total - first)
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss * 1024
    json.dump({
        "torch": torch.__version__,
        "device": dev,
        "method": method,
        "vocab": V,
        "load_s": load_s,
        "train_step_s": step_s,
        "train_tokens_per_s": a.batch * a.ctx / step_s,
        "decode_tokens_per_s": decode_tps,
        "peak_rss": peak,
        "peak_is": "torch.cuda.max_memory_allocated" if cuda else "ru_maxrss",
    }, sys.stdout)


if __name__ == "__main__":
    main()
