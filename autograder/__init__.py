"""mnist-kit's autograder: release handouts (``assign``), grade submissions (``grade``), run tests (``run``)."""
__version__ = "0.1.0"
