"""`aelink bench`: benchmarks that print their figures (training speed; bytes against quality; serving)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from aelink.commands.common import add_data_args, add_judge_arg, int_list, judge_for
from shared.codec.config import PRESETS


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks", description=__doc__)
    kinds = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    s = kinds.add_parser("speed", help="seconds per training epoch (median of timed steps)")
    s.add_argument("--preset", action="append", choices=sorted(PRESETS), help="default: seed")
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--steps", type=int, default=30, help="timed steps per repeat")
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--threads", type=int, help="CPU threads (default: the cores this process may use)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(run=run_speed)
    t = kinds.add_parser("train", help="aelink's training against the article's Keras model, in one run",
                         description="Train the seed preset and the article's Keras model epoch by epoch in "
                         "turn, then the other presets; print seconds per epoch, validation BCE and PSNR, "
                         "the ratios and the machine.")
    t.add_argument("--epochs", type=int, default=2, help="epochs of each (default: 2)")
    t.add_argument("--preset", action="append", choices=sorted(PRESETS),
                   help="presets to time (repeatable; the first runs beside Keras; default: seed, compact32, rd16)")
    t.add_argument("--keras-python", default=os.environ.get("AELINK_KERAS_PYTHON", sys.executable),
                   help="the interpreter that runs the Keras script (default: $AELINK_KERAS_PYTHON, else this one)")
    t.add_argument("--no-keras", action="store_true", help="time aelink only")
    t.add_argument("--train-subset", type=int, help="only the first N training images (quick runs)")
    t.add_argument("--test-subset", type=int, help="validate on only the first N test images")
    t.add_argument("--threads", type=int, help="CPU threads for both libraries (default: each one's choice)")
    t.add_argument("--processes", type=int, default=1,
                   help="train aelink under torchrun with this many processes of one thread (default: 1, in process)")
    t.add_argument("--shards", type=int, help="aelink's step threads in one process (`aelink train --shards`)")
    t.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="aelink's bf16 autocast (`aelink train --bf16`; default: as `aelink train` decides)")
    t.add_argument("--json", action="store_true", help="print the measurements as JSON")
    add_data_args(t)
    t.set_defaults(run=run_train)
    r = kinds.add_parser("rd", help="bytes per image against PSNR and SSIM: our codecs, PCA, PNG, WebP, JPEG",
                         description="Measure, in one run on the test images, bytes per image against PSNR and"
                         " SSIM; write rd.csv, rd.json and rd.png.")
    r.add_argument("--weights-root", type=Path, default=Path("weights"),
                   help="every model folder under it (rd and compact models; default: weights)")
    r.add_argument("--weights", type=Path, action="append", default=[], help="another model folder (repeatable)")
    r.add_argument("--pca", type=int_list, default=(16, 32, 64), help="PCA code sizes (default: 16,32,64)")
    r.add_argument("--limit", type=int, help="only the first N test images (default: all 10,000)")
    r.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    r.add_argument("--out", type=Path, default=Path("out/bench_rd"), help="folder for rd.csv, rd.json, rd.png")
    add_data_args(r)
    add_judge_arg(r)
    r.set_defaults(run=run_rd)
    v = kinds.add_parser("serve", help="the pair under load: in process, HTTP batched, C single-image clients"
                         " (hey), /healthz under a flood; against a no-op FastAPI pair",
                         description="Start the real pair (and a no-op pair) and measure, in one run, images/s"
                         " in process, over HTTP in batches, and with C concurrent single-image clients (p50/p99,"
                         " errors), and /healthz while the decoder is flooded; print a table, write JSON.")
    v.add_argument("--models", type=lambda t: tuple(t.split(",")), default=("compact32", "rd64"),
                   help="comma-separated models (default: compact32,rd64)")
    v.add_argument("-c", "--concurrency", type=int, help="single-image clients in flight (default: 64)")
    v.add_argument("-s", "--seconds", type=float, help="seconds per single-image point and of the flood (default: 10)")
    v.add_argument("--timed", type=float, help="seconds per in-process and HTTP batched point (default: 3)")
    v.add_argument("--healthz-gets", type=int, help="GETs of /healthz during the flood, at most (default: 300)")
    v.add_argument("--weights-dir", type=Path, help="weights folder (default: the repository's weights/)")
    v.add_argument("--quick", action="store_true", help="a second or so per point (for tests); the flags above still apply")
    v.add_argument("--out", type=Path, default=Path("out/bench_serve.json"), help="JSON results (default: %(default)s)")
    add_data_args(v)
    v.set_defaults(run=run_serve)
    k = kinds.add_parser("soak", help="C clients send single digits through the real pair for S seconds; every"
                         " answer checked against the lone request's", description="Start the real pair and"
                         " send single digits (encode, then decode its code) from C concurrent clients for S"
                         " seconds, with no retries; count errors and lost digits, and compare every code and"
                         " image byte for byte with what the same digit gets when sent alone.")
    k.add_argument("--models", type=lambda t: tuple(t.split(",")), default=("compact32", "rd64"),
                   help="comma-separated models (default: compact32,rd64)")
    k.add_argument("-c", "--concurrency", type=int, default=64, help="clients in flight (default: 64)")
    k.add_argument("-s", "--seconds", type=float, default=60.0, help="seconds per model (default: 60)")
    k.add_argument("--digits", type=int, default=500, help="distinct test digits sent (default: 500)")
    k.add_argument("--weights-dir", type=Path, help="weights folder (default: the repository's weights/)")
    k.add_argument("--out", type=Path, default=Path("out/bench_soak.json"), help="JSON results (default: %(default)s)")
    add_data_args(k)
    k.set_defaults(run=run_soak)


def run_speed(args: argparse.Namespace) -> int:
    from aelink.measure.bench_speed import bench_speed

    rows = bench_speed(args.preset or ["seed"], args.batch_size, args.steps, args.repeats, threads=args.threads)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'preset':<10} {'variant':<15} {'threads':>7} {'step threads':>12} {'ms/step':>8} {'s/epoch':>8}")
    for r in rows:
        print(f"{r['preset']:<10} {r['variant']:<15} {r['threads']:>7} {r['step_threads']:>12} "
              f"{r['ms_per_step']:>8.1f} {r['s_per_epoch']:>8.1f}")
    print(f"s/epoch = median ms/step x {-(-60000 // args.batch_size)} steps (60,000 images, batch {args.batch_size})")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from aelink.measure.bench_train import bench_train, format_report

    if args.dataset != "mnist":
        raise ValueError("bench train compares with the article's model on MNIST only")
    log = (lambda line: print(line, file=sys.stderr)) if args.json else print
    result = bench_train(args.preset or ["seed", "compact32", "rd16"], args.epochs,
                         keras_python=None if args.no_keras else args.keras_python,
                         train_subset=args.train_subset, test_subset=args.test_subset,
                         data_dir=args.data_dir, threads=args.threads, processes=args.processes,
                         shards=args.shards, bf16=args.bf16, log=log)
    print(json.dumps(result, indent=1) if args.json else format_report(result))
    return 0


def run_rd(args: argparse.Namespace) -> int:
    import torch

    from aelink.data.datasets import load_split, to_tensor
    from aelink.measure.bench_rd import bench_rd, format_table, model_folders, write_outputs

    torch.set_num_threads(args.threads)
    train = to_tensor(load_split("train", args.data_dir, args.dataset)[0])
    images, labels = load_split("test", args.data_dir, args.dataset)
    test = to_tensor(images[: args.limit])
    judge = judge_for(args, test, labels[: args.limit])
    folders = model_folders(args.weights_root, args.weights)
    points = bench_rd(train, test, folders, list(args.pca), judge=judge)
    print(format_table(points))
    paths = write_outputs(points, args.out, len(test))
    print(f"{len(test):,} test images; wrote " + ", ".join(map(str, paths)))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    import sys

    from aelink.data.datasets import load_split
    from aelink.measure.bench_serve import QUICK, Options, bench_serve, format_table
    from aelink.measure.hey import HeyMissing, hey_path

    try:
        hey_path()
    except HeyMissing as e:
        print(f"aelink bench serve: {e}", file=sys.stderr)
        return 2
    given = {k: v for k in ("concurrency", "seconds", "timed", "healthz_gets") if (v := getattr(args, k)) is not None}
    if args.weights_dir:
        given["weights_dir"] = args.weights_dir.resolve()
    opts = Options(models=args.models, **{**(QUICK if args.quick else {}), **given})  # flags beat --quick
    images = load_split("test", args.data_dir, args.dataset)[0][: opts.batch].copy()
    result = bench_serve(images, opts)
    print(format_table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


def run_soak(args: argparse.Namespace) -> int:
    from aelink.data.datasets import load_split
    from aelink.measure.soak import format_rows, passed, soak_model
    from shared.service.settings import DEFAULT_WEIGHTS

    images = load_split("test", args.data_dir, args.dataset)[0][: args.digits].copy()
    weights = args.weights_dir.resolve() if args.weights_dir else DEFAULT_WEIGHTS
    rows = [soak_model(m, images, args.concurrency, args.seconds, weights) for m in args.models]
    print(format_rows(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0 if all(passed(r) for r in rows) else 1
