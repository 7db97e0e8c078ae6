"""`python -m aelink.measure.coder_bench`: the range coder's overhead, speed and damage detection on
realistic tables, a prior fitted to synthetic latents coded end to end (`--prior`), and the shipped rd
models' real codes, old coder against new (`--models rd10 rd16 rd64`)."""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from bisect import bisect_right
from collections.abc import Sequence

import torch

from aelink.data.datasets import load_split, to_tensor
from aelink.training.prior import FactorizedPrior, build_tables, fit_prior, rate_bits
from shared.codec.batchcoder import BatchCoder
from shared.codec.encoder import load_encoder
from shared.codec.rangecoder import (
    MAX_PRECISION,
    CodeError,
    Table,
    decode_values,
    encode_values,
    escape_distance,
    make_table,
)
from shared.codec.tables import coder_tables, compress, decompress


def realistic_tables(rng: random.Random, count: int, bits: int = MAX_PRECISION) -> list[Table]:
    """Discretised Laplace and Gaussian densities of the spreads learned latents have (0.2..20
    quantisation steps), off-centre by up to half a step, support out to 1e-9 tail mass."""
    tables = []
    for _ in range(count):
        scale, shift = math.exp(rng.uniform(math.log(0.2), math.log(20))), rng.uniform(-0.5, 0.5)
        if rng.random() < 0.5:
            def cdf(x, b=scale):
                return 0.5 * math.exp(x / b) if x < 0 else 1 - 0.5 * math.exp(-x / b)
            reach = scale * math.log(0.5 / 5e-10)
        else:
            def cdf(x, s=scale):
                return 0.5 * math.erfc(-x / (s * math.sqrt(2)))
            reach = scale * 6.1
        lo, hi = -math.ceil(reach - shift), math.ceil(reach + shift)
        pmf = [cdf(v + 0.5 - shift) - cdf(v - 0.5 - shift) for v in range(lo, hi + 1)]
        tables.append(make_table(pmf, lo, bits))
    return tables


def sample_values(rng: random.Random, table: Table) -> int:
    """A value drawn from the table's own model (an escape draws a small distance past the tails)."""
    s = bisect_right(table.cdf, rng.randrange(table.cdf[-1])) - 1
    if s < len(table.cdf) - 2:
        return table.offset + s
    past = 1 + int(rng.expovariate(0.5))
    return table.offset - past if rng.random() < 0.5 else table.offset + len(table.cdf) - 3 + past


def ideal_bits(values: Sequence[int], tables: Sequence[Table]) -> float:
    """The information the model assigns the values, escapes' raw bits included."""
    bits = 0.0
    for value, (cdf, offset, precision) in zip(values, tables, strict=True):
        s, escape = value - offset, len(cdf) - 2
        if not 0 <= s < escape:
            bits += 2 * (escape_distance(s, escape) + 1).bit_length() - 1
            s = escape
        bits += precision - math.log2(cdf[s + 1] - cdf[s])
    return bits


