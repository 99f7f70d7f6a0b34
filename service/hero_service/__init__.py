"""HERO reward service: rule verifier + reward model fused into the HERO hybrid reward."""

import logging as _logging

__version__ = "0.1.0"

# latex2sympy2_extended warns on every parse that `equations=True` is deprecated; our
# verifier config sets it on purpose. Set here because the verifier workers are spawned
# processes whose first import is this package; nothing else is configured at import.
_logging.getLogger("latex2sympy2_extended.math_normalization").setLevel(_logging.ERROR)
