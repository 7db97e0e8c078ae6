"""`python -m services.decoder`: run the decoder service with uvicorn (flags override the environment)."""

import sys

from services.decoder.main import main

sys.exit(main())
