"""The receiver: holds only the decoder half; codes in, images out. Never imports shared.codec.encoder."""
