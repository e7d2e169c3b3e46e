#!/usr/bin/env python3
"""Measure the figures meshplan's efficiency model needs on one NVIDIA GPU, with PyTorch.

What it measures (all on random data, timed with CUDA events after warm-up, median of several trials):
  1. bf16 matrix products y[m, n] = x[m, k] @ w[n, k]^T (nn.Linear's forward layout) over a grid of
     m, k, n in powers of two: the table the cost model interpolates (src/planner/cost/gemm-grid.ts).
  2. The exact GEMMs of transformer layers under tensor parallel splits (QKV, attention output, MLP up
     and down; forward, input-gradient and weight-gradient layouts) for a few published models: these
     check how well interpolating the grid predicts real layer shapes.
  3. fp8 (e4m3) matrix products through torch._scaled_mm on a coarser grid, where the GPU has fp8.
  4. Attention by sequence length at 16k tokens per batch, head dim 128 (the FlashAttention papers'
     benchmark setting), causal and not, forward and backward: PyTorch's fused kernels (flash, cuDNN,
     memory-efficient) and the plain unfused version (two batched GEMMs around a softmax).
  5. Memory bandwidth: device-to-device copy and an element-wise add over buffer sizes from 1 MiB up.
  6. Operand alignment: the unfused attention's two batched products as Megatron-LM runs them (q, k and v
     as views into one fused QKV tensor, so each starts headDim elements after the previous one), fp16 and
     bf16, at head dimensions that are multiples of 8 and some that are not (BLOOM's candidates: 108, 150,
     225, 450): the cost model charges the latter at the CUDA-core fp32 rate (src/planner/cost/compute.ts).
The GPU, driver, CUDA, cuDNN and PyTorch versions and the clocks before and after are recorded.

Usage: python3 scripts/gpu/measure.py --gpu h100-sxm --out models/hardware/measured/h100-sxm.json
       python3 scripts/gpu/measure.py --dry-run   (lists the shapes; needs no GPU or PyTorch)
       python3 scripts/gpu/measure.py --gpu h100-sxm --skip memory,attention,grid,layers,fp8
           (one section: the file's other sections are kept, the run listed under laterRuns)
The output is rewritten after every section, so a run cut short keeps what it measured. Each section runs
`--passes` times (the second pass in reverse order, so slow drifts of clock and temperature fall on
different points); the file keeps each point's median over the passes and its spread (max/min - 1).
Before the first section, 10 s of large products bring the clocks and power draw to their sustained state.
"""
import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GRID_M = [2 ** i for i in range(8, 16)]  # 256 .. 32768 tokens
GRID_KN = [2 ** i for i in range(7, 17)]  # 128 .. 65536
FP8_GRID_M = [2 ** i for i in range(8, 16)]  # 256 .. 32768
FP8_GRID_KN = [2 ** i for i in range(8, 17, 2)]  # 256 .. 65536, steps of 4x
LAYER_MODELS = ["llama3-8b", "llama3-70b", "llama3-405b", "gpt3-175b"]
LAYER_TP = [1, 2, 4, 8]
LAYER_TOKENS = [4096, 8192, 16384]
ATTENTION_TOKENS = 16384
ATTENTION_HEAD_DIM = 128
ATTENTION_HEADS = 16  # hidden 2048, as in the FlashAttention-2 and -3 benchmarks
ATTENTION_LENGTHS = [512, 1024, 2048, 4096, 8192, 16384, 32768]
PLAIN_ATTENTION_MAX_LENGTH = 8192  # the unfused scores tensor grows as length^2
SECTIONS = ["memory", "attention", "grid", "layers", "fp8", "alignment"]  # in the order they run
ALIGNMENT_HEAD_DIMS = [96, 104, 108, 112, 128, 144, 150, 216, 224, 225, 450]
ALIGNMENT_HIDDEN = 1800  # per tensor-parallel rank (BLOOM's 14400 at tp 8); heads = hidden // head dim
ALIGNMENT_TOKENS = 8192  # 4 sequences of 2048
ALIGNMENT_SEQ = 2048
COPY_BYTES = [2 ** i for i in range(20, 33, 2)]  # 1 MiB .. 4 GiB
ROTATE_BYTES = 256 * 2 ** 20  # rotate inputs until the working set is past the 50 MB L2


