"""The drawing page: a static app (aelink/web/static) and the small server that hands it out."""
