"""`python -m services.encoder`: run the encoder service with uvicorn (flags override the environment)."""

import sys

from services.encoder.main import main

sys.exit(main())
