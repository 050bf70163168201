#!/usr/bin/env python3
"""Time ONNX Runtime inference from Python on a pre-processed input tensor.

The Rust benchmark (`cargo run --release -p parkwatch-edge --bin bench-detect`)
writes the exact NCHW float32 tensor its own pre-processing produced and runs
this script on it, with the same model file, thread count and spinning
setting, so the two numbers compare the runtimes' `run` calls and nothing
else. It can also be run by hand:

    PYTHONPATH=/opt/parkwatch/python python3 deploy/bench/onnx_python.py \
        --model models/nanodet-m-320.onnx --input /tmp/tensor-320.f32 \
        --width 320 --height 320 --threads 2

Prints one JSON object: median and p95 of `InferenceSession.run` in ms, every
sample (sorted), the runtime version, and how many anchor rows have a best class score at or
above --score-threshold (the Rust side reports the same count before NMS).
Needs numpy and onnxruntime (deploy/setup.sh installs both into
/opt/parkwatch/python).
"""

import argparse
import json
import math
import statistics
import sys
import time


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="ONNX model file")
    ap.add_argument("--input", required=True, help="raw little-endian float32 NCHW tensor [1, 3, H, W]")
    ap.add_argument("--width", type=int, required=True, help="model input width W")
    ap.add_argument("--height", type=int, required=True, help="model input height H")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    ap.add_argument("--spinning", type=int, choices=(0, 1), default=0,
                    help="allow intra-op threads to spin-wait (default 0, like the edge)")
    ap.add_argument("--iterations", type=int, default=200, help="timed runs (default 200)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed runs first (default 20)")
    ap.add_argument("--score-threshold", type=float, default=0.35)
    ap.add_argument("--num-classes", type=int, default=80)
    args = ap.parse_args()

    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as e:
        sys.exit(f"onnx_python.py: {e}; set PYTHONPATH=/opt/parkwatch/python (deploy/setup.sh installs it)")

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only: hides the export's per-weight warnings
    opts.add_session_config_entry("session.intra_op.allow_spinning", str(args.spinning))
    session = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])

    count = 3 * args.height * args.width
    tensor = np.fromfile(args.input, dtype="<f4")
    if tensor.size != count:
        sys.exit(f"onnx_python.py: {args.input} holds {tensor.size} floats, expected {count}")
    tensor = tensor.reshape(1, 3, args.height, args.width)
    feed = {session.get_inputs()[0].name: tensor}

    for _ in range(args.warmup):
        session.run(None, feed)
    times = []
    outputs = None
    for _ in range(args.iterations):
        started = time.perf_counter()
        outputs = session.run(None, feed)
        times.append((time.perf_counter() - started) * 1000.0)
    times.sort()

    candidates = 0
    for out in outputs or []:
        rows = out.reshape(-1, out.shape[-1])
        if rows.shape[-1] == args.num_classes:
            candidates += int((rows.max(axis=1) >= args.score_threshold).sum())

    print(json.dumps({
        "runtime": f"onnxruntime {ort.__version__} (Python {sys.version.split()[0]})",
        "threads": args.threads,
        "iterations": args.iterations,
        "median_ms": round(statistics.median(times), 3),
        "p95_ms": round(percentile(times, 95), 3),
        "min_ms": round(times[0], 3),
        "candidates": candidates,
        "samples_ms": [round(t, 4) for t in times],
    }))


if __name__ == "__main__":
    main()
