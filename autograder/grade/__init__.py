"""The grader's verb: grade one submission zip or a folder of them."""
from .grade import UsageError, grade_path

__all__ = ["UsageError", "grade_path"]
