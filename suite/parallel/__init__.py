"""Area `parallel`: differential tests against reference/parallel."""
