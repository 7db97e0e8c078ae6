import sys

from services.decoder.main import main

sys.exit(main())
