"""Visible tests of the im2col assignment. Run them with `pytest` in the handout folder.

The grader runs these and more (hidden) tests of the same contract; see README.md for the points. Your
code is called through the `student` fixture of conftest.py, which also checks that im2col.py uses numpy
only and returns numpy arrays.
"""
import pytest
import torch

# The course's worked example: the 3x3 image 1..9 padded with one ring of zeros, a 3x3 window, stride 1.
COURSE_IMAGE = torch.arange(1.0, 10.0, dtype=torch.float64).reshape(1, 1, 3, 3)
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

# (N, C, H, W, filter_h, filter_w, stride, pad): square and not, strided, padded, 1-wide windows.
CASES = [
    (2, 3, 5, 5, 3, 3, 1, 1),
    (1, 2, 7, 5, 3, 1, 2, 0),
    (3, 1, 6, 8, 2, 4, 2, 2),
]


def describe_entry(row, column, case):
    """Which image, output pixel, channel and window offset entry (row, column) of an im2col matrix is."""
    N, C, H, W, fh, fw, stride, pad = case
    out_h, out_w = (H + 2 * pad - fh) // stride + 1, (W + 2 * pad - fw) // stride + 1
    n, pixel = divmod(row, out_h * out_w)
    i, j = divmod(pixel, out_w)
    c, offset = divmod(column, fh * fw)
    y, x = divmod(offset, fw)
    return (f"row {row}, column {column} is image {n}, output pixel ({i}, {j}), channel {c}, window offset "
            f"({y}, {x}), so it should equal padded[{n}, {c}, {i * stride + y}, {j * stride + x}]")


@pytest.mark.points(2)
def test_im2col_worked_example(student):
    """im2col of the course's worked example (3x3 image 1..9, pad=1, 3x3 window) is the course's 9x9 matrix."""
    col = student.im2col(COURSE_IMAGE, 3, 3, 1, 1, shape=(9, 9))
    expected = torch.tensor(COURSE_COL, dtype=torch.float64)
    for row in range(9):
        if not torch.equal(col[row], expected[row]):
            pytest.fail(f"im2col of the worked example: row {row} (the window at output pixel ({row // 3}, "
                        f"{row % 3})) should be {expected[row].tolist()}, got {col[row].tolist()}", pytrace=False)


@pytest.mark.points(2)
def test_convolution_worked_example(student):
    """Convolution with the anti-diagonal filter on the worked example gives [[1, 6, 8], [6, 15, 14], [12, 14, 9]]."""
    layer = student.convolution(COURSE_FILTER, torch.zeros(1, dtype=torch.float64), 1, 1)
    out = layer.forward(COURSE_IMAGE, shape=(1, 1, 3, 3))
    if not torch.allclose(out[0, 0], torch.tensor(COURSE_OUTPUT, dtype=torch.float64), rtol=0, atol=1e-12):
        pytest.fail(f"Convolution.forward on the worked example: expected {COURSE_OUTPUT}, got {out[0, 0].tolist()}",
                    pytrace=False)


@pytest.mark.points(1)
def test_im2col_output_shape(student, randn):
    """im2col returns (N*out_h*out_w, C*filter_h*filter_w) with out_h = (H + 2*pad - filter_h)//stride + 1."""
    for N, C, H, W, fh, fw, stride, pad in CASES:
        out_h, out_w = (H + 2 * pad - fh) // stride + 1, (W + 2 * pad - fw) // stride + 1
        student.im2col(randn(N, C, H, W), fh, fw, stride, pad, shape=(N * out_h * out_w, C * fh * fw))


@pytest.mark.points(2)
def test_im2col_matches_documented_layout(student, randn, reference):
    """Every entry of im2col's matrix is the padded input pixel that the docstring's formula names."""
    for seed, case in enumerate(CASES):
        N, C, H, W, fh, fw, stride, pad = case
        x = randn(N, C, H, W, seed=seed)
        col = student.im2col(x, fh, fw, stride, pad)
        expected = reference.im2col(x, fh, fw, stride, pad)
        if col.shape != expected.shape:
            pytest.fail(f"im2col(x of shape {tuple(x.shape)}, {fh}, {fw}, stride={stride}, pad={pad}): expected shape "
                        f"{tuple(expected.shape)}, got {tuple(col.shape)}", pytrace=False)
        wrong = torch.nonzero(col != expected)
        if len(wrong):
            row, column = (int(v) for v in wrong[0])
            pytest.fail(f"im2col(x of shape {tuple(x.shape)}, {fh}, {fw}, stride={stride}, pad={pad}): "
                        f"{len(wrong)} wrong entries; the first, {describe_entry(row, column, case)}", pytrace=False)


@pytest.mark.points(2)
def test_col2im_is_adjoint_of_im2col(student, randn, reference):
    """<im2col(x), y> == <x, col2im(y)>: col2im adds every entry back onto its pixel, summing overlaps."""
    for seed, (N, C, H, W, fh, fw, stride, pad) in enumerate(CASES):
        x = randn(N, C, H, W, seed=seed)
        cols = reference.im2col(x, fh, fw, stride, pad)
        y = randn(*cols.shape, seed=100 + seed)
        back = student.col2im(y, (N, C, H, W), fh, fw, stride, pad, shape=(N, C, H, W))
        left, right = float((cols * y).sum()), float((x * back).sum())
        scale = float(cols.norm() * y.norm())
        if abs(left - right) > 1e-10 * scale:
            pytest.fail(f"col2im(y, {(N, C, H, W)}, {fh}, {fw}, stride={stride}, pad={pad}) is not the adjoint of "
                        f"im2col: <im2col(x), y> = {left:.6f} but <x, col2im(y)> = {right:.6f}. Every entry of y "
                        "must be added to the pixel im2col copied it from; pixels in several windows get the sum "
                        "(+=, not =)",
                        pytrace=False)