def layer_gemms(model, tp, tokens):
    """The four linear GEMMs of one layer on one tensor-parallel rank, as (name, m, k, n) forward shapes."""
    h = model["hiddenSize"]
    heads = model["attentionHeads"]
    d = model.get("headDim") or h // heads
    q = heads * d // tp
    kv = max(1, model["kvHeads"] // tp) * d
    up = 2 if model["mlp"] == "swiglu" else 1
    f = model["ffnHiddenSize"] // tp
    return [("qkv", tokens, h, q + 2 * kv), ("proj", tokens, q, h), ("fc1", tokens, h, up * f), ("fc2", tokens, f, h)]


def layer_shapes():
    out = []
    for name in LAYER_MODELS:
        with open(os.path.join(REPO, "models", "models", name + ".json")) as fh:
            model = json.load(fh)
        for tp in LAYER_TP:
            for tokens in LAYER_TOKENS:
                for gemm, m, k, n in layer_gemms(model, tp, tokens):
                    # forward y = x w^T; input gradient dx = dy w (m, n -> k); weight gradient dw = dy^T x (n, m -> k)
                    for pass_name, mm, kk, nn in (("forward", m, k, n), ("dgrad", m, n, k), ("wgrad", n, m, k)):
                        out.append({"model": name, "tp": tp, "tokens": tokens, "gemm": gemm, "pass": pass_name, "m": mm, "k": kk, "n": nn})
    return out


def run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception as e:  # nvidia-smi missing: record why
        return "unavailable: %s" % e


def device_info(torch):
    p = torch.cuda.get_device_properties(0)
    smi = run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,power.limit,temperature.gpu", "--format=csv,noheader"])
    return {
        "name": p.name,
        "multiprocessors": p.multi_processor_count,
        "memoryBytes": p.total_memory,
        "l2CacheBytes": getattr(p, "L2_cache_size", None),
        "computeCapability": "%d.%d" % (p.major, p.minor),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "nvidiaSmi": smi,
        "python": sys.version.split()[0],
    }


class Timer:
    """Median seconds per call of fn over trials, each trial timing `reps` back-to-back calls with CUDA events."""

    def __init__(self, torch, graphs):
        self.torch = torch
        self.graphs = graphs
        self.fallbacks = []

    def median(self, fn, target_seconds=0.02, trials=5, max_reps=200):
        if self.graphs:
            try:
                return self.median_graph(fn, target_seconds, trials, max_reps)
            except Exception as e:  # capture refused: time eagerly, and say so in the output
                self.fallbacks.append("%s: %s" % (type(e).__name__, str(e).split("\n")[0][:200]))
                self.torch.cuda.synchronize()
        return self.median_eager(fn, target_seconds, trials, max_reps)

    def median_graph(self, fn, target_seconds, trials, max_reps):
        """As median_eager, but the calls are captured once in a CUDA graph and the graph is replayed: device
        time without the Python and launch cost of each call, which a small product would otherwise be bound by."""
        torch = self.torch
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        probe = torch.cuda.CUDAGraph()
        with torch.cuda.graph(probe):
            fn()
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        probe.replay()
        start.record()
        probe.replay()
        end.record()
        end.synchronize()
        once = max(start.elapsed_time(end) / 1e3, 1e-6)
        reps = max(1, min(max_reps, int(target_seconds / trials / once)))
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(reps):
                fn()
        graph.replay()
        samples = []
        for _ in range(trials):
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1e3 / reps)
        del graph, probe
        return statistics.median(samples), reps

    def median_eager(self, fn, target_seconds, trials, max_reps):
        torch = self.torch
        for _ in range(2):
            fn()
        torch.cuda.synchronize()
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        once = max(start.elapsed_time(end) / 1e3, 1e-6)
        reps = max(1, min(max_reps, int(target_seconds / trials / once)))
        samples = []
        for _ in range(trials):
            start.record()
            for _ in range(reps):
                fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1e3 / reps)
        return statistics.median(samples), reps


