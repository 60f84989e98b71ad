"""Area `module`: differential tests against reference/module."""
