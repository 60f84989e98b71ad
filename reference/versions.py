"""Which release's documented contract the reference models.

Sometimes the *documented* behaviour changed between releases (a new argument, a
changed error message, a deliberate change of semantics).  That is not a
divergence: the reference models each version, behind ``since(...)``, citing that
release's docstring, release note or pull request next to the condition.

The release is read from the installed torch's own version string: the one fact the
reference takes from the build under test.  Local tags (``+cpu``, ``+cu124``) and
pre-releases count as the release they lead to (a nightly ``2.16.0a0`` models 2.16).
"""
from __future__ import annotations

import functools

from packaging.version import Version


@functools.cache
def torch_release() -> Version:
    import torch  # only for torch.__version__

    return Version(Version(torch.__version__.split("+")[0]).base_version)


def since(release: str) -> bool:
    """True when the installed torch is ``release`` or newer (``since("2.6")``)."""
    return torch_release() >= Version(release)
