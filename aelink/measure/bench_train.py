"""`aelink bench train`: aelink's training against the article's Keras model, in one run and one window.

The Keras script runs in a child process (its own interpreter if need be) and waits for a word before
each epoch, so Keras's epoch k and the seed preset's epoch k run one after the other: on a machine
other work shares, both see the same load, and the ratios hold where the absolute seconds do not.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy
import torch

from aelink.training.steps import cores, cpu
from aelink.training.train import Trainer, TrainOptions, load_images
from shared.codec.config import preset

KERAS_SCRIPT = Path(__file__).with_name("keras_peer.py")
FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "asimd", "sve")


def machine() -> dict:
    """The CPU (model, the vector flags that pick kernels, cores) and the library versions."""
    model, flags = cpu()
    return {"cpu": model, "flags": [f for f in FLAGS if f in flags], "cores": cores(),
            "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "torch_threads": torch.get_num_threads(), "load": os.getloadavg()}


def keras_missing(python: str) -> str | None:
    """Why the Keras side cannot run with this interpreter, or None when it can (as far as we can tell
    without starting it: the check for another interpreter is that it exists)."""
    if python == sys.executable:
        if importlib.util.find_spec("tensorflow") is None:
            return ("tensorflow is not installed: pip install 'aelink[peer]', or point --keras-python "
                    "(or AELINK_KERAS_PYTHON) at an interpreter that has it")
        return None
    if not Path(python).is_file():
        return f"--keras-python {python}: no such file"
    return None


class KerasPeer:
    """The Keras script as a child process that trains one epoch per `epoch()` call."""

    def __init__(self, python: str, args: list[str]) -> None:
        self.proc = subprocess.Popen([python, str(KERAS_SCRIPT), "--stepwise", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.info = self.read("machine")

    def read(self, event: str) -> dict:
        for line in self.proc.stdout:
            if line.startswith("{"):
                msg = json.loads(line)
                if msg.get("event") == event:
                    return msg
        raise RuntimeError(f"the Keras script ended (exit {self.proc.wait()}) before its {event!r} line")

    def epoch(self) -> dict:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return self.read("epoch")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # its next wait for a word ends it
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def bench_train(presets: list[str], epochs: int, *, keras_python: str | None, train_subset: int | None = None,
                test_subset: int | None = None, data_dir: str | None = None, threads: int | None = None,
                processes: int = 1, shards: int | None = None, bf16: bool | None = None, log=print) -> dict:
    """Train every preset for `epochs` epochs, the first ("seed") in turn with Keras; returns the machine,
    the Keras epochs, each preset's epochs (history rows) and why Keras was skipped, if it was. With
    processes > 1, aelink trains under torchrun, one launch per epoch resuming from the checkpoint.
    bf16 None: as `aelink train` decides per preset."""
    if processes > 1 and shards and shards > 1:
        raise ValueError("--shards splits a batch over threads in one process; with --processes use 1")
    if threads:
        torch.set_num_threads(threads)
    common = {"epochs": epochs, "train_subset": train_subset, "test_subset": test_subset,
              "data_dir": data_dir, "threads": threads, "progress": False, "bf16": bf16, "shards": shards}
    skipped = keras_missing(keras_python) if keras_python else "--no-keras"
    peer = None
    if skipped is None:
        args = ["--epochs", str(epochs), "--data-dir", str(data_dir or os.environ.get("AELINK_DATA_DIR", "data/mnist"))]
        for flag, value in (("--train-subset", train_subset), ("--test-subset", test_subset), ("--threads", threads)):
            if value:
                args += [flag, str(value)]
        log("starting the Keras script (importing tensorflow) ...")
        peer = KerasPeer(keras_python, args)
    result = {"machine": machine(), "processes": processes, "bf16": bf16, "keras": [], "presets": {}, "keras_skipped": skipped,
              "keras_info": peer.info if peer else None}
    try:
        with tempfile.TemporaryDirectory(prefix="aelink-bench-train-") as tmp:
            for i, name in enumerate(presets):
                if preset(name).noise:  # validation would need the noisy inputs fit draws
                    raise ValueError(f"bench train times presets without input noise, not {name!r}")
                # bf16 for the models it may train (rd models' priors stay fp32: Trainer refuses them)
                common["bf16"] = bf16 and not preset(name).entropy_coded if bf16 is not None else None
                if processes == 1:
                    trainer = Trainer(preset(name), TrainOptions(out=Path(tmp) / name, **common))
                    train_x, test_x = load_images(trainer.opts)
                    run_epoch = partial(trainer.run_epoch, train_x, test_x, test_x, log=_quiet)
                else:
                    run_epoch = partial(torchrun_epoch, name, processes, Path(tmp) / name, dict(common))
                rows = result["presets"][name] = []
                for _ in range(epochs):
                    if peer and i == 0:  # Keras's epoch k, then the first preset's epoch k
                        result["keras"].append(peer.epoch())
                        log(f"keras    epoch {len(result['keras'])}: {result['keras'][-1]['seconds']:.2f} s")
                    rows.append(run_epoch())
                    log(f"{name:<8} epoch {len(rows)}: {rows[-1]['seconds']:.2f} s")
    finally:
        if peer:
            peer.close()
    result["machine"]["load_after"] = os.getloadavg()
    return result


TEARDOWN_ABORT = "terminate called without an active exception"


def launch(cmd: list[str], env: dict[str, str] | None = None, timeout: float | None = None):
    """Run a torchrun command (output captured, faulthandler on: a native crash shows where each thread
    was). A worker sometimes aborts with TEARDOWN_ABORT (3 of about 60 launches on 2026-11-29, each in a
    full test run or beside other heavy work, none of 40 alone; cause not found): `aelink train` resumes
    from its checkpoint, so such a launch is run once more."""
    env = {**(env or os.environ), "PYTHONFAULTHANDLER": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if done.returncode and TEARDOWN_ABORT in done.stderr:
        print(f"a torchrun worker aborted ({TEARDOWN_ABORT}); launching again:\n{done.stderr[-2000:]}",
              file=sys.stderr)
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    return done


def torchrun_epoch(name: str, processes: int, out: Path, common: dict) -> dict:
    """One more epoch of `aelink train` under torchrun (resuming the run in `out`): its history row."""
    epoch = len(json.loads((out / "history.json").read_text())) + 1 if (out / "history.json").is_file() else 1
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
           "-m", "aelink.cli", "train", "--preset", name, "--epochs", str(epoch), "--out", str(out),
           "--resume", "--no-progress"] + ({True: ["--bf16"], False: ["--no-bf16"]}.get(common["bf16"], []))
    for flag in ("train_subset", "test_subset", "data_dir"):
        if common[flag]:
            cmd += [f"--{flag.replace('_', '-')}", str(common[flag])]
    done = launch(cmd)
    if done.returncode:
        raise RuntimeError(f"torchrun epoch {epoch} of {name} failed:\n{done.stderr[-2000:]}")
    return json.loads((out / "history.json").read_text())[-1]


def _quiet(_line: str) -> None:
    pass


def format_report(result: dict) -> str:
    """Markdown: the machine, the seed preset against Keras epoch by epoch, the other presets' epochs."""
    m, k = result["machine"], result["keras_info"] or {}
    versions = f"Python {m['python']}, torch {m['torch']} ({m['torch_threads']} threads), numpy {m['numpy']}"
    if k:
        versions += f", tensorflow {k['tensorflow']}, keras {k['keras']} (threads: {k['threads']})"
    autocast = [n for n, rows in result["presets"].items() if rows and rows[0].get("bf16")]
    versions += f"; aelink in bf16 autocast for {', '.join(autocast)}, fp32 otherwise" if autocast else "; aelink in fp32"
    if result.get("processes", 1) > 1:
        versions += f"; aelink under torchrun, {result['processes']} processes of 1 thread"
    elif any(rows and rows[0].get("shards", 1) > 1 for rows in result["presets"].values()):
        shards = {rows[0].get("shards", 1) for rows in result["presets"].values() if rows}
        versions += f"; aelink in one process, each batch split over {'/'.join(map(str, sorted(shards)))} threads"
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, flags {' '.join(m['flags']) or '-'}; {versions}; "
             f"load average {m['load'][0]:.1f} before, {m['load_after'][0]:.1f} after.", ""]
    names = list(result["presets"])
    seed, keras = result["presets"].get(names[0], []) if names else [], result["keras"]
    if keras:
        lines += ["| epoch | Keras s | aelink s | aelink / Keras | Keras CPU s | aelink CPU s | CPU ratio "
                  "| Keras val BCE | aelink val BCE | Keras PSNR dB | aelink PSNR dB |",
                  "|" + " ---: |" * 11]
        for kr, sr in zip(keras, seed, strict=True):
            lines.append(f"| {kr['epoch']} | {kr['seconds']:.2f} | {sr['seconds']:.2f} | "
                         f"{sr['seconds'] / kr['seconds']:.2f} | {kr['cpu_seconds']:.2f} | "
                         f"{sr['cpu_seconds']:.2f} | {sr['cpu_seconds'] / kr['cpu_seconds']:.2f} | "
                         f"{kr['val_loss']:.4f} | {sr['val_loss']:.4f} | "
                         f"{kr['val_psnr']:.2f} | {sr['val_psnr_of_mean_mse']:.2f} |")
        ks, ss = (sum(r["seconds"] for r in rows) for rows in (keras, seed))
        kc, sc = (sum(r["cpu_seconds"] for r in rows) for rows in (keras, seed))
        lines += [f"| all | {ks:.2f} | {ss:.2f} | {ss / ks:.2f} | {kc:.2f} | {sc:.2f} | {sc / kc:.2f} "
                  "| | | | |", "",
                  f"aelink = the `{names[0]}` preset. Seconds: the training part of each epoch, validation "
                  "excluded, for both; CPU s: the process's CPU time over all its threads in that part "
                  "(on a shared machine the steadier figure).", ""]
    else:
        lines += [f"Keras skipped: {result['keras_skipped']}", ""]
    lines += ["| preset | epochs | s/epoch (mean) | each epoch, s | last val loss | last PSNR dB |"
              + (" s/epoch / Keras's |" if keras else ""),
              "| --- | ---: | ---: | --- | ---: | ---: |" + (" ---: |" if keras else "")]
    keras_mean = sum(r["seconds"] for r in keras) / len(keras) if keras else None
    for name, rows in result["presets"].items():
        mean = sum(r["seconds"] for r in rows) / len(rows)
        psnr = rows[-1].get("val_psnr", rows[-1]["val_psnr_of_mean_mse"])
        each = ", ".join(f"{r['seconds']:.2f}" for r in rows)
        line = (f"| {name} | {len(rows)} | {mean:.2f} | {each} | "
                f"{rows[-1]['val_loss']:.4f} | {psnr:.2f} |")
        lines.append(line + (f" {mean / keras_mean:.2f} |" if keras_mean else ""))
    return "\n".join(lines)
