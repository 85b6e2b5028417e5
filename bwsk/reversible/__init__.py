"""Reversible training: coupling stacks that recompute instead of store, model conversion
licensed by the proof engine, and function-preserving recomputation under a memory budget.

Needs torch and the compiled ``bwsk._rev`` operators.
"""

from bwsk.reversible.convert import Conversion, convert
from bwsk.reversible.ops import FRAC_BITS
from bwsk.reversible.recompute import RecomputePlan, plan_recompute
from bwsk.reversible.sequential import RevSequential

__all__ = ["FRAC_BITS", "Conversion", "RecomputePlan", "RevSequential", "convert",
           "plan_recompute"]
