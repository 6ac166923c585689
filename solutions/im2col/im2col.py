"""Assignment: a convolution layer in numpy, built on im2col.

A convolution slides a small filter over an image and takes a weighted sum at every position. Written
with loops that is slow; ``im2col`` instead copies every window of the input into one row of a 2-D
matrix, so that the whole convolution becomes a single matrix product. ``col2im`` is the way back: it
adds every entry of such a matrix to the input pixel it was copied from, which is what the backward pass
needs.

Write the parts marked ``TODO`` (each is a ``# TODO:`` comment that says what to write, above a ``raise
NotImplementedError`` that your code replaces): ``output_size`` (a helper the others use), ``im2col``,
``col2im``, ``Convolution.forward`` and ``Convolution.backward``; ``Pooling`` is a bonus with its own
points. The docstrings are the specification.

Contract (the tests and the grader rely on it; do not rename anything):

* numpy only. This file may import ``numpy`` (and ``math``, ``typing``, ``functools``, ``itertools``,
  ``collections``, ``dataclasses``, ``numbers``, ``__future__``) and nothing else: no torch, no scipy, no
  ``sys`` or ``importlib``, no ``__import__``, ``eval``, ``exec`` or ``getattr`` (the full rules are at the
  top of ``tests/im2col_contract.py``; the tests read this file to check them). Every function returns
  numpy arrays.
* No Python loop over the images of the batch or over the output pixels, also read from this file: in
  every function, a loop may only run over the filter window, ``for y in range(e)`` where ``e`` is built
  from the window sizes (``filter_h``, ``filter_w``, ``FH``, ``FW``, ``pool_h``, ``pool_w``,
  ``self.pool_h``, ``self.pool_w``), integer constants and names assigned from those only (after
  ``FN, C, FH, FW = self.W.shape``, ``FH`` and ``FW`` are window sizes), or ``itertools.product`` /
  ``zip`` of such ranges, or a tuple written out in the code. Any other ``for`` or comprehension, any
  ``while``, ``map``/``filter`` over anything else, ``np.vectorize``, ``np.apply_along_axis``,
  ``np.frompyfunc`` or recursion is reported with its function and line. Loops over the filter window
  (``filter_h * filter_w`` steps), as in the course, are fine, and so is no loop at all.
* Shapes: an input ``x`` has shape ``(N, C, H, W)`` (images, channels, height, width). With a
  ``filter_h x filter_w`` window, a ``stride`` and ``pad`` zeros on every side, the output has

      out_h = (H + 2*pad - filter_h) // stride + 1
      out_w = (W + 2*pad - filter_w) // stride + 1

  and this assignment requires that the window fits exactly: ``H + 2*pad - filter_h`` must be ``>= 0`` and
  a multiple of ``stride`` (the same for the width). Anything else is a ``ValueError``.
* Worked example (course, convolution part): the 3x3 image 1..9, padded with one ring of zeros, and the
  anti-diagonal filter ``[[0, 0, 1], [0, 1, 0], [1, 0, 0]]`` (stride 1) give ``[[1, 6, 8], [6, 15, 14],
  [12, 14, 9]]``.
"""
import numpy as np


def output_size(input_shape, filter_h, filter_w, stride=1, pad=0):
    """Check that a window fits an input exactly and return the output size ``(out_h, out_w)``.

    A helper for the four parts below (it has no points of its own; the tests reach it through them).

    Args:
        input_shape: the shape of the input, a tuple ``(N, C, H, W)``.
        filter_h, filter_w: the size of the window.
        stride: the step between two windows.
        pad: the number of zero rows and columns added on every side of each image.

    Returns:
        ``(out_h, out_w)`` with ``out_h = (H + 2*pad - filter_h) // stride + 1`` (the same for ``out_w``).

    Raises:
        ValueError: if ``input_shape`` does not have 4 entries, if the window is larger than the padded
            input, or if ``H + 2*pad - filter_h`` (or ``W + 2*pad - filter_w``) is not a multiple of
            ``stride``. The message names the input shape written as a tuple, e.g. ``(2, 3, 5, 5)``, and
            the window, stride and pad.
    """
    ### BEGIN SOLUTION
    ### HINT: raise the ValueErrors listed under Raises (the message names the input shape as a
    ### HINT: tuple, the window, the stride and the pad), then return (out_h, out_w) by the formula.
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        raise ValueError(f"expected an input of shape (N, C, H, W), got shape {input_shape}")
    H, W = input_shape[2], input_shape[3]
    window = f"a {filter_h}x{filter_w} window with stride {stride} and pad {pad}"
    for size, name, filter_size in ((H, "H", filter_h), (W, "W", filter_w)):
        room = size + 2 * pad - filter_size
        if room < 0:
            raise ValueError(f"{window} is larger than the input of shape {input_shape} after padding "
                             f"({name} + 2*pad = {size + 2 * pad})")
        if room % stride != 0:
            raise ValueError(f"{window} does not fit the input of shape {input_shape} exactly: "
                             f"{name} + 2*pad - {filter_size} = {room} is not a multiple of the stride {stride}")
    return (H + 2 * pad - filter_h) // stride + 1, (W + 2 * pad - filter_w) // stride + 1
    ### END SOLUTION


