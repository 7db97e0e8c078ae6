"""The two web services: `services.encoder` (the sender) and `services.decoder` (the receiver)."""
