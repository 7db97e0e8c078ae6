"""What the two services share: `shared.codec` (the model halves and the wire schema) and `shared.service`.

Which package may import which (tests/test_layout.py holds this table and checks it):

- `shared.codec`: imports nothing of the project's above it; its encoder and decoder modules never
  import each other.
- `shared.service`: `shared.codec`, but never its encoder or decoder module (each service passes in its own).
- `services.encoder` / `services.decoder`: `shared.codec` and `shared.service` only, never the other half.
- `aelink` (the command line, training, evaluation, benchmarks, the HTTP client): anything in `shared`;
  nothing in `shared` or `services` imports it, so neither service image needs it.
"""

__version__ = "0.1.0"