def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    """Copy every window of a batch of images into the rows of one 2-D matrix.

    Args:
        input_data: array of shape ``(N, C, H, W)``.
        filter_h, filter_w: the size of the window.
        stride: the step between two windows, in pixels.
        pad: the number of zero rows and columns added on every side of each image first.

    Returns:
        col: array of shape ``(N*out_h*out_w, C*filter_h*filter_w)`` and the dtype of ``input_data``.
        Row ``(n*out_h + i)*out_w + j`` holds the window of image ``n`` whose top-left corner is at
        ``(i*stride, j*stride)`` in the padded image, flattened in ``(C, filter_h, filter_w)`` order::

            col[(n*out_h + i)*out_w + j, (c*filter_h + y)*filter_w + x] = padded[n, c, i*stride + y, j*stride + x]

        (This is ``torch.nn.functional.unfold``'s result with its last two axes swapped, reshaped to 2-D.)

    Raises:
        ValueError: as ``output_size`` (wrong number of dimensions, window larger than the padded input,
            window that does not fit exactly), naming the shapes.
    """
    ### BEGIN SOLUTION
    ### HINT: get the output size from output_size (it also checks the input), pad the images
    ### HINT: (np.pad), and fill the matrix of Returns, one window per row, in the order of its
    ### HINT: formula. A loop over the window's offsets (y, x), each copying one strided slice of
    ### HINT: the padded images, is allowed; so is np.lib.stride_tricks.sliding_window_view.
    ### HINT: Arrange the axes so that a single reshape gives the 2-D matrix.
    out_h, out_w = output_size(np.shape(input_data), filter_h, filter_w, stride, pad)
    N, C, H, W = input_data.shape
    # Channels last, then pad height and width: img has shape (N, H + 2*pad, W + 2*pad, C).
    img = np.pad(input_data.transpose(0, 2, 3, 1), [(0, 0), (pad, pad), (pad, pad), (0, 0)], mode="constant")
    # Every window at once, as a view (nothing is copied yet): windows[n, i, j] is the (C, filter_h, filter_w)
    # window whose top-left corner is pixel (i, j) of the padded image n.
    windows = np.lib.stride_tricks.sliding_window_view(img, (filter_h, filter_w), axis=(1, 2))
    windows = windows[:, ::stride, ::stride]  # keep every stride-th corner: (N, out_h, out_w, C, fh, fw)
    # One row per (image, output pixel), one column per (channel, window row, window column).
    return windows.reshape(N * out_h * out_w, C * filter_h * filter_w)
    ### END SOLUTION


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """Add the rows of an im2col matrix back onto the images they came from (the adjoint of im2col).

    Every entry of ``col`` is added to the pixel of the padded input that ``im2col`` copied it from; a
    pixel that lies in several windows receives the sum of all its entries. The padding is dropped at the
    end. So for any arrays ``x`` and ``y`` of the right shapes,
    ``np.sum(im2col(x, ...) * y) == np.sum(x * col2im(y, x.shape, ...))`` (up to rounding).

    Args:
        col: array of shape ``(N*out_h*out_w, C*filter_h*filter_w)``, laid out as ``im2col`` returns.
        input_shape: the shape ``(N, C, H, W)`` of the images, a tuple.
        filter_h, filter_w, stride, pad: the window, as given to ``im2col``.

    Returns:
        Array of shape ``(N, C, H, W)`` and the dtype of ``col``.

    Raises:
        ValueError: as ``output_size``, and if ``col`` does not have the shape
            ``(N*out_h*out_w, C*filter_h*filter_w)``; the message names ``col``'s shape and the expected one.
    """
    ### BEGIN SOLUTION
    ### HINT: check the shapes (Raises), then undo im2col's layout: start from zeros of the padded
    ### HINT: size and, for each offset (y, x) of the window, add (+=, not =) the entries of col
    ### HINT: for that offset onto the strided slice of pixels they were copied from. Pixels that
    ### HINT: lie in several windows then collect every entry. Drop the padding at the end.
    out_h, out_w = output_size(input_shape, filter_h, filter_w, stride, pad)
    N, C, H, W = input_shape
    expected = (N * out_h * out_w, C * filter_h * filter_w)
    if np.shape(col) != expected:
        raise ValueError(f"col has shape {np.shape(col)}, but a {filter_h}x{filter_w} window with stride {stride} "
                         f"and pad {pad} over an input of shape {tuple(input_shape)} needs shape {expected}")
    col = col.reshape(N, out_h, out_w, C, filter_h, filter_w)
    img = np.zeros((N, H + 2 * pad, W + 2 * pad, C), dtype=col.dtype)  # padded, channels last
    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            # Offset (y, x) of every window lands on img[:, y::stride, x::stride]; += so that pixels shared
            # by several windows collect every contribution.
            img[:, y:y_max:stride, x:x_max:stride, :] += col[:, :, :, :, y, x]
    return img[:, pad:H + pad, pad:W + pad, :].transpose(0, 3, 1, 2)  # drop the padding, channels first
    ### END SOLUTION


