"""The executable spec of torch.nn.parallel (area ``parallel``): scatter, scatter_kwargs, gather, replicate,
parallel_apply, DataParallel.  Plain Python over the plain trees of ``suite/parallel/cases.py`` (read by
position: duck typing, no import of the test side); math in numpy float64.  Nothing here calls torch.
Importing this package registers every ``parallel.*`` rule."""
from reference.parallel import (data_parallel, gather, parallel_apply, replicate, scatter,  # noqa: F401
                                scatter_kwargs, tolerances)
