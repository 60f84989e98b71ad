"""Area `data`: differential tests against reference/data."""
