"""The judge: a small digit classifier that tells whether a codec keeps a digit's identity."""
