"""The instructor's verb: turn reference solutions into verified handout zips."""
from .release import release_assignment
from .strip import MarkerError, strip_solutions
from .verify import LeakError, verify_handout

__all__ = ["LeakError", "MarkerError", "release_assignment", "strip_solutions", "verify_handout"]
