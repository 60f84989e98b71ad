"""``python -m torchconform`` is the ``torchconform`` command."""
import sys

from torchconform.cli import main

sys.exit(main())