def damaged(rng: random.Random, codes: list[bytes]) -> dict[str, list[bytes]]:
    """Each kind of damage done once to each (non-empty) code."""
    damages = {
        "truncated by 1 byte": lambda c: c[:-1],
        "truncated by half": lambda c: c[: len(c) // 2],
        "1 byte appended": lambda c: c + bytes([rng.randrange(1, 256)]),
        "1 bit flipped": lambda c: _flip(c, rng.randrange(8 * len(c))),
        "1 byte replaced": lambda c: _replace(rng, c),
    }
    return {name: [damage(c) for c in codes if c] for name, damage in damages.items()}


def _refused(code: bytes, tables: list[Table]) -> bool:
    try:
        decode_values(code, tables)
    except CodeError:
        return True
    return False


def detection_rates(rng: random.Random, codes: list[bytes], tables: list[Table]) -> dict[str, float]:
    """How often each kind of damage is caught (raises CodeError) rather than decoding silently."""
    return {name: sum(_refused(c, tables) for c in bad) / max(len(bad), 1)
            for name, bad in damaged(rng, codes).items()}


def _flip(code: bytes, bit: int) -> bytes:
    out = bytearray(code)
    out[bit // 8] ^= 0x80 >> bit % 8
    return bytes(out)


def _replace(rng: random.Random, code: bytes) -> bytes:
    out = bytearray(code)
    i = rng.randrange(len(out))
    out[i] = (out[i] + rng.randrange(1, 256)) % 256
    return bytes(out)


def synthetic_latents(n: int, channels: int, seed: int = 0) -> torch.Tensor:
    """(n, C) Laplace latents, per channel a spread of 0.3..8 steps and a centre off the grid; the
    channels' spreads and centres are fixed, the seed draws the samples."""
    params = torch.Generator().manual_seed(12345)
    scale = torch.exp(torch.empty(channels).uniform_(math.log(0.3), math.log(8), generator=params))
    centre = torch.empty(channels).uniform_(-3, 3, generator=params)
    u = torch.rand(n, channels, generator=torch.Generator().manual_seed(seed)).clamp(1e-7, 1 - 1e-7)
    return centre - scale * torch.sign(u - 0.5) * torch.log1p(-2 * (u - 0.5).abs())  # inverse cdf


def coder(args: argparse.Namespace) -> None:
    """Overhead, speed and detection of the range coder on realistic tables."""
    rng = random.Random(args.seed)
    tables = realistic_tables(rng, args.symbols)
    messages = [[sample_values(rng, t) for t in tables] for _ in range(args.messages)]
    t0 = time.perf_counter()
    codes = [encode_values(m, tables) for m in messages]
    t1 = time.perf_counter()
    decoded = [decode_values(c, tables) for c in codes]
    t2 = time.perf_counter()
    if decoded != messages:
        raise AssertionError("round trip failed")
    over = [len(c) - math.ceil(ideal_bits(m, tables) / 8) for c, m in zip(codes, messages, strict=True)]
    real, ideal = sum(map(len, codes)), sum(ideal_bits(m, tables) for m in messages) / 8
    sizes = [len(t.cdf) - 2 for t in tables]
    print(f"{args.messages} messages of {args.symbols} values, tables of {min(sizes)}..{max(sizes)} symbols")
    print(f"bytes per code: {real / len(codes):.3f} real, {ideal / len(codes):.3f} ideal (information / 8)")
    print(f"overhead vs ceil(information / 8): mean {sum(over) / len(over):+.3f} B, min {min(over)}, max {max(over)}")
    print("  histogram: " + ", ".join(f"{d:+d}: {over.count(d)}" for d in sorted(set(over))))
    print(f"encode {t1 - t0:.2f} s ({(t1 - t0) / len(codes) * 1e6:.0f} us/code), "
          f"decode {t2 - t1:.2f} s ({(t2 - t1) / len(codes) * 1e6:.0f} us/code)")
    sample = codes[: min(len(codes), 2000)]
    for name, rate in detection_rates(rng, sample, tables).items():
        print(f"detected {rate:6.1%}: {name} ({len(sample)} codes)")


def prior_end_to_end(args: argparse.Namespace) -> None:
    """Fit a prior to synthetic latents, build its tables, code them: real bytes against the estimate."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    prior = FactorizedPrior(args.symbols)
    t0 = time.perf_counter()
    fit_prior(prior, synthetic_latents(20_000, args.symbols, seed=1), steps=args.steps)
    t1 = time.perf_counter()
    tables = build_tables(prior.eval())
    t2 = time.perf_counter()
    y = synthetic_latents(args.messages, args.symbols, seed=2)
    codes = compress(y, tables)
    t3 = time.perf_counter()
    y_hat = decompress(codes, tables, args.symbols)
    t4 = time.perf_counter()
    y_tilde, likelihoods = prior(y)
    if not torch.equal(y_hat, y_tilde):
        raise AssertionError("decompress disagrees with the prior's quantisation")
    estimate = rate_bits(likelihoods).item() / 8 / len(codes)
    real = sum(map(len, codes)) / len(codes)
    print(f"fit {args.steps} steps: {t1 - t0:.1f} s; tables: {t2 - t1:.2f} s,"
          f" {int(tables['cdf_length'].max()) - 2} symbols max")
    print(f"bytes per code: {real:.3f} real, {estimate:.3f} estimated by the prior ({real - estimate:+.3f})")
    print(f"compress {t3 - t2:.2f} s, decompress {t4 - t3:.2f} s for {len(codes)} codes of {args.symbols}")


def _us_per_code(fn, batches: list, repeats: int = 5) -> float:
    """CPU microseconds per code, this thread's (other processes on a busy machine do not count): each
    batch's best of `repeats` calls."""
    best = [math.inf] * len(batches)
    for _ in range(repeats):
        for i, batch in enumerate(batches):
            t0 = time.thread_time()
            fn(batch)
            best[i] = min(best[i], time.thread_time() - t0)
    return sum(best) / sum(map(len, batches)) * 1e6


def models(args: argparse.Namespace) -> None:
    """Shipped rd models on real test digits: the reference coder (how shared.codec.tables coded until
    the compiled one) against shared.codec.batchcoder, through EntropyTables as the services call it."""
    torch.set_num_threads(1)
    images = to_tensor(load_split("test", args.data_dir)[0][: args.images])
    report: dict = {"images": len(images), "load_average": os.getloadavg()[0], "models": {}}
    print(f"{len(images)} MNIST test digits; CPU time of this thread per code, best of 5;"
          f" load average {report['load_average']:.1f}")
    for name in args.models:
        encoder, _ = load_encoder(os.path.join(args.weights, name, "encoder.safetensors"))
        with torch.no_grad():
            latents = encoder(images)
        entropy = encoder.entropy
        per_channel, medians = coder_tables(entropy.tables())
        tables, m = [t for t in per_channel for _ in range(entropy.positions)], medians.view(1, -1, 1)

        def old_compress(y, tables=tables, m=m, c=entropy.channels):
            q = torch.round(y.reshape(len(y), c, -1) - m).flatten(1).to(torch.int64).tolist()
            return [encode_values(row, tables) for row in q]

        def old_decompress(codes, tables=tables, m=m, c=entropy.channels, shape=entropy.shape):
            q = torch.tensor([decode_values(code, tables) for code in codes], dtype=torch.int64)
            return (q.view(len(q), c, -1).to(torch.float32) + m).view(len(q), *shape)

        codes = entropy.compress(latents)
        if codes != old_compress(latents) or not torch.equal(entropy.decompress(codes), old_decompress(codes)):
            raise AssertionError(f"{name}: the coders disagree")
        row = report["models"][name] = {"bytes_old": sum(map(len, old_compress(latents))) / len(codes),
                                        "bytes_new": sum(map(len, codes)) / len(codes),
                                        "information_bytes": float(entropy.information_bits(latents).mean()) / 8}
        for n in args.batch:
            chunks = [(latents[i:i + n], codes[i:i + n]) for i in range(0, len(codes), n)]
            old = chunks[: max(1, args.old_codes // n)]  # the reference is slow: fewer codes
            row[f"batch {n}"] = {
                "encode_us": [_us_per_code(old_compress, [y for y, _ in old]),
                              _us_per_code(entropy.compress, [y for y, _ in chunks])],
                "decode_us": [_us_per_code(old_decompress, [c for _, c in old]),
                              _us_per_code(entropy.decompress, [c for _, c in chunks])]}
        coder, bad = BatchCoder(tables), damaged(random.Random(args.seed), codes[: args.damaged])
        row["detected"] = {kind: [sum(_refused(c, tables) for c in d) / len(d),
                                  sum(e is not None for e in coder.decode(d)[1]) / len(d)] for kind, d in bad.items()}
        _print_model(name, row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


def _print_model(name: str, row: dict) -> None:
    print(f"{name}: bytes/code {row['bytes_old']:.3f} old, {row['bytes_new']:.3f} new"
          f" (information {row['information_bytes']:.3f})")
    for key, t in row.items():
        if key.startswith("batch"):
            (eo, en), (do, dn) = t["encode_us"], t["decode_us"]
            print(f"  {key:>8}: encode {eo:8.1f} -> {en:6.2f} us/code ({eo / en:5.1f}x);"
                  f" decode {do:8.1f} -> {dn:6.2f} us/code ({do / dn:5.1f}x)")
    for kind, (old, new) in row["detected"].items():
        print(f"  detected {old:6.1%} old, {new:6.1%} new: {kind}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aelink.measure.coder_bench", description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=10_000, help="codes to make")
    p.add_argument("--symbols", type=int, default=32, help="values (tables) per code")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prior", action="store_true", help="fit a prior to synthetic latents and code them instead")
    p.add_argument("--steps", type=int, default=300, help="with --prior: the prior's fitting steps")
    p.add_argument("--models", nargs="+", help="shipped rd models to measure, old coder against new, instead")
    p.add_argument("--weights", default="weights", help="with --models: the folder of the model folders")
    p.add_argument("--data-dir", help="with --models: MNIST (default: AELINK_DATA_DIR or ./data/mnist)")
    p.add_argument("--images", type=int, default=2048, help="with --models: test digits to code")
    p.add_argument("--batch", type=int, nargs="+", default=[64, 1], help="with --models: batch sizes")
    p.add_argument("--old-codes", type=int, default=256, help="with --models: codes to time the old coder on")
    p.add_argument("--damaged", type=int, default=1000, help="with --models: codes to damage, each way")
    p.add_argument("--json", help="with --models: also write the figures here")
    args = p.parse_args(argv)
    (models if args.models else prior_end_to_end if args.prior else coder)(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
