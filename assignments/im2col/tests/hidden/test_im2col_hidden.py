"""Hidden tests of the im2col assignment: the same contract as the visible ones, probed more widely.

Property tests draw random batch sizes, channels, image sizes, windows, strides and paddings (always a
window that fits exactly, see ``windows``) and compare with torch in float64. Hypothesis runs derandomized,
so every grading run sees the same examples.
"""
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

# derandomize: the same examples on every run. No "explain" phase: it re-runs a failing example under a
# tracer for a long time and adds nothing a student can use here.
PROPERTY = settings(max_examples=50, deadline=None, derandomize=True,
                    phases=[Phase.explicit, Phase.generate, Phase.shrink],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

COURSE_PADDED = torch.nn.functional.pad(torch.arange(1.0, 10.0, dtype=torch.float64).reshape(1, 1, 3, 3), (1, 1, 1, 1))
COURSE_FILTER = torch.tensor([[0.0, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=torch.float64).reshape(1, 1, 3, 3)
COURSE_OUTPUT = [[1.0, 6, 8], [6, 15, 14], [12, 14, 9]]
COURSE_COL = [
    [0.0, 0, 0, 0, 1, 2, 0, 4, 5],
    [0, 0, 0, 1, 2, 3, 4, 5, 6],
    [0, 0, 0, 2, 3, 0, 5, 6, 0],
    [0, 1, 2, 0, 4, 5, 0, 7, 8],
    [1, 2, 3, 4, 5, 6, 7, 8, 9],
    [2, 3, 0, 5, 6, 0, 8, 9, 0],
    [0, 4, 5, 0, 7, 8, 0, 0, 0],
    [4, 5, 6, 7, 8, 9, 0, 0, 0],
    [5, 6, 0, 8, 9, 0, 0, 0, 0],
]


@st.composite
def windows(draw, max_pad=2, max_window=4, max_stride=3):
    """``(N, C, H, W, filter_h, filter_w, stride, pad)`` where the window fits exactly (H >= 1, W >= 1)."""
    fh, fw = draw(st.integers(1, max_window)), draw(st.integers(1, max_window))
    stride, pad = draw(st.integers(1, max_stride)), draw(st.integers(0, max_pad))

    def side(filter_size):
        lowest = max(1, -(-(2 * pad + 1 - filter_size) // stride) + 1)  # the fewest outputs with a side >= 1
        out = draw(st.integers(lowest, lowest + 4))
        return (out - 1) * stride + filter_size - 2 * pad

    H, W = side(fh), side(fw)
    return draw(st.integers(1, 3)), draw(st.integers(1, 3)), H, W, fh, fw, stride, pad


SEEDS = st.integers(0, 2**31 - 1)


def call_text(case):
    N, C, H, W, fh, fw, stride, pad = case
    return f"input of shape {(N, C, H, W)}, filter {fh}x{fw}, stride={stride}, pad={pad}"


def out_size(case):
    N, C, H, W, fh, fw, stride, pad = case
    return (H + 2 * pad - fh) // stride + 1, (W + 2 * pad - fw) // stride + 1


# ---------------------------------------------------------------------------------------------------------
# im2col and col2im


@pytest.mark.points(3)
@PROPERTY
@given(case=windows(), seed=SEEDS)
def test_im2col_matches_unfold_property(student, randn, reference, case, seed):
    """For random shapes, windows, strides and paddings, im2col is torch's unfold in the documented layout."""
    N, C, H, W, fh, fw, stride, pad = case
    out_h, out_w = out_size(case)
    x = randn(N, C, H, W, seed=seed)
    col = student.im2col(x, fh, fw, stride, pad, shape=(N * out_h * out_w, C * fh * fw))
    wrong = torch.nonzero(col != reference.im2col(x, fh, fw, stride, pad))
    if len(wrong):
        row, column = (int(v) for v in wrong[0])
        pytest.fail(f"im2col({call_text(case)}): {len(wrong)} entries differ from the documented layout, the first at "
                    f"row {row}, column {column}", pytrace=False)


@pytest.mark.points(1)
def test_im2col_output_shape_edge_cases(student, randn):
    """Shapes follow the formula also for 1x1 windows, a window as large as the padded image, and stride 3."""
    for N, C, H, W, fh, fw, stride, pad in [
        (2, 3, 4, 4, 1, 1, 1, 0),  # 1x1 window: one row per pixel
        (1, 2, 3, 3, 5, 5, 1, 1),  # the window covers the whole padded image: one row per image
        (3, 1, 7, 10, 1, 4, 3, 0),
        (1, 1, 1, 1, 3, 3, 1, 1),
    ]:
        out_h, out_w = (H + 2 * pad - fh) // stride + 1, (W + 2 * pad - fw) // stride + 1
        student.im2col(randn(N, C, H, W), fh, fw, stride, pad, shape=(N * out_h * out_w, C * fh * fw))


@pytest.mark.points(1)
def test_im2col_worked_example_prepadded(student):
    """The course's 5x5 zero-padded array with pad=0 gives the same 9x9 matrix as the 3x3 image with pad=1."""
    col = student.im2col(COURSE_PADDED, 3, 3, 1, 0, shape=(9, 9))
    if not torch.equal(col, torch.tensor(COURSE_COL, dtype=torch.float64)):
        pytest.fail("im2col of the course's 5x5 padded array (pad=0, 3x3 window): the rows differ from the course's "
                    "matrix (the same as for the 3x3 image with pad=1)", pytrace=False)


@pytest.mark.points(2)
@PROPERTY
@given(case=windows(), seed=SEEDS)
def test_col2im_is_adjoint_property(student, randn, reference, case, seed):
    """For random shapes, <im2col(x), y> == <x, col2im(y)>."""
    N, C, H, W, fh, fw, stride, pad = case
    x = randn(N, C, H, W, seed=seed)
    cols = reference.im2col(x, fh, fw, stride, pad)
    y = randn(*cols.shape, seed=seed + 1)
    back = student.col2im(y, (N, C, H, W), fh, fw, stride, pad, shape=(N, C, H, W))
    left, right = float((cols * y).sum()), float((x * back).sum())
    if abs(left - right) > 1e-10 * float(cols.norm() * y.norm()):
        pytest.fail(f"col2im({call_text(case)}) is not the adjoint of im2col: <im2col(x), y> = {left:.6f} but "
                    f"<x, col2im(y)> = {right:.6f}", pytrace=False)


@pytest.mark.points(2)
@PROPERTY
@given(case=windows(), seed=SEEDS)
def test_col2im_sums_overlaps_property(student, randn, reference, assert_close, case, seed):
    """For random shapes, col2im adds every entry onto its pixel: overlapping windows sum (torch's fold)."""
    N, C, H, W, fh, fw, stride, pad = case
    out_h, out_w = out_size(case)
    y = randn(N * out_h * out_w, C * fh * fw, seed=seed)
    back = student.col2im(y, (N, C, H, W), fh, fw, stride, pad, shape=(N, C, H, W))
    hint = "where windows overlap (stride < window), a pixel gets the sum of all its entries (+=, not =)"
    assert_close(back, reference.col2im(y, (N, C, H, W), fh, fw, stride, pad), f"col2im({call_text(case)})", hint=hint)


# ---------------------------------------------------------------------------------------------------------
# Convolution


def conv_tensors(randn, case, seed, FN):
    N, C, H, W, fh, fw, stride, pad = case
    return randn(N, C, H, W, seed=seed), randn(FN, C, fh, fw, seed=seed + 1), randn(FN, seed=seed + 2)


@pytest.mark.points(3)
@PROPERTY
@given(case=windows(), seed=SEEDS, FN=st.integers(1, 4))
def test_convolution_forward_property(student, randn, assert_close, case, seed, FN):
    """For random shapes, Convolution.forward equals torch's conv2d in float64 (relative error < 1e-10)."""
    N, C, H, W, fh, fw, stride, pad = case
    out_h, out_w = out_size(case)
    x, Wt, b = conv_tensors(randn, case, seed, FN)
    out = student.convolution(Wt, b, stride, pad).forward(x, shape=(N, FN, out_h, out_w))
    expected = torch.nn.functional.conv2d(x, Wt, b, stride=stride, padding=pad)
    assert_close(out, expected, f"Convolution.forward({call_text(case)}, {FN} filters)")


@pytest.mark.points(3)
@PROPERTY
@given(case=windows(), seed=SEEDS, FN=st.integers(1, 4))
def test_convolution_backward_property(student, randn, assert_close, case, seed, FN):
    """For random shapes, Convolution.backward gives torch autograd's dx, dW and db (float64)."""
    N, C, H, W, fh, fw, stride, pad = case
    x, Wt, b = conv_tensors(randn, case, seed, FN)
    layer = student.convolution(Wt, b, stride, pad)
    out = layer.forward(x)
    dout = randn(*out.shape, seed=seed + 3)
    dx = layer.backward(dout, shape=(N, C, H, W))
    dW, db = layer.gradient("dW", (FN, C, fh, fw)), layer.gradient("db", (FN,))
    xr, Wr, br = (t.clone().requires_grad_() for t in (x, Wt, b))
    torch.nn.functional.conv2d(xr, Wr, br, stride=stride, padding=pad).backward(dout)
    what = f"Convolution.backward({call_text(case)}, {FN} filters):"
    assert_close(dx, xr.grad, f"{what} dx")
    assert_close(dW, Wr.grad, f"{what} dW")
    assert_close(db, br.grad, f"{what} db")


@pytest.mark.points(2)
def test_convolution_backward_gradient_check(student, randn):
    """dx, dW and db agree with centered finite differences of forward (stride 2, pad 1)."""
    N, C, H, W, FN, F, stride, pad = 2, 2, 5, 5, 3, 3, 2, 1
    x, Wt, b = randn(N, C, H, W, seed=1), randn(FN, C, F, F, seed=2), randn(FN, seed=3)
    layer = student.convolution(Wt, b, stride, pad)
    G = randn(*layer.forward(x).shape, seed=4)
    analytic = {"dx": layer.backward(G, shape=(N, C, H, W)),
                "dW": layer.gradient("dW", (FN, C, F, F)), "db": layer.gradient("db", (FN,))}

    def loss(x, Wt, b):
        return float((student.convolution(Wt, b, stride, pad).forward(x) * G).sum())

    eps = 1e-6
    for name, position in [("dx", 0), ("dW", 1), ("db", 2)]:
        numeric = torch.zeros_like(analytic[name])
        for k in range(numeric.numel()):
            args_plus, args_minus = [x.clone(), Wt.clone(), b.clone()], [x.clone(), Wt.clone(), b.clone()]
            args_plus[position].view(-1)[k] += eps
            args_minus[position].view(-1)[k] -= eps
            numeric.view(-1)[k] = (loss(*args_plus) - loss(*args_minus)) / (2 * eps)
        error = float((analytic[name] - numeric).abs().max() / numeric.abs().max().clamp_min(1e-12))
        if not error < 1e-6:
            pytest.fail(f"Convolution(stride={stride}, pad={pad}).backward on x of shape {(N, C, H, W)}: {name} "
                        f"differs from the centered difference (loss(p + eps) - loss(p - eps)) / (2 eps) by a relative "
                        f"{error:.1e}", pytrace=False)


@pytest.mark.points(1)
def test_convolution_worked_example_prepadded(student):
    """Convolution with pad=0 on the course's 5x5 padded array gives the worked example's output."""
    out = student.convolution(COURSE_FILTER, torch.zeros(1, dtype=torch.float64), 1, 0).forward(COURSE_PADDED,
                                                                                               shape=(1, 1, 3, 3))
    if not torch.allclose(out[0, 0], torch.tensor(COURSE_OUTPUT, dtype=torch.float64), rtol=0, atol=1e-12):
        pytest.fail(f"Convolution(pad=0).forward on the 5x5 padded array: expected {COURSE_OUTPUT}, got "
                    f"{out[0, 0].tolist()}", pytrace=False)


# ---------------------------------------------------------------------------------------------------------
# invalid input


def numpy_randn(randn, shape):
    return randn(*shape).numpy().copy()


@pytest.mark.points(1)
def test_im2col_rejects_non_integer_output_size(student, randn):
    """A stride that does not divide H + 2*pad - filter_h (or the width) is a ValueError naming the shape."""
    fn = student.attribute("im2col", "im2col")
    cases = [((2, 3, 6, 6), 3, 3, 2, 0), ((1, 1, 5, 6), 3, 3, 2, 0), ((1, 1, 7, 7), 2, 2, 3, 1)]
    for shape, fh, fw, stride, pad in cases:
        what = f"im2col(x of shape {shape}, filter_h={fh}, filter_w={fw}, stride={stride}, pad={pad})"
        student.expect_value_error("im2col", what, fn, numpy_randn(randn, shape), fh, fw, stride, pad, names=[shape])


@pytest.mark.points(1)
def test_im2col_rejects_window_larger_than_input(student, randn):
    """A window larger than the padded input (in height or width) is a ValueError naming the shape."""
    fn = student.attribute("im2col", "im2col")
    cases = [((1, 2, 3, 3), 5, 5, 1, 0), ((1, 1, 2, 4), 3, 3, 1, 0), ((1, 1, 4, 4), 1, 7, 1, 1)]
    for shape, fh, fw, stride, pad in cases:
        what = f"im2col(x of shape {shape}, filter_h={fh}, filter_w={fw}, stride={stride}, pad={pad})"
        student.expect_value_error("im2col", what, fn, numpy_randn(randn, shape), fh, fw, stride, pad, names=[shape])


@pytest.mark.points(1)
def test_im2col_rejects_wrong_ndim(student, randn):
    """An input that is not 4-D (N, C, H, W) is a ValueError naming its shape."""
    fn = student.attribute("im2col", "im2col")
    for shape in [(3, 5, 5), (1, 1, 1, 5, 5), (25,)]:
        what = f"im2col(x of shape {shape}, filter_h=3, filter_w=3)"
        student.expect_value_error("im2col", what, fn, numpy_randn(randn, shape), 3, 3, 1, 0, names=[shape])


@pytest.mark.points(1)
def test_col2im_rejects_invalid_shapes(student, randn):
    """col2im: a col of the wrong shape, or an input_shape the window does not fit, is a ValueError naming it."""
    fn = student.attribute("col2im", "col2im")
    for col_shape, input_shape, stride, named in [
        ((4, 8), (1, 1, 4, 4), 1, (4, 8)),  # 4 windows of 9 entries expected
        ((5, 9), (1, 1, 4, 4), 1, (5, 9)),
        ((4, 9), (1, 1, 6, 6), 2, (1, 1, 6, 6)),  # 6 - 3 = 3 is not a multiple of 2
    ]:
        what = f"col2im(col of shape {col_shape}, input_shape={input_shape}, filter_h=3, filter_w=3, stride={stride})"
        student.expect_value_error("col2im", what, fn, numpy_randn(randn, col_shape), input_shape, 3, 3, stride, 0,
                                   names=[named])


@pytest.mark.points(1)
def test_convolution_rejects_invalid_input(student, randn):
    """Convolution.forward: channels that do not match W, a non-4-D x, or a stride that does not fit: ValueError."""
    for x_shape, stride, named in [
        ((1, 2, 5, 5), 1, [(1, 2, 5, 5), (2, 3, 3, 3)]),  # 2 channels, the filters expect 3
        ((3, 5, 5), 1, [(3, 5, 5)]),
        ((1, 3, 6, 6), 2, [(1, 3, 6, 6)]),
    ]:
        layer = student.convolution(randn(2, 3, 3, 3), randn(2), stride, 0)
        what = f"Convolution(W of shape (2, 3, 3, 3), stride={stride}).forward(x of shape {x_shape})"
        student.expect_value_error("Convolution.forward", what, layer.method("forward", what),
                                   numpy_randn(randn, x_shape), names=named)


# ---------------------------------------------------------------------------------------------------------
# no Python loop over images or output pixels


SHAPES = [(1, 2, 4, 4), (6, 2, 4, 4), (1, 2, 12, 12)]


@pytest.mark.points(1)
def test_col2im_has_no_loop_over_images_or_pixels(student, randn):
    """col2im runs as many of its lines for many or larger images as for one small image."""
    fn = student.attribute("col2im", "col2im")

    def make_call(shape):
        N, C, H, W = shape
        return f"col2im(col, {shape}, 3, 3, pad=1)", fn, (numpy_randn(randn, (N * H * W, C * 9)), shape, 3, 3, 1, 1)

    student.assert_no_loop("col2im", make_call, SHAPES)


@pytest.mark.points(1)
def test_convolution_forward_has_no_loop_over_images_or_pixels(student, randn):
    """Convolution.forward runs as many lines for many or larger images as for one small image."""

    def make_call(shape):
        layer = student.convolution(randn(3, shape[1], 3, 3), randn(3), 1, 1)
        what = f"Convolution.forward(x of shape {shape})"
        return what, layer.method("forward", what), (numpy_randn(randn, shape),)

    student.assert_no_loop("Convolution.forward", make_call, SHAPES)


@pytest.mark.points(1)
def test_convolution_backward_has_no_loop_over_images_or_pixels(student, randn):
    """Convolution.backward runs as many lines for many or larger images as for one small image."""

    def make_call(shape):
        layer = student.convolution(randn(3, shape[1], 3, 3), randn(3), 1, 1)
        out = layer.forward(randn(*shape))
        what = f"Convolution.backward(dout of shape {tuple(out.shape)})"
        return what, layer.method("backward", what), (numpy_randn(randn, out.shape),)

    student.assert_no_loop("Convolution.backward", make_call, SHAPES)


# ---------------------------------------------------------------------------------------------------------
# bonus: Pooling


@st.composite
def pools(draw):
    """``(N, C, H, W, pool, stride)`` with an exact fit, no padding."""
    pool_h, pool_w, stride = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H = (draw(st.integers(1, 4)) - 1) * stride + pool_h
    W = (draw(st.integers(1, 4)) - 1) * stride + pool_w
    return draw(st.integers(1, 3)), draw(st.integers(1, 3)), H, W, pool_h, pool_w, stride


@pytest.mark.bonus
@pytest.mark.points(1)
@PROPERTY
@given(case=pools(), seed=SEEDS)
def test_pooling_forward_property(student, randn, assert_close, case, seed):
    """Bonus: for random shapes, windows and strides, Pooling.forward equals torch's max_pool2d."""
    N, C, H, W, ph, pw, stride = case
    x = randn(N, C, H, W, seed=seed)
    expected = torch.nn.functional.max_pool2d(x, (ph, pw), stride)
    out = student.pooling(ph, pw, stride).forward(x, shape=tuple(expected.shape))
    assert_close(out, expected, f"Pooling({ph}, {pw}, stride={stride}).forward(x of shape {(N, C, H, W)})", rtol=1e-12)


@pytest.mark.bonus
@pytest.mark.points(1)
@PROPERTY
@given(case=pools(), seed=SEEDS)
def test_pooling_backward_property(student, randn, assert_close, case, seed):
    """Bonus: for random shapes, Pooling.backward equals torch autograd (gradients of overlapping windows add)."""
    N, C, H, W, ph, pw, stride = case
    x = randn(N, C, H, W, seed=seed)
    layer = student.pooling(ph, pw, stride)
    dout = randn(*layer.forward(x).shape, seed=seed + 1)
    dx = layer.backward(dout, shape=(N, C, H, W))
    xr = x.clone().requires_grad_()
    torch.nn.functional.max_pool2d(xr, (ph, pw), stride).backward(dout)
    assert_close(dx, xr.grad, f"Pooling({ph}, {pw}, stride={stride}).backward on x of shape {(N, C, H, W)}", rtol=1e-12)


@pytest.mark.bonus
@pytest.mark.points(1)
def test_pooling_has_no_loop_over_images_or_pixels(student, randn):
    """Bonus: Pooling.forward and backward run as many lines for many or larger images as for one small image."""

    def make_forward(shape):
        what = f"Pooling(2, 2, 2).forward(x of shape {shape})"
        return what, student.pooling(2, 2, 2).method("forward", what), (numpy_randn(randn, shape),)

    def make_backward(shape):
        layer = student.pooling(2, 2, 2)
        out = layer.forward(randn(*shape))
        what = f"Pooling(2, 2, 2).backward(dout of shape {tuple(out.shape)})"
        return what, layer.method("backward", what), (numpy_randn(randn, out.shape),)

    student.assert_no_loop("Pooling.forward", make_forward, SHAPES)
    student.assert_no_loop("Pooling.backward", make_backward, SHAPES)
