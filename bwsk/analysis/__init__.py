from bwsk.analysis.engine import analyze, inverse
from bwsk.analysis.result import Analysis, BlockVerdict, NodeVerdict, Witness

__all__ = ["Analysis", "BlockVerdict", "NodeVerdict", "Witness", "analyze", "inverse"]
