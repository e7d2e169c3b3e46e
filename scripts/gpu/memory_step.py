#!/usr/bin/env python3
"""Measure, on one NVIDIA GPU with PyTorch, the memory a training step takes beyond what it allocates.

The cost model predicts the bytes a rank's tensors need (model states, saved activations, the optimizer
step's copy) plus a runtime reserve (CUDA context, library workspaces). What nvidia-smi or a framework's
"max reserved" shows is more: PyTorch's caching allocator keeps freed blocks for reuse and cannot always
fit a new tensor into them. This script measures both pieces on a real GPU:

  1. context: device memory in use (cudaMemGetInfo) after the CUDA context is made, after the first cuBLAS
     product (handle and workspace), after a fused attention call (cuDNN / flash), after a one-rank NCCL
     group's first all-reduce; the part PyTorch's allocator does not hold is what the runtime reserve models.
  2. steps: one rank of a published configuration, played for real: the pipeline stage's layers at their
     tensor-parallel widths (one rank's shard; the collectives themselves are not run, they do not change
     what a rank holds), the embedding on the first stage, GPT layers (layer norm, fused QKV, unfused
     attention as Megatron-LM's with its fused softmax's in-place backward, MLP with GeLU), full activation recomputation per layer
     (torch.utils.checkpoint), 1F1B's in-flight micro-batches (the first stage holds pp of them, here at most 8 unless a configuration's maxInFlight says more), 16-bit
     weights as views of one flat buffer (as DeepSpeed's ZeRO and Megatron-LM's optimizer flatten them),
     autograd's 16-bit gradients, and mixed-precision Adam on this rank's 1/dp shard of fp32 master
     weights, momentum and variance (ZeRO-1), with an fp32 copy of the shard's gradients made for the
     step. Under bf16 with DeepSpeed's BF16_Optimizer the fp32 gradient accumulators of every weight are
     kept beside the 16-bit gradients. It records the allocator's peak allocated and peak reserved bytes
     and the device's used bytes; each configuration runs in its own process, with the allocator's
     default settings and with expandable segments.

Usage: python3 scripts/gpu/memory_step.py --out models/hardware/measured/h100-sxm-memory.json
       python3 scripts/gpu/memory_step.py --dry-run     (lists the configurations; needs no GPU)
       python3 scripts/gpu/memory_step.py --only r1201  (one configuration)
       python3 scripts/gpu/memory_step.py --check       (the masked softmax's gradients against PyTorch's)
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time

# Published configurations (models/measurements/bloom-176b.jsonl), one rank of the first pipeline stage.
# Shapes are those meshplan validate resolves for the record (ffn 4h, vocab 250000, learned positions,
# tied embeddings); microBatches is how many micro-batches the emulation plays per step (1F1B's warm-up
# of pp in flight, at most 8 or the configuration's maxInFlight, then one more while pp is below that), not the record's whole accumulation; the test
# (test/planner/measured-memory.test.ts) gives the cost model the same micro-batch count.
CONFIGS = [
    dict(record="r1201", layers=8, hidden=14400, heads=32, ffn=57600, tp=8, pp=1, dp=1, mb=1, precision="fp16"),
    dict(record="r1204", layers=8, hidden=14400, heads=32, ffn=57600, tp=8, pp=1, dp=1, mb=1, precision="bf16"),
    dict(record="r1231", layers=6, hidden=14336, heads=64, ffn=57344, tp=8, pp=1, dp=1, mb=2, precision="fp16"),
    dict(record="r1233", layers=10, hidden=14336, heads=64, ffn=57344, tp=8, pp=1, dp=1, mb=1, precision="fp16"),
    dict(record="r1250", layers=6, hidden=14336, heads=64, ffn=57344, tp=4, pp=12, dp=8, mb=2, precision="fp16"),
    dict(record="r1247", layers=36, hidden=14336, heads=64, ffn=57344, tp=8, pp=2, dp=24, mb=2, precision="fp16"),
    dict(record="r1256", layers=12, hidden=14336, heads=64, ffn=57344, tp=2, pp=6, dp=32, mb=1, precision="fp16"),
    dict(record="r1292", layers=16, hidden=12288, heads=64, ffn=49152, tp=4, pp=6, dp=16, mb=1, precision="bf16"),
    # The other three runs BLOOM reported out of memory that the cost model predicts to fit; r1306's first
    # stage holds all twelve micro-batches of 1F1B's warm-up (maxInFlight), so the verdict is the real stage's.
    dict(record="r1255", layers=12, hidden=14336, heads=64, ffn=57344, tp=2, pp=6, dp=32, mb=2, precision="fp16"),
    dict(record="r1291", layers=16, hidden=12288, heads=64, ffn=49152, tp=4, pp=6, dp=16, mb=2, precision="bf16"),
    dict(record="r1306", layers=6, hidden=14336, heads=128, ffn=57344, tp=4, pp=12, dp=8, mb=2, precision="bf16", maxInFlight=12),
]
VOCAB = 250000
SEQ = 2048
STEPS = 2


def smi_used():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
        used, total = (int(x) * 2 ** 20 for x in out.split(","))
        return used, total
    except Exception:
        return None, None


def weight_shapes(c):
    """Every weight of the rank's stage, in the flat buffer's order: 12 per layer, the embedding and learned
    positions, and the final norm when the stage is the last (the output layer is tied to the embedding)."""
    h, t = c["hidden"], c["tp"]
    qkv = 3 * (c["heads"] // t) * (h // c["heads"])
    f = c["ffn"] // t
    layer = [(h,), (h,), (qkv, h), (qkv,), (h, qkv // 3), (h,), (h,), (h,), (f, h), (f,), (h, f), (h,)]
    ends = [(VOCAB // t, h), (SEQ, h)] + ([(h,), (h,)] if c["pp"] == 1 else [])
    return layer * c["layers"] + ends


def numel(shape):
    n = 1
    for x in shape:
        n *= x
    return n


def context_section():
    """Device bytes in use after each runtime piece is first touched, and how much of it the allocator holds."""
    import torch
    import torch.nn.functional as F
    rows = []
    smi_before, total = smi_used()

    def mark(what):
        torch.cuda.synchronize()
        free, tot = torch.cuda.mem_get_info()
        rows.append({"after": what, "deviceUsedBytes": tot - free, "reservedBytes": torch.cuda.memory_reserved(),
                     "allocatedBytes": torch.cuda.memory_allocated(), "nvidiaSmiUsedBytes": smi_used()[0]})

    torch.cuda.init()
    torch.zeros(1, device="cuda")
    mark("context (first tensor)")
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    (a @ a).sum().item()
    mark("cuBLAS bf16 product")
    q = torch.randn(2, 16, 2048, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    F.scaled_dot_product_attention(q, q, q, is_causal=True).sum().backward()
    mark("fused attention forward and backward")
    x = torch.randn(1024, 1024, device="cuda", dtype=torch.float16, requires_grad=True)
    F.layer_norm(x, (1024,)).float().softmax(-1).sum().backward()
    mark("layer norm, softmax, casts")
    try:
        import tempfile
        import torch.distributed as dist
        init = "file://" + tempfile.mktemp()
        dist.init_process_group("nccl", init_method=init, rank=0, world_size=1, device_id=torch.device("cuda", 0))
        t = torch.ones(1 << 20, device="cuda")
        dist.all_reduce(t)
        mark("NCCL one-rank group, first all-reduce")
        dist.destroy_process_group()
    except Exception as e:
        rows.append({"after": "NCCL one-rank group", "error": "%s: %s" % (type(e).__name__, str(e)[:200])})
    return {"nvidiaSmiUsedBeforeBytes": smi_before, "totalBytes": total, "rows": rows}


def masked_softmax_class():
    """The autograd function the emulation's attention uses for its masked softmax (needs torch)."""
    import torch

    class MaskedSoftmax(torch.autograd.Function):
        """Megatron-LM's fused scale-mask-softmax as far as memory goes (megatron/fused_kernels,
        scaled_upper_triang_masked_softmax): the forward masks in place and keeps only its output; the
        backward writes the input's gradient over the output's gradient, so no score-sized temporary is
        made (plain masked_fill + softmax would add two or three of them to each layer's backward)."""

        @staticmethod
        def forward(ctx, scores, mask):
            probs = torch.softmax(scores.masked_fill_(mask, float("-inf")), -1)
            ctx.save_for_backward(probs)
            return probs

        @staticmethod
        def backward(ctx, grad):
            (probs,) = ctx.saved_tensors
            rows = grad.shape[-1]
            dot = torch.bmm(grad.reshape(-1, 1, rows), probs.reshape(-1, rows, 1)).view(*grad.shape[:-1], 1)
            return grad.sub_(dot).mul_(probs), None
    return MaskedSoftmax


