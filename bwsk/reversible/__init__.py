"""Reversible training: coupling stacks that recompute instead of store, and model conversion.

Needs torch and the compiled ``bwsk._rev`` operators.
"""

from bwsk.reversible.ops import FRAC_BITS
from bwsk.reversible.convert import Conversion, convert
from bwsk.reversible.sequential import RevSequential

__all__ = ["FRAC_BITS", "Conversion", "RevSequential", "convert"]
