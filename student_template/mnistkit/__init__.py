"""Support code shipped in every mnist-kit handout: MNIST loading, fast training, test helpers, submit."""
__version__ = "0.1.0"
