"""Gradescope: the autograder zip an instructor uploads, and what runs inside Gradescope's container."""
from .package import build_gradescope_zip
from .run import run_gradescope

__all__ = ["build_gradescope_zip", "run_gradescope"]
