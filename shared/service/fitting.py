"""MNIST-form fitting (numpy and Pillow only): any grayscale digit image -> the 28x28 form MNIST was made in.

MNIST's recipe: light ink on a dark ground, the digit's bounding box scaled (aspect kept, anti-aliased)
to fit a 20x20 box, placed in 28x28 with its centre of mass at the centre. Photographs and scans add
what MNIST never had, so the ink is found relative to the ground: the ground is a smooth surface fitted
to the border (paper, shaded or not), the ink whatever stands out from it by a share of the contrast,
and small specks are left out of the box.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

SIDE, BOX = 28, 20
CENTRE = 14.0  # MNIST's centres of mass sit at pixel index 14.0 (measured: mean 13.99, 14.01 on the test set)
WORK_SIDE = 384  # larger images are reduced to this side first: ample for a 20-pixel box, and bounded work
INK = 0.35  # a pixel is ink where it stands out from the ground by this share of the contrast
FLOOR = 0.05  # below this share of the contrast (or 3 noise sigmas) a pixel is ground: paper texture
SPECK = 0.05  # components holding less than this share of the largest one's ink are specks
MIN_CONTRAST = 8 / 255  # on a 0..1 scale: fainter than this is a blank image
TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
             5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
             8: Image.Transpose.ROTATE_90}  # EXIF orientation -> the transpose that undoes it


class FitError(ValueError):
    """No digit to fit (blank or too faint); the message says why."""


def border(a: np.ndarray) -> np.ndarray:
    """The pixels of the outer ring (4% of the shorter side, at least one pixel)."""
    k = max(1, round(min(a.shape) * 0.04))
    return np.concatenate([a[:k].ravel(), a[-k:].ravel(), a[k:-k, :k].ravel(), a[k:-k, -k:].ravel()])


def components(mask: np.ndarray) -> np.ndarray:
    """8-connected components of a boolean mask, labelled 1.. (0: not in the mask).

    Run-based union-find: the Python loops go over runs of ink, a few per row, not over pixels.
    """
    parent = [0]

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    labels = np.zeros(mask.shape, np.int32)
    edges = np.diff(np.pad(mask.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    prev: list[tuple[int, int, int]] = []
    for y in range(mask.shape[0]):
        starts, ends = np.flatnonzero(edges[y] == 1), np.flatnonzero(edges[y] == -1)
        cur, j = [], 0
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            while j < len(prev) and prev[j][1] < s:  # ends before column s-1: cannot touch (8-connected)
                j += 1
            label, k = 0, j
            while k < len(prev) and prev[k][0] <= e:  # starts at or before column e: touches
                root = find(prev[k][2])
                if label and root != label:
                    parent[max(root, label)] = min(root, label)
                label = min(root, label) if label else root
                k += 1
            if not label:
                label = len(parent)
                parent.append(label)
            labels[y, s:e] = label
            cur.append((s, e, label))
        prev = cur
    roots = np.array([find(i) for i in range(len(parent))], np.int32)
    return roots[labels]


def to_work_size(img: Image.Image) -> Image.Image:
    """Reduce a large image (area-averaged) so its longer side is WORK_SIDE; smaller ones stay."""
    w, h = img.size
    if max(w, h) <= WORK_SIDE:
        return img
    s = WORK_SIDE / max(w, h)
    return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BOX)


def ground_surface(a: np.ndarray) -> np.ndarray:
    """The paper's level at every pixel: a quadratic surface fitted to the border, so that light falling
    off across a photographed page is not taken for ink. Border pixels far off the fit (ink touching
    the edge) are dropped and the fit repeated."""
    h, w = a.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = 2 * yy / max(h - 1, 1) - 1, 2 * xx / max(w - 1, 1) - 1
    terms = np.stack([np.ones_like(xx), xx, yy, xx * xx, yy * yy, xx * yy], axis=-1)
    ring = np.zeros((h, w), bool)
    k = max(1, round(min(h, w) * 0.04))
    ring[:k], ring[-k:], ring[:, :k], ring[:, -k:] = True, True, True, True
    design, values = terms[ring], a[ring]
    keep = np.ones(len(values), bool)
    for _ in range(3):
        kept = design[keep].astype(np.float64)  # normal equations: a 6x6 solve, cheaper than lstsq here
        coef = np.linalg.solve(kept.T @ kept + 1e-9 * np.eye(6), kept.T @ values[keep])
        resid = values - design @ coef
        spread = 1.4826 * float(np.median(np.abs(resid[keep]))) + 1e-3
        keep = np.abs(resid) < 3 * spread
    return (terms @ coef.astype(np.float32)).astype(np.float32)


def fit_digit(gray: np.ndarray) -> np.ndarray:
    """A grayscale image (H,W) in 0..1, either polarity -> float32 (28,28) in [0,1], MNIST form."""
    a = np.asarray(gray, np.float32)
    # A 3x3 median first: lone pixels of noise neither decide the polarity nor set the contrast.
    smooth = np.asarray(Image.fromarray(a, "F").filter(ImageFilter.MedianFilter(3)))
    ground = ground_surface(a)
    d, smooth = a - ground, smooth - ground
    if -smooth.min() > smooth.max():  # the ink lies below the ground: dark ink on light paper
        d, smooth = -d, -smooth
    contrast = float(smooth.max())
    ring = border(d)
    noise = 1.4826 * float(np.median(np.abs(ring - np.median(ring))))
    if contrast < max(MIN_CONTRAST, 6 * noise):
        raise FitError(f"no digit found: the ink stands out from the ground by only {contrast * 255:.0f} of 255"
                       f" levels (noise {noise * 255:.1f})")
    labels = components(smooth > INK * contrast)
    mass = np.bincount(labels.ravel(), weights=np.clip(d, 0, None).ravel())
    mass[0] = 0
    kept = np.isin(labels, np.flatnonzero(mass >= SPECK * mass.max()))
    ys, xs = np.nonzero(kept)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    floor = max(3 * noise, FLOOR * contrast)
    ink = np.clip((d - floor) / (contrast - floor), 0, 1)
    # Only ink near the kept components counts: specks are gone from the picture as from the box.
    near = np.asarray(Image.fromarray(kept.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(5))) > 0
    ink = (ink * near).astype(np.float32)
    # One resample straight into 28x28: the box's longer side becomes 20 pixels and the centre of mass lands
    # on pixel 14 exactly (MNIST shifted by whole pixels; sub-pixel keeps nearby inputs giving nearby
    # outputs). Shrinking by 2 or more, pixels are area-averaged (the anti-aliasing MNIST's grey levels
    # come from); otherwise interpolated, since a box filter turns into nearest-neighbour near scale 1.
    scale = BOX / max(y1 - y0, x1 - x0)
    total = ink.sum()
    cy = float((ink.sum(1) * np.arange(ink.shape[0])).sum() / total) + 0.5  # continuous coordinates
    cx = float((ink.sum(0) * np.arange(ink.shape[1])).sum() / total) + 0.5
    span = SIDE / scale
    top, left = cy - (CENTRE + 0.5) / scale, cx - (CENTRE + 0.5) / scale
    pad = int(np.ceil(span)) + 1  # Pillow's resize box must lie inside the image
    padded = Image.fromarray(np.pad(ink, pad), "F")
    resample = Image.Resampling.BOX if scale <= 0.5 else Image.Resampling.BILINEAR
    out = padded.resize((SIDE, SIDE), resample,
                        box=(left + pad, top + pad, left + pad + span, top + pad + span))
    out = np.clip(np.asarray(out, np.float32), 0, None)
    return out / out.max()