def rotating(make, bytes_each):
    """Enough copies of an input set that cycling through them keeps it out of L2."""
    copies = max(1, min(32, math.ceil(ROTATE_BYTES / max(1, bytes_each))))
    return [make() for _ in range(copies)]


def time_gemm(torch, timer, m, k, n, layout="nt"):
    dt = torch.bfloat16
    bytes_each = 2 * (m * k + k * n)

    def make():
        if layout == "nt":  # x[m,k] @ w[n,k]^T
            return torch.randn(m, k, device="cuda", dtype=dt), torch.randn(n, k, device="cuda", dtype=dt).t()
        if layout == "nn":  # dy[m,k'] @ w[k',n]
            return torch.randn(m, k, device="cuda", dtype=dt), torch.randn(k, n, device="cuda", dtype=dt)
        # "tn": dy^T[m,k] @ x[k,n] with dy stored [k, m]
        return torch.randn(k, m, device="cuda", dtype=dt).t(), torch.randn(k, n, device="cuda", dtype=dt)

    sets = rotating(make, bytes_each)
    out = torch.empty(m, n, device="cuda", dtype=dt)
    state = {"i": 0}

    def fn():
        a, b = sets[state["i"] % len(sets)]
        state["i"] += 1
        torch.matmul(a, b, out=out)

    seconds, reps = timer.median(fn)
    del sets, out
    return seconds, reps


def time_fp8_gemm(torch, timer, m, k, n):
    a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16).to(torch.float8_e4m3fn)
    b = torch.randn(n, k, device="cuda", dtype=torch.bfloat16).to(torch.float8_e4m3fn).t()  # column-major, as _scaled_mm needs
    one = torch.ones((), device="cuda", dtype=torch.float32)

    def fn():
        torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)

    return timer.median(fn)


