"""The differential tests: one package per area, mirroring reference/."""
