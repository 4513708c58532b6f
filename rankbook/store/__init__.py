"""Where results, caches and outputs live, and how they are written (atomically)."""
