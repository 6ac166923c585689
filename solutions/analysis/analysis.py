"""Assignment: analysing an MLP on MNIST (activation, learning rate, depth, width, schedules).

Write the four parts marked ``TODO`` (each is a ``# TODO:`` comment that says what to write, above a
``raise NotImplementedError`` that your code replaces). Everything else in the handout is ready to run:
``train.py`` trains one configuration, ``sweep.py`` runs the required grid of ``grid.toml``, ``plots.py``
draws the figures, and ``report.md`` holds the questions you answer.

Contract (the tests, the training scripts and the grader rely on it; do not rename anything):

* ``ACTIVATIONS = ("relu", "tanh", "sigmoid", "leakyrelu")`` and ``INITS = ("default", "normal", "xavier",
  "he")``: the accepted names, lower case, exactly as written here.
* ``make_activation(name)``: a fresh activation module for ``name``: ``nn.ReLU()``, ``nn.Tanh()``,
  ``nn.Sigmoid()`` or ``nn.LeakyReLU(negative_slope=0.01)``; ``ValueError`` naming the accepted names for
  anything else.
* ``expected_parameters(depth, width, batchnorm=False)``: the number of trainable parameters of
  ``build_mlp(depth, width, ..., batchnorm=batchnorm)``, computed by formula (not by building the net).
* ``init_weights(model, init)``: re-initialise every ``nn.Linear`` of ``model`` in place.
* ``build_mlp(depth, width, activation, batchnorm=False, dropout=0.0, init="default")``: an
  ``nn.Sequential`` mapping images ``(N, 1, 28, 28)`` or flat ``(N, 784)`` to log-probabilities ``(N, 10)``.
  Its modules, in this order::

      nn.Flatten()
      depth times:  nn.Linear(in, width)  [nn.BatchNorm1d(width)]  activation  [nn.Dropout(dropout)]
      nn.Linear(width, 10)
      nn.LogSoftmax(dim=1)

  where ``in`` is 784 for the first hidden layer and ``width`` after it, the BatchNorm is there only when
  ``batchnorm`` is true (between the linear layer and its activation; never after the output layer) and
  the Dropout only when ``dropout > 0`` (after the activation; never after the output layer).

How it is checked: the tests never import this file themselves. A probe runs it (what it computes is
listed in ``tests/plan.py``): it builds your networks after ``torch.manual_seed`` and exports them with
``torch.export``, so ``forward`` must be plain tensor code (the ``nn.Sequential`` above is), and the tests
judge the exported operations, weights and outputs, and re-train the exported networks. Keep
``from torch import nn`` below: one check builds a small model with this file's ``nn`` to call
``init_weights`` on.
"""
from torch import nn

ACTIVATIONS = ("relu", "tanh", "sigmoid", "leakyrelu")
INITS = ("default", "normal", "xavier", "he")
IN_FEATURES = 28 * 28
NUM_CLASSES = 10
NORMAL_STD = 0.02


def make_activation(name):
    """Return a new activation module for ``name``.

    Args:
        name: one of ``ACTIVATIONS``: ``"relu"`` -> ``nn.ReLU()``, ``"tanh"`` -> ``nn.Tanh()``,
            ``"sigmoid"`` -> ``nn.Sigmoid()``, ``"leakyrelu"`` -> ``nn.LeakyReLU(negative_slope=0.01)``.

    Returns:
        A new ``nn.Module`` (never the same object twice: every hidden layer gets its own).

    Raises:
        ValueError: ``name`` is not one of ``ACTIVATIONS``; the message lists the accepted names.
    """
    ### BEGIN SOLUTION
    ### HINT: return a new module for each name, as listed under Args; raise the ValueError of
    ### HINT: Raises for any other name.
    if name == "relu":
        return nn.ReLU()
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.01)
    raise ValueError(f"unknown activation {name!r}; use one of {ACTIVATIONS}")
    ### END SOLUTION


