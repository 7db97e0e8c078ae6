"""What the judge measures: accuracy, agreement with the originals' classes, and a vae's samples."""

from __future__ import annotations

import torch

# Issue 11's targets. A codec may cost the judge at most 1.5 points of accuracy against the originals;
# from rd16's operating point up (24 dB mean per-image PSNR, its target) at most 0.5.
MAX_DROP, MAX_DROP_SHARP, SHARP_DB = 1.5, 0.5, 24.0
# A vae's samples: >= 90% judged with confidence >= 0.9, and every class 5% to 15% of them.
CONFIDENCE, CONFIDENT_SHARE, CLASS_SHARE = 0.9, 90.0, (5.0, 15.0)
SAMPLES, SAMPLE_SEED = 1000, 0


def accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    """Percent of predictions equal to the labels."""
    return (pred == labels.long()).float().mean().item() * 100


def agreement(pred: torch.Tensor, original_pred: torch.Tensor) -> float:
    """Percent of reconstructions given the class the judge gives their original."""
    return (pred == original_pred).float().mean().item() * 100


def allowed_drop(psnr: float) -> float:
    return MAX_DROP_SHARP if psnr >= SHARP_DB else MAX_DROP


def identity(judge, recon: torch.Tensor, labels: torch.Tensor, original_pred: torch.Tensor,
             original_accuracy: float, psnr: float) -> dict:
    """The judge on reconstructions: accuracy, agreement, the drop from the originals and its target."""
    pred = judge.predict(recon)
    acc = accuracy(pred, labels)
    drop, allowed = original_accuracy - acc, allowed_drop(psnr)
    return {"accuracy": acc, "agreement": agreement(pred, original_pred), "accuracy_drop": drop,
            "allowed_drop": allowed, "meets_target": drop <= allowed}


def judge_samples(probabilities: torch.Tensor) -> dict:
    """Class probabilities (N,10) of drawn digits -> the share judged confidently and each class's share."""
    confidence, cls = probabilities.max(1)
    shares = (torch.bincount(cls, minlength=probabilities.shape[1]).float() / len(cls) * 100).tolist()
    confident = (confidence >= CONFIDENCE).float().mean().item() * 100
    lo, hi = CLASS_SHARE
    return {"samples": len(cls), "confident_share": confident, "class_shares": shares,
            "meets_target": confident >= CONFIDENT_SHARE and all(lo <= s <= hi for s in shares)}


class Judge:
    """The classifier with the test set's labels and its verdicts on the originals, computed once."""

    def __init__(self, classifier, originals: torch.Tensor, labels: torch.Tensor, info: dict | None = None) -> None:
        self.classifier, self.labels, self.info = classifier, labels.long(), info or {}
        probabilities = classifier.probabilities(originals)
        self.original_pred = probabilities.argmax(1)
        self.original_accuracy = accuracy(self.original_pred, self.labels)
        # how sure it is of real digits: the ceiling of what a vae's drawn digits can score
        self.original_confident = (probabilities.max(1).values >= CONFIDENCE).float().mean().item() * 100

    def identity(self, recon: torch.Tensor, psnr: float) -> dict:
        """Reconstructions of the originals (same order) -> accuracy, agreement, drop and target."""
        return identity(self.classifier, recon, self.labels, self.original_pred, self.original_accuracy, psnr)

    def samples(self, images: torch.Tensor) -> dict:
        return judge_samples(self.classifier.probabilities(images))

    def summary(self) -> dict:
        return {"original_accuracy": self.original_accuracy, "images": len(self.labels),
                "original_confident_share": self.original_confident,
                "recorded_test_accuracy": self.info.get("test_accuracy")}


def load_judge(path, originals: torch.Tensor, labels: torch.Tensor) -> Judge:
    from aelink.judge.net import load_classifier

    classifier, info = load_classifier(path)
    return Judge(classifier, originals, labels, info)
