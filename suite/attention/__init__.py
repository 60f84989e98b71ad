"""Area `attention`: differential tests against reference/attention."""
