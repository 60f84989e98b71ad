"""The executable spec of torch.nn.Module (area ``module``): importing this package
registers every ``module.*`` rule."""
from reference.module import compiled, containers, convert, hooks, registration, state, traversal, tree  # noqa: F401