class Convolution:
    """A convolution layer: ``FN`` filters of shape ``(C, FH, FW)``, each with a bias.

    Like ``torch.nn.functional.conv2d`` (and the course), this is a cross-correlation: the filter is not
    flipped.
    """

    def __init__(self, W, b, stride=1, pad=0):
        """``W``: filters of shape ``(FN, C, FH, FW)``; ``b``: biases of shape ``(FN,)``."""
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        # Kept by forward() for backward().
        self.x = None
        self.col = None
        self.col_W = None
        # Set by backward(): the gradients of the loss with respect to W and b.
        self.dW = None
        self.db = None

    def forward(self, x):
        """Convolve a batch of images with every filter.

        Args:
            x: array of shape ``(N, C, H, W)``.

        Returns:
            out: array of shape ``(N, FN, out_h, out_w)`` (``out_h``, ``out_w`` as in ``output_size``
            with the filter size, ``self.stride`` and ``self.pad``) with::

                out[n, f, i, j] = b[f] + sum over c, y, x of W[f, c, y, x] * padded[n, c, i*stride + y, j*stride + x]

            computed with ``im2col`` and one matrix product. Keeps ``x``, the im2col matrix and the
            reshaped filters in ``self.x``, ``self.col``, ``self.col_W`` for ``backward``.

        Raises:
            ValueError: as ``im2col``, and if ``x`` does not have the ``C`` channels of ``W``; the message
                names the shapes of ``x`` and ``W``.
        """
        ### BEGIN SOLUTION
        ### HINT: check the shapes (Raises). Turn x into its im2col matrix and the filters into a
        ### HINT: matrix with one column per filter: one matrix product plus the bias then gives
        ### HINT: every output; bring it to (N, FN, out_h, out_w). Keep what backward needs.
        FN, C, FH, FW = self.W.shape
        out_h, out_w = output_size(np.shape(x), FH, FW, self.stride, self.pad)
        if x.shape[1] != C:
            raise ValueError(f"x of shape {x.shape} has {x.shape[1]} channels, but the filters W of shape "
                             f"{self.W.shape} expect {C}")
        N = x.shape[0]
        col = im2col(x, FH, FW, self.stride, self.pad)  # (N*out_h*out_w, C*FH*FW)
        col_W = self.W.reshape(FN, -1).T  # (C*FH*FW, FN)
        out = col @ col_W + self.b  # (N*out_h*out_w, FN)
        out = out.reshape(N, out_h, out_w, FN).transpose(0, 3, 1, 2)
        self.x = x
        self.col = col
        self.col_W = col_W
        return out
        ### END SOLUTION

    def backward(self, dout):
        """Backpropagate the gradient of the loss through the last ``forward`` call.

        Args:
            dout: the gradient with respect to the output, shape ``(N, FN, out_h, out_w)``.

        Returns:
            dx: the gradient with respect to ``x``, shape ``(N, C, H, W)`` (through ``col2im``).

        Also sets ``self.dW`` (shape ``(FN, C, FH, FW)``) and ``self.db`` (shape ``(FN,)``), the gradients
        with respect to ``W`` and ``b``.
        """
        ### BEGIN SOLUTION
        ### HINT: bring dout to the layout of forward's matrix product (one row per image and output
        ### HINT: pixel, one column per filter). The gradients of a product Y = X @ M + b give db,
        ### HINT: dW (with self.col) and the gradient of the im2col matrix (with self.col_W), which
        ### HINT: col2im turns into dx.
        FN, C, FH, FW = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, FN)  # one row per (image, output pixel)
        self.db = np.sum(dout, axis=0)
        self.dW = (self.col.T @ dout).T.reshape(FN, C, FH, FW)
        dcol = dout @ self.col_W.T  # (N*out_h*out_w, C*FH*FW)
        return col2im(dcol, self.x.shape, FH, FW, self.stride, self.pad)
        ### END SOLUTION


