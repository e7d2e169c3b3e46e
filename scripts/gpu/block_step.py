#!/usr/bin/env python3
"""Time one GPU's forward + backward of MPT transformer blocks at the micro-batch sizes llm-foundry ran.

llm-foundry's benchmark tables (models/measurements/llm-foundry-mpt.jsonl) show a model's throughput on
8 GPUs growing by a fifth to a third from about 4k to about 40k tokens per micro-batch at the same GPU
count and recomputation (MPT-13b on 8 A100 80GB: 56-60% MFU at 33k-49k tokens per micro-batch, against
44% on A100 40GB at 8k), where meshplan's cost model predicts a few percent. This script separates the
two candidate causes: if one GPU alone runs the blocks at the same rate per token at every size, the
growth is a cost paid per micro-batch outside the blocks' arithmetic (FSDP's gathers and reductions,
per-unit launch and synchronisation), not matrix-multiply efficiency.

What it plays: a stack of MPT blocks (pre-norm LayerNorm with biases in bf16, fused QKV with bias,
causal attention through torch's scaled_dot_product_attention (flash on Hopper), output projection,
GELU MLP with expansion 4, residuals; no dropout), bf16 weights and activations, at each (micro-batch,
sequence) pair, without activation checkpointing and with it per block (torch.utils.checkpoint, not
re-entrant, as Composer's FSDP wrapper), the latter with PyTorch's early stop of the recomputation (its
default) and without. Timed with CUDA events: forward + backward of the stack (the
gradients of the weights and the input), after warm-up, median of 5 trials. Seconds are per block per
micro-batch; the FLOPs are the model's (6 x 12 d^2 x tokens for the weights, 6 s^2 d per sequence for
causal attention: QK^T and PV, 4 s^2 d forward, halved by the mask, x3 with the backward) and the
hardware FLOPs add the recomputed forward (x4/3) under checkpointing.

Usage: python3 scripts/gpu/block_step.py --out models/hardware/measured/h100-sxm-blocks.json
       python3 scripts/gpu/block_step.py --dry-run   (lists the shapes; needs no GPU)
"""
import argparse
import datetime
import json
import statistics
import subprocess
import sys

# MPT shapes (llm-foundry scripts/train/yamls/pretrain/mpt-<size>.yaml): d_model, n_heads.
MODELS = {"mpt-7b": (4096, 32), "mpt-13b": (5120, 40)}
# (micro-batch, sequence) pairs of the published rows: MPT-13b on A100 80GB (r1069-r1074), on A100 40GB
# (r1127, r1133, r1134) and on H100 (r1008-r1015); MPT-7b likewise.
SHAPES = [(2, 2048), (4, 2048), (1, 8192), (8, 1024), (5, 8192), (10, 4096), (40, 1024), (16, 4096)]
BLOCKS = 4
TRIALS = 5
# (checkpoint, early stop): PyTorch's non-reentrant checkpoint stops recomputing once every tensor the
# backward needs is back (torch.utils.checkpoint.set_checkpoint_early_stop, on by default), so a block's
# last product (the MLP's down projection, whose output nothing saves) is not run again; off, the whole
# forward is, as in Megatron-LM's and DeepSpeed's reentrant checkpointing.
SETTINGS = [(False, True), (True, True), (True, False)]


def flops(d, mb, s):
    """Model FLOPs of forward + backward for one block: 6 x weights x tokens + causal attention (QK^T and PV,
    2 x 2 x s^2 x d per sequence forward, halved for causality, x3 for the backward)."""
    tokens = mb * s
    return 6 * 12 * d * d * tokens + 3 * 2 * mb * s * s * d


def build(torch, d, heads):
    nn = torch.nn
    F = torch.nn.functional

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm_1 = nn.LayerNorm(d)
            self.wqkv = nn.Linear(d, 3 * d)
            self.out_proj = nn.Linear(d, d)
            self.norm_2 = nn.LayerNorm(d)
            self.up = nn.Linear(d, 4 * d)
            self.down = nn.Linear(4 * d, d)

        def forward(self, x):
            b, s, _ = x.shape
            q, k, v = self.wqkv(self.norm_1(x)).split(d, dim=-1)
            q, k, v = (t.view(b, s, heads, d // heads).transpose(1, 2) for t in (q, k, v))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.out_proj(a.transpose(1, 2).reshape(b, s, d))
            return x + self.down(F.gelu(self.up(self.norm_2(x)), approximate="none"))

    return nn.ModuleList([Block() for _ in range(BLOCKS)]).to(device="cuda", dtype=torch.bfloat16)


def time_step(torch, blocks, mb, s, d, checkpoint, early_stop=True):
    from torch.utils.checkpoint import checkpoint as ckpt, set_checkpoint_early_stop
    x0 = torch.randn(mb, s, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    grad = torch.randn(mb, s, d, device="cuda", dtype=torch.bfloat16)

    def step():
        # Held over the forward and the backward, so the setting applies whichever of them reads it.
        with set_checkpoint_early_stop(early_stop):
            x = x0
            for blk in blocks:
                x = ckpt(blk, x, use_reentrant=False) if checkpoint else blk(x)
            x.backward(grad)
        for p in blocks.parameters():
            p.grad = None
        x0.grad = None

    for _ in range(2):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(TRIALS):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        step()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    peak = torch.cuda.max_memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    return statistics.median(times) / BLOCKS, max(times) / min(times) - 1, peak


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="models/hardware/measured/h100-sxm-blocks.json")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    plan = [(name, mb, s, ck, es) for name in MODELS for (mb, s) in SHAPES for (ck, es) in SETTINGS]
    if args.dry_run:
        for p in plan:
            print(*p)
        return
    import torch
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,power.limit", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip()
    doc = {"measuredAt": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "script": "scripts/gpu/block_step.py",
           "gpu": torch.cuda.get_device_name(), "nvidiaSmi": smi, "torch": torch.__version__, "cuda": torch.version.cuda,
           "blocks": BLOCKS, "trials": TRIALS, "rows": []}
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(400):  # sustained clocks before timing
        a @ a
    torch.cuda.synchronize()
    del a
    for name, (d, heads) in MODELS.items():
        blocks = build(torch, d, heads)
        for mb, s in SHAPES:
            for ck, es in SETTINGS:
                try:
                    sec, spread, peak = time_step(torch, blocks, mb, s, d, ck, es)
                except torch.OutOfMemoryError:
                    torch.cuda.empty_cache()
                    doc["rows"].append({"model": name, "microBatch": mb, "seqLen": s, "checkpoint": ck, "earlyStop": es, "outOfMemory": True})
                    continue
                f = flops(d, mb, s)
                hw = f * (4 / 3 if ck else 1)
                row = {"model": name, "microBatch": mb, "seqLen": s, "tokens": mb * s, "checkpoint": ck, "earlyStop": es,
                       "secondsPerBlock": sec, "spread": round(spread, 4), "modelFlopsPerBlock": f,
                       "hardwareFlopsPerSecond": hw / sec, "peakAllocatedBytes": peak}
                doc["rows"].append(row)
                print("%s mb%-3d s%-5d ckpt=%d early=%d  %.4f s/block  %.0f TFLOP/s hw  spread %.3f" % (name, mb, s, ck, es, sec, hw / sec / 1e12, spread), flush=True)
        del blocks
        torch.cuda.empty_cache()
    with open(args.out, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    sys.exit(main())
