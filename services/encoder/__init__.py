"""The sender: holds only the encoder half; images in, codes out. Never imports shared.codec.decoder."""
