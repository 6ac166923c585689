"""The grader's verb: grade one submission zip or a folder of them."""
from .grade import STEPS, UsageError, grade_path, grade_submission, prepare

__all__ = ["STEPS", "UsageError", "grade_path", "grade_submission", "prepare"]
