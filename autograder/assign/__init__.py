"""The instructor's verb: turn reference solutions into verified handout zips, notebooks and an nbgrader course."""
from .notebook import write_nbgrader_course
from .release import release_assignment, release_notebook
from .strip import MarkerError, strip_solutions
from .verify import LeakError, verify_handout, verify_notebook

__all__ = ["LeakError", "MarkerError", "release_assignment", "release_notebook", "strip_solutions",
           "verify_handout", "verify_notebook", "write_nbgrader_course"]