@pytest.mark.points(2)
def test_convolution_forward_matches_conv2d(student, randn, assert_close):
    """Convolution.forward equals a direct convolution (torch's conv2d, float64) to a relative error below 1e-10."""
    for seed, (N, C, H, W, fh, fw, stride, pad) in enumerate(CASES):
        FN = 4
        x, Wt, b = randn(N, C, H, W, seed=seed), randn(FN, C, fh, fw, seed=10 + seed), randn(FN, seed=20 + seed)
        out = student.convolution(Wt, b, stride, pad).forward(x)
        expected = torch.nn.functional.conv2d(x, Wt, b, stride=stride, padding=pad)
        what = (f"Convolution(W of shape {(FN, C, fh, fw)}, stride={stride}, pad={pad})"
                f".forward(x of shape {(N, C, H, W)})")
        hint = "out[n, f, i, j] = b[f] + sum of W[f] times the window at (i, j), without flipping the filter"
        assert_close(out, expected, what, hint=hint)


@pytest.mark.points(3)
def test_convolution_backward_matches_autograd(student, randn, assert_close):
    """Convolution.backward returns dx and stores dW, db equal to torch autograd's gradients (float64)."""
    for seed, (N, C, H, W, fh, fw, stride, pad) in enumerate(CASES):
        FN = 4
        x, Wt, b = randn(N, C, H, W, seed=seed), randn(FN, C, fh, fw, seed=10 + seed), randn(FN, seed=20 + seed)
        layer = student.convolution(Wt, b, stride, pad)
        out = layer.forward(x)
        dout = randn(*out.shape, seed=30 + seed)
        dx = layer.backward(dout, shape=(N, C, H, W))
        dW, db = layer.gradient("dW", (FN, C, fh, fw)), layer.gradient("db", (FN,))
        xr, Wr, br = (t.clone().requires_grad_() for t in (x, Wt, b))
        torch.nn.functional.conv2d(xr, Wr, br, stride=stride, padding=pad).backward(dout)
        what = f"Convolution(stride={stride}, pad={pad}) on x of shape {tuple(x.shape)}, W of shape {tuple(Wt.shape)}:"
        assert_close(dx, xr.grad, f"{what} dx", hint="dx = col2im(dout_rows @ col_W.T, ...)")
        assert_close(dW, Wr.grad, f"{what} dW", hint="dW = (col.T @ dout_rows).T reshaped to (FN, C, FH, FW)")
        assert_close(db, br.grad, f"{what} db", hint="db = dout summed over images and output pixels")


@pytest.mark.points(1)
def test_im2col_rejects_invalid_input(student, randn):
    """A too-large window, a stride that does not fit, or a non-4-D input: a ValueError that names the shape."""
    fn = student.attribute("im2col", "im2col")
    for shape, fh, fw, stride, pad in [((1, 1, 3, 3), 4, 4, 1, 0), ((1, 1, 6, 6), 3, 3, 2, 0), ((3, 5, 5), 3, 3, 1, 0)]:
        what = f"im2col(x of shape {shape}, filter_h={fh}, filter_w={fw}, stride={stride}, pad={pad})"
        x = randn(*shape).numpy().copy()
        student.expect_value_error("im2col", what, fn, x, fh, fw, stride, pad, names=[shape])


@pytest.mark.points(2)
def test_im2col_has_no_loop_over_images_or_pixels(student, randn):
    """im2col runs as many of its lines for many or larger images as for one small image (loop over the window only)."""
    fn = student.attribute("im2col", "im2col")

    def make_call(shape):
        return f"im2col(x of shape {shape}, 3, 3, stride=1, pad=1)", fn, (randn(*shape).numpy().copy(), 3, 3, 1, 1)

    student.assert_no_loop("im2col", make_call, [(1, 2, 4, 4), (6, 2, 4, 4), (1, 2, 12, 12)])


@pytest.mark.bonus
@pytest.mark.points(1)
def test_pooling_forward_matches_max_pool2d(student, randn, assert_close):
    """Bonus: Pooling.forward takes the maximum of every window (as torch's max_pool2d)."""
    for seed, (shape, pool, stride) in enumerate([((2, 3, 6, 6), 2, 2), ((1, 2, 7, 5), 3, 2)]):
        x = randn(*shape, seed=seed)
        out = student.pooling(pool, pool, stride).forward(x)
        expected = torch.nn.functional.max_pool2d(x, pool, stride)
        assert_close(out, expected, f"Pooling({pool}, {pool}, stride={stride}).forward(x of shape {shape})", rtol=1e-12)


@pytest.mark.bonus
@pytest.mark.points(1)
def test_pooling_backward_matches_autograd(student, randn, assert_close):
    """Bonus: Pooling.backward sends each gradient to the maximum of its window (as torch autograd)."""
    for seed, (shape, pool, stride) in enumerate([((2, 3, 6, 6), 2, 2), ((1, 2, 7, 5), 3, 2)]):
        x = randn(*shape, seed=seed)
        layer = student.pooling(pool, pool, stride)
        out = layer.forward(x)
        dout = randn(*out.shape, seed=10 + seed)
        dx = layer.backward(dout, shape=shape)
        xr = x.clone().requires_grad_()
        torch.nn.functional.max_pool2d(xr, pool, stride).backward(dout)
        assert_close(dx, xr.grad, f"Pooling({pool}, {pool}, stride={stride}).backward on x of shape {shape}",
                     rtol=1e-12, hint="overlapping windows add their gradients")