def attention_flops(length, causal, tokens):
    """Forward FLOPs of QK^T and PV at `tokens` per batch (4 * b * s^2 * heads * d), halved under the causal mask."""
    batch = max(1, tokens // length)
    f = 4 * batch * length * length * ATTENTION_HEADS * ATTENTION_HEAD_DIM
    return f / 2 if causal else f


def time_attention(torch, timer, kernel, length, causal):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F

    batch = max(1, ATTENTION_TOKENS // length)
    shape = (batch, ATTENTION_HEADS, length, ATTENTION_HEAD_DIM)
    q, k, v = (torch.randn(shape, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    grad = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
    scale = 1 / math.sqrt(ATTENTION_HEAD_DIM)
    mask = torch.triu(torch.ones(length, length, device="cuda", dtype=torch.bool), 1) if kernel == "plain" and causal else None

    def forward():
        if kernel == "plain":
            s = torch.matmul(q, k.transpose(-1, -2)) * scale
            if mask is not None:
                s = s.masked_fill(mask, float("-inf"))
            return torch.matmul(torch.softmax(s.float(), dim=-1).to(q.dtype), v)
        backend = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION}[kernel]
        with sdpa_kernel([backend]):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    def fwd():
        with torch.no_grad():
            forward()

    def fwd_bwd():
        out = forward()
        torch.autograd.backward(out, grad)
        q.grad = k.grad = v.grad = None

    forward_seconds, _ = timer.median_eager(fwd, target_seconds=0.1, trials=7, max_reps=50)
    both_seconds, _ = timer.median_eager(fwd_bwd, target_seconds=0.1, trials=7, max_reps=50)
    return forward_seconds, both_seconds - forward_seconds


def time_aligned_attention(torch, timer, head_dim, dtype):
    """Megatron-LM's unfused attention products: baddbmm(q, k^T) then bmm(p, v), q, k, v strided views of one
    [s, b, heads, 3*headDim] tensor (no copy: each starts headDim elements after the last). Returns seconds of
    the forward and of forward + backward (autograd: dS k, dS^T q, dC v^T, p^T dC), the forward's FLOPs, heads."""
    heads = max(1, ALIGNMENT_HIDDEN // head_dim)
    s, b = ALIGNMENT_SEQ, ALIGNMENT_TOKENS // ALIGNMENT_SEQ
    mixed = torch.randn(s, b, heads, 3 * head_dim, device="cuda", dtype=dtype, requires_grad=True)
    probs = torch.randn(b * heads, s, s, device="cuda", dtype=dtype, requires_grad=True)
    grad_scores = torch.randn(b * heads, s, s, device="cuda", dtype=dtype)
    grad_context = torch.randn(b * heads, s, head_dim, device="cuda", dtype=dtype)

    def products():
        q, k, v = (t.view(s, b * heads, head_dim) for t in mixed.split(head_dim, dim=-1))
        assert q.stride() == (b * heads * 3 * head_dim, 3 * head_dim, 1), "q must stay a strided view"
        scores = torch.baddbmm(torch.empty(b * heads, s, s, device="cuda", dtype=dtype), q.transpose(0, 1),
                               k.transpose(0, 1).transpose(1, 2), beta=0.0, alpha=1.0)
        return scores, torch.bmm(probs, v.transpose(0, 1))

    def fwd():
        with torch.no_grad():
            products()

    def fwd_bwd():
        scores, context = products()
        torch.autograd.backward([scores, context], [grad_scores, grad_context])
        mixed.grad = probs.grad = None

    forward_seconds, _ = timer.median_eager(fwd, target_seconds=0.1, trials=7, max_reps=50)
    both_seconds, _ = timer.median_eager(fwd_bwd, target_seconds=0.1, trials=7, max_reps=50)
    return forward_seconds, both_seconds, 2 * 2 * b * heads * s * s * head_dim, heads


def time_stream(torch, timer, nbytes, op):
    n = nbytes // 2
    a = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    b = torch.empty_like(a)
    if op == "copy":
        return timer.median(lambda: b.copy_(a))[0], 2 * nbytes  # read + write
    c = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    return timer.median(lambda: torch.add(a, c, out=b))[0], 3 * nbytes  # two reads + one write


def over_passes(items, measure, passes):
    """measure(item) -> seconds, over every item `passes` times (odd passes reversed): (median, spread) per item."""
    samples = [[] for _ in items]
    order = list(range(len(items)))
    for p in range(passes):
        for i in (order if p % 2 == 0 else reversed(order)):
            samples[i].append(measure(items[i]))
    return [(statistics.median(x), max(x) / min(x) - 1) for x in samples]


def warm_up(torch, seconds=10.0):
    """Large bf16 products until `seconds` have passed: clocks and power reach their sustained state."""
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    t0 = time.time()
    while time.time() - t0 < seconds:
        for _ in range(20):
            torch.matmul(a, a)
        torch.cuda.synchronize()


def write(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    os.replace(tmp, path)


def section(doc, path, name, body):
    """Run one section; a failure is recorded under errors and the other sections still run."""
    t0 = time.time()
    try:
        body()
    except Exception as e:
        doc.setdefault("errors", {})[name] = "%s: %s" % (type(e).__name__, e)
        print("section %s failed: %s" % (name, e), flush=True)
    doc.setdefault("sectionSeconds", {})[name] = round(time.time() - t0, 1)
    write(path, doc)
    print("section %s done in %.1f s" % (name, time.time() - t0), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpu", default="h100-sxm", help="meshplan GPU name the figures are for (models/hardware/gpus)")
    ap.add_argument("--out", default=None, help="output JSON (default models/hardware/measured/<gpu>.json)")
    ap.add_argument("--dry-run", action="store_true", help="list the shapes and exit; needs no GPU")
    ap.add_argument("--timing", choices=["graph", "eager"], default="graph",
                    help="products and copies: replay a captured CUDA graph (device time) or call from Python (eager)")
    ap.add_argument("--passes", type=int, default=3, help="times each section is measured (median kept)")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: %s; with an existing --out file, its other sections are kept" % ",".join(SECTIONS))
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if skip - set(SECTIONS):
        sys.exit("measure.py: --skip %s: unknown section(s); valid: %s" % (",".join(sorted(skip - set(SECTIONS))), ",".join(SECTIONS)))
    out = args.out or os.path.join(REPO, "models", "hardware", "measured", args.gpu + ".json")
    layers = layer_shapes()
    if args.dry_run:
        print("grid %d points, layer shapes %d, fp8 grid %d points, attention lengths %s" % (
            len(GRID_M) * len(GRID_KN) ** 2, len(layers), len(FP8_GRID_M) * len(FP8_GRID_KN) ** 2, ATTENTION_LENGTHS))
        print("alignment head dims %s, hidden %d per rank, %d tokens" % (ALIGNMENT_HEAD_DIMS, ALIGNMENT_HIDDEN, ALIGNMENT_TOKENS))
        print(json.dumps(layers[:12]))
        return
    import torch

    if not torch.cuda.is_available():
        sys.exit("measure.py: no CUDA device visible to PyTorch")
    torch.backends.cuda.matmul.allow_tf32 = False
    timer = Timer(torch, graphs=args.timing == "graph")
    header = {
        "gpu": args.gpu,
        "measuredAt": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "script": "scripts/gpu/measure.py",
        "device": device_info(torch),
        "timing": args.timing,
        "method": "After 10 s of 8192^3 bf16 products (sustained clocks and power): CUDA events around back-to-back calls "
        "after warm-up calls, the calls captured in one CUDA graph and replayed (timing 'graph': device time, no per-call "
        "Python or launch cost) except attention and alignment, called from Python with autograd; median of 5 trials, each of as many calls as fill about 4 ms (attention: 7 trials of "
        "about 14 ms), at least one; random normal inputs; GEMM inputs rotated among copies until 256 MiB so small "
        "products do not run from L2. Seconds are per call; each point is the median over %d passes." % args.passes,
    }
    sections = [name for name in SECTIONS if name not in skip]
    if skip and os.path.exists(out):
        # Some sections only: the file keeps the others (the cost model reads them), and says which run measured what.
        with open(out) as fh:
            doc = json.load(fh)
        doc.setdefault("laterRuns", []).append(dict(header, sections=sections))
        print("measure.py: keeping the other sections of", out, flush=True)
    else:
        doc = header
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)

    def grid_of(ms, kns, gemm):
        shapes = [(m, k, n) for m in ms for k in kns for n in kns]
        timed = over_passes(shapes, lambda x: gemm(torch, timer, *x)[0], args.passes)
        return [[m, k, n, t, round(spread, 4)] for (m, k, n), (t, spread) in zip(shapes, timed)]

    def grid():
        doc["gemmBf16"] = {"layout": "y[m,n] = x[m,k] @ w[n,k]^T, bf16 in and out, fp32 accumulate (torch.matmul)",
                           "columns": ["m", "k", "n", "seconds", "spread"], "points": grid_of(GRID_M, GRID_KN, time_gemm)}

    def layer():
        layout = {"forward": "nt", "dgrad": "nn", "wgrad": "tn"}
        timed = over_passes(layers, lambda s: time_gemm(torch, timer, s["m"], s["k"], s["n"], layout[s["pass"]])[0], args.passes)
        rows = [dict(s, seconds=t, spread=round(spread, 4)) for s, (t, spread) in zip(layers, timed)]
        doc["gemmLayers"] = {"layouts": {"forward": "x @ w^T", "dgrad": "dy @ w", "wgrad": "dy^T @ x"}, "rows": rows}

    def fp8():
        doc["gemmFp8"] = {"layout": "torch._scaled_mm, e4m3 x e4m3 -> bf16, per-tensor scales",
                          "columns": ["m", "k", "n", "seconds", "spread"], "points": grid_of(FP8_GRID_M, FP8_GRID_KN, time_fp8_gemm)}

    def attention():
        rows = []
        for p in range(args.passes):
            for kernel in ["flash", "cudnn", "efficient", "plain"]:
                for causal in [True, False]:
                    for length in ATTENTION_LENGTHS if p % 2 == 0 else reversed(ATTENTION_LENGTHS):
                        if kernel == "plain" and length > PLAIN_ATTENTION_MAX_LENGTH:
                            continue
                        row = {"kernel": kernel, "causal": causal, "seqLen": length, "batch": max(1, ATTENTION_TOKENS // length),
                               "forwardFlops": attention_flops(length, causal, ATTENTION_TOKENS), "pass": p}
                        try:
                            row["forwardSeconds"], row["backwardSeconds"] = time_attention(torch, timer, kernel, length, causal)
                        except Exception as e:
                            row["error"] = "%s: %s" % (type(e).__name__, str(e).split("\n")[0][:200])
                        rows.append(row)
                        torch.cuda.empty_cache()
            print("attention pass %d done" % p, flush=True)
        doc["attention"] = {"heads": ATTENTION_HEADS, "headDim": ATTENTION_HEAD_DIM, "tokensPerBatch": ATTENTION_TOKENS,
                            "flops": "forward 4 * batch * seqLen^2 * heads * headDim, halved when causal; backward seconds = (forward+backward) - forward",
                            "rows": rows}

    def memory():
        rows = []
        for p in range(args.passes):
            for op in ["copy", "add"]:
                for nbytes in COPY_BYTES:
                    seconds, moved = time_stream(torch, timer, nbytes, op)
                    rows.append({"op": op, "bufferBytes": nbytes, "bytesMoved": moved, "seconds": seconds, "pass": p})
                    torch.cuda.empty_cache()
        doc["memory"] = {"bytesMoved": "copy: read + write; add: two reads + one write (bf16)", "rows": rows}

    def alignment():
        rows = []
        for p in range(args.passes):
            for dtype in [torch.float16, torch.bfloat16]:
                for head_dim in ALIGNMENT_HEAD_DIMS if p % 2 == 0 else reversed(ALIGNMENT_HEAD_DIMS):
                    forward, both, flops, heads = time_aligned_attention(torch, timer, head_dim, dtype)
                    rows.append({"dtype": str(dtype).replace("torch.", ""), "headDim": head_dim, "heads": heads,
                                 "forwardSeconds": forward, "backwardSeconds": both - forward, "forwardFlops": flops,
                                 "forwardFlopsPerSecond": flops / forward, "pass": p})
                    torch.cuda.empty_cache()
        doc["attentionAlignment"] = {
            "what": "Megatron-LM unfused attention products: baddbmm(q, k^T) + bmm(probs, v), q/k/v views into one [s, b, heads, 3*headDim] tensor; "
                    "forward, and backward = (forward + backward through autograd) - forward, called from Python",
            "seqLen": ALIGNMENT_SEQ, "tokens": ALIGNMENT_TOKENS, "hiddenPerRank": ALIGNMENT_HIDDEN, "rows": rows}

    warm_up(torch)
    bodies = {"memory": memory, "attention": attention, "grid": grid, "layers": layer, "fp8": fp8, "alignment": alignment}
    for name in sections:
        section(doc, out, name, bodies[name])
        torch.cuda.empty_cache()
    if timer.fallbacks:
        doc["graphFallbacks"] = {"count": len(timer.fallbacks), "first": timer.fallbacks[0]}
    doc["nvidiaSmiAfter"] = run(["nvidia-smi", "--query-gpu=clocks.sm,clocks.mem,power.draw,temperature.gpu", "--format=csv,noheader"])
    write(out, doc)
    print("wrote", out)


if __name__ == "__main__":
    main()
