"""What runs inside the student's process during grading (the pytest report plugin)."""
