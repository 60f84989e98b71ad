"""The executable spec of attention (area ``attention``): masks, F.scaled_dot_product_attention,
nn.MultiheadAttention and the Transformer layers, in numpy float64.  Importing this package
registers every ``attention.*`` rule.

Independent of the functions under test: no F.softmax, no SDPA, no MHA, no LayerNorm from
torch.  Inputs (and module parameters, which are inputs of the computation) are handed in by
the tests (suite/attention/cases.py draws them).
"""
from reference.attention import causal, layers, masks, mha, numerics, sdpa, tolerances  # noqa: F401
