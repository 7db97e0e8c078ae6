"""The article's convolutional autoencoder in Keras, trained with its own `fit`: the peer `aelink bench
train` times aelink against. Self-contained (numpy + tensorflow only), so it runs under any interpreter.

Prints one JSON object per line: {"event": "machine", ...}, then {"event": "epoch", ...} per epoch. With
--stepwise it waits for a line on stdin before each epoch, so that `aelink bench train` can run the two
libraries' epochs in turn and both see the same load on a shared machine.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import struct
import sys
import time
from pathlib import Path

import numpy as np


def read_idx_images(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    magic, n, rows, cols = struct.unpack(">4I", raw[:16])
    if magic != 0x803:
        raise SystemExit(f"{path}: not an IDX image file (magic 0x{magic:08x})")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def find(data_dir: Path, stem: str) -> Path:
    for p in (data_dir / stem, data_dir / f"{stem}.gz"):
        if p.is_file():
            return p
    raise SystemExit(f"{data_dir / stem}[.gz]: missing")


def preprocess(images) -> np.ndarray:
    """As the article: float32 in [0, 1], shape (N, 28, 28, 1)."""
    return (images.astype("float32") / 255.0).reshape(len(images), 28, 28, 1).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("AELINK_DATA_DIR", "data/mnist")))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--train-subset", type=int)
    ap.add_argument("--test-subset", type=int)
    ap.add_argument("--threads", type=int, help="intra-op threads (default: TensorFlow's choice)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stepwise", action="store_true", help="wait for a line on stdin before each epoch")
    args = ap.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf
    from keras import layers

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(args.seed)
    train = preprocess(read_idx_images(find(args.data_dir, "train-images-idx3-ubyte"))[: args.train_subset])
    test = preprocess(read_idx_images(find(args.data_dir, "t10k-images-idx3-ubyte"))[: args.test_subset])
    emit({"event": "machine", "tensorflow": tf.__version__, "keras": keras.__version__,
          "numpy": np.__version__, "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
          "threads": args.threads or "default", "train_images": len(train), "test_images": len(test)})

    # The article's model, layer for layer.
    inputs = layers.Input(shape=(28, 28, 1))
    x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(inputs)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(x)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x)
    autoencoder = keras.Model(inputs, x)
    autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
    autoencoder.fit(x=train, y=train, epochs=args.epochs, batch_size=args.batch_size, shuffle=True,
                    validation_data=(test, test), verbose=0, callbacks=[epoch_timer(test, args.stepwise)])
    return 0


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def epoch_timer(test, stepwise: bool):
    """A callback: train seconds (epoch start to validation start) and validation seconds, as aelink's
    history separates them; PSNR of the mean test MSE from a predict outside both timings."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if stepwise and not sys.stdin.readline():
                raise SystemExit(0)  # the parent has gone
            self.start, self.val_start = time.perf_counter(), None
            self.cpu = time.process_time()

        def on_test_begin(self, logs=None):
            self.val_start = time.perf_counter()
            self.cpu = time.process_time() - self.cpu

        def on_epoch_end(self, epoch, logs=None):
            end = time.perf_counter()
            val_start = self.val_start or end
            pred = self.model.predict(test, batch_size=1000, verbose=0)
            mse = float(np.mean((pred.astype(np.float64) - test) ** 2))
            emit({"event": "epoch", "epoch": epoch + 1, "seconds": val_start - self.start,
                  "cpu_seconds": self.cpu,
                  "val_seconds": end - val_start, "train_loss": float(logs["loss"]),
                  "val_loss": float(logs["val_loss"]), "val_mse": mse,
                  "val_psnr": float(10 * np.log10(1.0 / mse))})

    return EpochTimer()


if __name__ == "__main__":
    sys.exit(main())
