"""Performance records of the torch build under test (pytest-benchmark); run with ``torchconform bench``."""
