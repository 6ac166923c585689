# Loads the handout's pytest plugin: the --data-dir option, the MNIST fixtures and the markers.
pytest_plugins = ["mnistkit.pytest_plugin"]
