"""bwsk: prove where a model preserves (S) or erases (K) information.

Heavy parts (torch, transformers) load lazily, so analysing an ONNX file never imports torch.
"""

from __future__ import annotations

import importlib

from bwsk.errors import (
    BwskError,
    DataError,
    PlanError,
    ProofLimitError,
    TermError,
    TermSyntaxError,
    TrainingError,
    UnsupportedModelError,
)

try:
    from bwsk._version import __version__
except ImportError:  # running from a source tree that was never built
    __version__ = "0+unknown"

# public name -> module that defines it (imported on first use)
_LAZY = {
    "Term": "bwsk.term",
    "abstract": "bwsk.term",
    "parse": "bwsk.lang",
    "evaluate": "bwsk.evaluate",
    "term_of": "bwsk.frontends.torch",
    "analyze": "bwsk.analysis",
    "inverse": "bwsk.analysis",
}

__all__ = [
    "BwskError",
    "DataError",
    "PlanError",
    "ProofLimitError",
    "TermError",
    "TermSyntaxError",
    "TrainingError",
    "UnsupportedModelError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bwsk' has no attribute {name!r}")