def check_masked_softmax():
    """Its gradients against plain masked_fill + softmax on a small causal case (printed; used by --check)."""
    import torch
    fn = masked_softmax_class()
    x = torch.randn(3, 64, 64, device="cuda", dtype=torch.float32, requires_grad=True)
    mask = torch.ones(64, 64, device="cuda", dtype=torch.bool).triu_(1)
    g = torch.randn(3, 64, 64, device="cuda")
    ref = x.masked_fill(mask, float("-inf")).softmax(-1)
    (gx_ref,) = torch.autograd.grad(ref, x, g)
    y = fn.apply(x.clone(), mask)
    (gx,) = torch.autograd.grad(y, x, g.clone())
    return {"maxForwardDiff": (y - ref).abs().max().item(), "maxGradDiff": (gx - gx_ref).abs().max().item()}


def emulate(c):
    """One rank of configuration c: STEPS training steps; returns the allocator's and the device's peaks."""
    import torch
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    dtype = torch.float16 if c["precision"] == "fp16" else torch.bfloat16
    h, t, heads = c["hidden"], c["tp"], c["heads"] // c["tp"]
    d = h // c["heads"]
    last = c["pp"] == 1
    shapes = weight_shapes(c)
    total = sum(numel(s) for s in shapes)
    flat = torch.empty(total, device="cuda", dtype=dtype)
    flat.normal_(0.0, 0.02)
    params, off = [], 0
    for s in shapes:
        n = numel(s)
        p = torch.nn.Parameter(flat[off:off + n].view(s))
        params.append(p)
        off += n
    layer_params = [params[12 * i:12 * i + 12] for i in range(c["layers"])]
    wte, wpe = params[12 * c["layers"]], params[12 * c["layers"] + 1]
    lnf = params[12 * c["layers"] + 2:] if last else None

    shard = total // c["dp"]
    master = flat[:shard].float()
    adam = torch.optim.Adam([master], lr=1e-4, fused=True)
    # Adam's momentum and variance exist from the start in the frameworks (allocated with the optimizer).
    adam.state[master] = {"step": torch.zeros((), dtype=torch.float32, device="cuda"),
                          "exp_avg": torch.zeros_like(master), "exp_avg_sq": torch.zeros_like(master)}
    fp32_flat, fp32_grads = None, None
    if c["precision"] == "bf16":  # DeepSpeed BF16_Optimizer: flat fp32 accumulators of every weight's gradient
        fp32_flat = torch.zeros(total, device="cuda", dtype=torch.float32)
        fp32_grads, off = [], 0
        for p in params:
            fp32_grads.append(fp32_flat[off:off + p.numel()].view(p.shape))
            off += p.numel()

    MaskedSoftmax = masked_softmax_class()

    def layer(x, ln1w, ln1b, qkvw, qkvb, projw, projb, ln2w, ln2b, fc1w, fc1b, fc2w, fc2b):
        s, b = x.shape[0], x.shape[1]
        y = F.layer_norm(x, (h,), ln1w, ln1b)
        qkv = F.linear(y, qkvw, qkvb).view(s, b * heads, 3 * d)
        q, k, v = qkv.split(d, dim=-1)
        scores = torch.baddbmm(torch.empty(b * heads, s, s, device="cuda", dtype=dtype), q.transpose(0, 1),
                               k.transpose(0, 1).transpose(1, 2), beta=0.0, alpha=d ** -0.5)
        mask = torch.ones(s, s, device="cuda", dtype=torch.bool).triu_(1)
        probs = MaskedSoftmax.apply(scores, mask)
        ctx = torch.bmm(probs, v.transpose(0, 1)).transpose(0, 1).reshape(s, b, heads * d)
        x = x + F.linear(ctx, projw, projb)
        y = F.layer_norm(x, (h,), ln2w, ln2b)
        return x + F.linear(F.gelu(F.linear(y, fc1w, fc1b)), fc2w, fc2b)

    def forward(tokens):
        x = (F.embedding(tokens, wte) + wpe[: tokens.shape[0]].unsqueeze(1)).to(dtype)
        for lp in layer_params:
            x = checkpoint(layer, x, *lp, use_reentrant=False)
        if not last:
            return x
        x = F.layer_norm(x, (h,), lnf[0], lnf[1])
        logits = F.linear(x, wte)  # tied output layer, vocabulary-parallel shard
        labels = torch.randint(0, VOCAB // t, tokens.shape, device="cuda")
        return F.cross_entropy(logits.float().view(-1, VOCAB // t), labels.view(-1))

    def backward(out):
        if last:
            out.backward()
        else:
            out.backward(torch.randn_like(out))
        if fp32_grads is not None:
            for acc, p in zip(fp32_grads, params):
                if p.grad is not None:
                    acc.add_(p.grad.to(torch.float32))

    cap = c.get("maxInFlight", 8)
    micro = min(c["pp"] + 1, cap)
    inflight = min(c["pp"], micro)
    peaks = []
    torch.cuda.reset_peak_memory_stats()
    for step in range(STEPS):
        queue = []
        todo = micro
        while todo > 0 or queue:
            while todo > 0 and len(queue) < inflight:
                queue.append(forward(torch.randint(0, VOCAB // t, (SEQ, c["mb"]), device="cuda")))
                todo -= 1
            backward(queue.pop(0))
        # Optimizer step on this rank's shard: Adam on fp32 gradients (a copy of the 16-bit ones made for the
        # step, or BF16_Optimizer's accumulators as they are), then the 16-bit weights refreshed.
        if fp32_flat is not None:
            grad32 = fp32_flat[:shard]
        else:
            grad32 = torch.empty(shard, device="cuda", dtype=torch.float32)
            off = 0
            for p in params:
                if off >= shard:
                    break
                take = min(p.numel(), shard - off)
                grad32[off:off + take].copy_(p.grad.reshape(-1)[:take])
                off += take
        master.grad = grad32
        adam.step()  # fused: no temporaries of the shard's size, as apex's and DeepSpeed's FusedAdam
        master.grad = None
        del grad32
        flat[:shard].copy_(master)
        for p in params:
            p.grad = None
        if fp32_flat is not None:
            fp32_flat.zero_()
        torch.cuda.synchronize()
        free, tot = torch.cuda.mem_get_info()
        peaks.append({"step": step, "maxAllocatedBytes": torch.cuda.max_memory_allocated(),
                      "maxReservedBytes": torch.cuda.max_memory_reserved(), "deviceUsedBytes": tot - free,
                      "reservedBytes": torch.cuda.memory_reserved()})
    return {"params": total, "microBatchesPerStep": micro, "inFlight": inflight, "steps": peaks}


def child(record, out):
    import torch
    c = next(x for x in CONFIGS if x["record"] == record)
    t0 = time.time()
    try:
        res = emulate(c)
    except torch.cuda.OutOfMemoryError as e:
        free, tot = torch.cuda.mem_get_info()
        res = {"outOfMemory": str(e).split("\n")[0][:300], "maxAllocatedBytes": torch.cuda.max_memory_allocated(),
               "maxReservedBytes": torch.cuda.max_memory_reserved(), "deviceUsedBytes": tot - free}
    res["seconds"] = round(time.time() - t0, 1)
    with open(out, "w") as fh:
        json.dump(res, fh)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="memory-step.json")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--check", action="store_true", help="check the masked softmax's gradients and exit")
    ap.add_argument("--only", default="", help="comma-separated record ids")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.child_out)
    if args.check:
        return print(json.dumps(check_masked_softmax()))
    chosen = [c for c in CONFIGS if not args.only or c["record"] in args.only.split(",")]
    if args.dry_run:
        for c in chosen:
            print(c["record"], "params/rank %.2fB" % (sum(map(numel, weight_shapes(c))) / 1e9))
        return
    import torch
    doc = {"measuredAt": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "script": "scripts/gpu/memory_step.py", "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "seqLen": SEQ, "vocab": VOCAB,
           "steps": STEPS, "context": context_section(), "configs": []}
    for c in chosen:
        for conf in ["", "expandable_segments:True"]:
            env = dict(os.environ, PYTORCH_CUDA_ALLOC_CONF=conf)
            tmp = args.out + ".child"
            if os.path.exists(tmp):
                os.remove(tmp)
            p = subprocess.run([sys.executable, __file__, "--child", c["record"], "--child-out", tmp], env=env,
                               capture_output=True, text=True)
            row = dict(c, allocatorConf=conf or "default")
            if os.path.exists(tmp):
                with open(tmp) as fh:
                    row.update(json.load(fh))
            else:
                row["error"] = (p.stderr or p.stdout)[-1500:]
            doc["configs"].append(row)
            print(json.dumps(row)[:600], flush=True)
            with open(args.out, "w") as fh:
                json.dump(doc, fh, indent=1)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
