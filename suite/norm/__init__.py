"""Area `norm`: differential tests against reference/norm."""