class Pooling:
    """Bonus: max pooling over ``pool_h x pool_w`` windows, each channel on its own (no padding)."""

    def __init__(self, pool_h=2, pool_w=2, stride=2):
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        # Kept by forward() for backward().
        self.x = None
        self.arg_max = None

    def forward(self, x):
        """Take the maximum of every window, channel by channel.

        Args:
            x: array of shape ``(N, C, H, W)``.

        Returns:
            out: array of shape ``(N, C, out_h, out_w)`` (``out_h``, ``out_w`` as in ``output_size`` with
            the pool size, ``self.stride`` and ``pad = 0``) with
            ``out[n, c, i, j] = max over y, x of x[n, c, i*stride + y, j*stride + x]``, computed with
            ``im2col``. Keeps what ``backward`` needs (``x`` and where each maximum was).

        Raises:
            ValueError: as ``im2col``.
        """
        ### BEGIN SOLUTION
        ### HINT: with im2col, make one row per window of one channel (im2col's columns run over
        ### HINT: the channels, then the window). Remember where each row's maximum is (backward
        ### HINT: needs it), take the maximum, and bring the result to (N, C, out_h, out_w).
        out_h, out_w = output_size(np.shape(x), self.pool_h, self.pool_w, self.stride, 0)
        N, C = x.shape[:2]
        col = im2col(x, self.pool_h, self.pool_w, self.stride, 0)
        col = col.reshape(-1, self.pool_h * self.pool_w)  # row (n, i, j, c): one window of one channel
        self.x = x
        self.arg_max = np.argmax(col, axis=1)
        out = np.max(col, axis=1)
        return out.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)
        ### END SOLUTION

    def backward(self, dout):
        """Send each output gradient back to the input pixel that held the maximum of its window.

        Args:
            dout: the gradient with respect to the output, shape ``(N, C, out_h, out_w)``.

        Returns:
            dx: shape ``(N, C, H, W)``; zero except at the maxima (the first one of a window if several
            are equal). A pixel that is the maximum of several overlapping windows gets the sum.
        """
        ### BEGIN SOLUTION
        ### HINT: put each gradient of dout at the place of its window's maximum in a matrix of
        ### HINT: zeros laid out as forward's rows (so dout needs the same order of its axes), then
        ### HINT: reshape it to im2col's layout and let col2im add it back onto the input.
        pool_size = self.pool_h * self.pool_w
        dout = dout.transpose(0, 2, 3, 1).ravel()  # the same (n, i, j, c) order as the rows in forward
        dmax = np.zeros((dout.size, pool_size), dtype=dout.dtype)
        dmax[np.arange(dout.size), self.arg_max] = dout
        C = self.x.shape[1]
        dcol = dmax.reshape(-1, C * pool_size)  # (N*out_h*out_w, C*pool_h*pool_w), as im2col returned
        return col2im(dcol, self.x.shape, self.pool_h, self.pool_w, self.stride, 0)
        ### END SOLUTION
