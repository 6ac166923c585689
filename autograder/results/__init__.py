"""Graded results, shared by every verb that reads or writes them: results.json and feedback.md, the grader's
signature, the class summary, and the scores a teacher merged in by hand."""
