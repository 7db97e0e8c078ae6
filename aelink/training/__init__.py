"""Making models: the joined autoencoder, the rd models' learned prior, the training loop, export to halves."""
