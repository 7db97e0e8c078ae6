"""The codec both halves need: config, layers, the encoder and decoder halves, weights files, wire, coding."""
