"""aelink shared package: models, data, training, evaluation, weight halves and the wire schema.

Both services import this package; the encoder half (`shared.encoder`) and the decoder half
(`shared.decoder`) are separate modules so that neither service ever imports the other's code.
"""

__version__ = "0.1.0"