def expected_parameters(depth, width, batchnorm=False):
    """Number of trainable parameters of ``build_mlp(depth, width, ..., batchnorm=batchnorm)``, by formula.

    Every ``nn.Linear(a, b)`` has ``a * b`` weights and ``b`` biases; every ``nn.BatchNorm1d(width)`` has
    ``width`` scales and ``width`` shifts (its running mean and variance are buffers, not parameters);
    activations, dropout, flatten and log-softmax have none. Example: ``expected_parameters(2, 50)`` is
    42,310 (784 -> 50 -> 50 -> 10).

    Args:
        depth: number of hidden layers (>= 1), all ``width`` units wide.
        width: units per hidden layer (>= 1).
        batchnorm: whether every hidden layer has a ``BatchNorm1d``.

    Returns:
        An ``int``.
    """
    ### BEGIN SOLUTION
    ### HINT: add up the parameters of every layer of build_mlp's network by the rules above,
    ### HINT: as a formula of depth and width (do not build the network).
    total = (IN_FEATURES + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * NUM_CLASSES
    if batchnorm:
        total += 2 * width * depth
    return total
    ### END SOLUTION


def init_weights(model, init):
    """Re-initialise, in place, the weight and bias of every ``nn.Linear`` inside ``model``.

    Schemes (``fan_in`` and ``fan_out`` are a layer's input and output sizes):

    * ``"default"``: leave PyTorch's own initialisation untouched (do nothing).
    * ``"normal"``: weights drawn from a normal distribution with mean 0 and standard deviation 0.02
      (``NORMAL_STD``), whatever the layer's size; biases 0.
    * ``"xavier"``: Xavier/Glorot uniform, weights uniform in ``[-a, a]`` with ``a = sqrt(6 / (fan_in +
      fan_out))`` (``nn.init.xavier_uniform_``); biases 0.
    * ``"he"``: He/Kaiming normal for ReLU, weights normal with mean 0 and standard deviation
      ``sqrt(2 / fan_in)`` (``nn.init.kaiming_normal_(w, nonlinearity="relu")``); biases 0.

    Other layers (``BatchNorm1d`` and the rest) keep their own initialisation. Draws use torch's global
    random generator, so ``torch.manual_seed`` makes them reproducible.

    Args:
        model: any ``nn.Module``; its ``nn.Linear`` submodules are found with ``model.modules()``.
        init: one of ``INITS``.

    Returns:
        ``model`` (the same object).

    Raises:
        ValueError: ``init`` is not one of ``INITS``; the message lists the accepted names.
    """
    ### BEGIN SOLUTION
    ### HINT: check init (Raises). Unless it is "default", re-fill the weight of every nn.Linear
    ### HINT: of model.modules() by the scheme above (nn.init has a function for each) and set its
    ### HINT: bias to 0. Return model.
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; use one of {INITS}")
    if init == "default":
        return model
    for module in model.modules():
        if isinstance(module, nn.Linear):
            if init == "normal":
                nn.init.normal_(module.weight, mean=0.0, std=NORMAL_STD)
            elif init == "xavier":
                nn.init.xavier_uniform_(module.weight)
            else:
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model
    ### END SOLUTION


def build_mlp(depth, width, activation, batchnorm=False, dropout=0.0, init="default"):
    """Build the MLP described in the module docstring.

    Args:
        depth: number of hidden layers, ``>= 1``.
        width: units in every hidden layer, ``>= 1``.
        activation: one of ``ACTIVATIONS`` (see :func:`make_activation`).
        batchnorm: put ``nn.BatchNorm1d(width)`` between each hidden ``nn.Linear`` and its activation.
        dropout: probability of ``nn.Dropout`` after each hidden activation; ``0.0`` means no Dropout module
            at all. Must satisfy ``0 <= dropout < 1``.
        init: weight initialisation, one of ``INITS`` (see :func:`init_weights`), applied after the layers
            are created.

    Returns:
        ``nn.Sequential`` with, in order: ``nn.Flatten()``; per hidden layer ``nn.Linear``, optional
        ``nn.BatchNorm1d``, the activation, optional ``nn.Dropout``; then ``nn.Linear(width, 10)`` and
        ``nn.LogSoftmax(dim=1)``. Input ``(N, 1, 28, 28)`` or ``(N, 784)`` float32, output ``(N, 10)``
        log-probabilities. It has ``expected_parameters(depth, width, batchnorm)`` parameters.

    Raises:
        ValueError: ``depth < 1``, ``width < 1``, ``dropout`` outside ``[0, 1)``, or an unknown
            ``activation`` or ``init``.
    """
    ### BEGIN SOLUTION
    ### HINT: check the arguments (Raises), collect the modules of the module docstring in order,
    ### HINT: with a new activation per hidden layer (make_activation), wrap them in an
    ### HINT: nn.Sequential and initialise it with init_weights.
    if depth < 1 or width < 1:
        raise ValueError(f"depth and width must be >= 1, got depth={depth}, width={width}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; use one of {INITS}")
    layers = [nn.Flatten()]
    fan_in = IN_FEATURES
    for _ in range(depth):
        layers.append(nn.Linear(fan_in, width))
        if batchnorm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(make_activation(activation))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        fan_in = width
    layers.append(nn.Linear(width, NUM_CLASSES))
    layers.append(nn.LogSoftmax(dim=1))
    return init_weights(nn.Sequential(*layers), init)
    ### END SOLUTION
