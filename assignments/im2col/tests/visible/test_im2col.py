"""Visible tests of the im2col assignment. Run them with `pytest` in the handout folder.

The grader runs these and more (hidden) tests of the same contract; see README.md for the points. Your
im2col.py is run by the probe on the inputs of tests/plan.py, and these tests judge what it returned
through the `student` fixture (conftest.py, im2col_contract.py), which also checks that im2col.py uses
numpy only, loops over the filter window only, and returns float64 numpy arrays.
"""
import pytest
import torch

from im2col_contract import COURSE_COL, COURSE_OUTPUT, describe_entry, im2col_text, unfold_rows
from mnistkit.checks import assert_close, fail
from plan import CASE_FILTERS, CASES, INVALID_IM2COL, POOL_CASES, site

POOL_BACKWARD = ("dx is each gradient of dout put at the maximum of its window (the first one if several are equal), "
                 "and overlapping windows add theirs")


def hinted(student, name: str) -> str:
    """``". <which rule name's im2col or col2im breaks>"``, or ``""`` (im2col_contract.Student.hint)."""
    hint = student.hint(name)
    return f". {hint}" if hint else ""


@pytest.mark.points(2)
def test_im2col_worked_example(student):
    """im2col of the course's worked example (3x3 image 1..9, pad=1, 3x3 window) is the course's 9x9 matrix."""
    col = student.im2col("worked", (1, 1, 3, 3, 3, 3, 1, 1))
    expected = torch.tensor(COURSE_COL, dtype=torch.float64)
    for row in range(9):
        if not torch.equal(col[row], expected[row]):
            fail(f"im2col of the worked example: row {row} (the window at output pixel ({row // 3}, {row % 3})) "
                 f"should be {expected[row].tolist()}, got {col[row].tolist()}" + hinted(student, "im2col"))


@pytest.mark.points(2)
def test_convolution_worked_example(student):
    """Convolution with the anti-diagonal filter on the worked example gives [[1, 6, 8], [6, 15, 14], [12, 14, 9]]."""
    out = student.conv_forward(site("worked/conv"), (1, 1, 3, 3, 3, 3, 1, 1), 1)
    if not torch.allclose(out[0, 0], torch.tensor(COURSE_OUTPUT, dtype=torch.float64), rtol=0, atol=1e-12):
        fail(f"Convolution.forward on the worked example: expected {COURSE_OUTPUT}, got {out[0, 0].tolist()}"
             + hinted(student, "Convolution.forward"))


@pytest.mark.points(1)
def test_im2col_output_shape(student):
    """im2col returns (N*out_h*out_w, C*filter_h*filter_w) with out_h = (H + 2*pad - filter_h)//stride + 1."""
    for k, case in enumerate(CASES):
        student.im2col(f"case{k}", case)


@pytest.mark.points(2)
def test_im2col_matches_documented_layout(student):
    """Every entry of im2col's matrix is the padded input pixel that the docstring's formula names."""
    for k, case in enumerate(CASES):
        N, C, H, W, fh, fw, stride, pad = case
        x = student.tensor(f"im2col/case{k}/x")
        col = student.im2col(f"case{k}", case)
        wrong = torch.nonzero(col != unfold_rows(x, fh, fw, stride, pad))
        if len(wrong):
            row, column = (int(v) for v in wrong[0])
            fail(f"im2col(x of shape {tuple(x.shape)}, {fh}, {fw}, stride={stride}, pad={pad}): {len(wrong)} wrong "
                 f"entries; the first, {describe_entry(row, column, case)}" + hinted(student, "im2col"))


@pytest.mark.points(2)
def test_col2im_is_adjoint_of_im2col(student, randn):
    """<im2col(x), y> == <x, col2im(y)>: col2im adds every entry back onto its pixel, summing overlaps."""
    for k, case in enumerate(CASES):
        N, C, H, W, fh, fw, stride, pad = case
        y = student.tensor(f"col2im/case{k}/col")
        back = student.col2im(f"case{k}", case)
        x = randn(N, C, H, W, seed=k)
        cols = unfold_rows(x, fh, fw, stride, pad)
        left, right = float((cols * y).sum()), float((x * back).sum())
        if abs(left - right) > 1e-10 * float(cols.norm() * y.norm()):
            fail(f"col2im(y, {(N, C, H, W)}, {fh}, {fw}, stride={stride}, pad={pad}) is not the adjoint of im2col: "
                 f"<im2col(x), y> = {left:.6f} but <x, col2im(y)> = {right:.6f}. " + (student.hint("col2im") or (
                     "Every entry of y must be added to the pixel im2col copied it from; pixels in several windows "
                     "get the sum (+=, not =)")))


@pytest.mark.points(2)
def test_convolution_forward_matches_conv2d(student):
    """Convolution.forward equals a direct convolution (torch's conv2d, float64) to a relative error below 1e-10."""
    for k, case in enumerate(CASES):
        N, C, H, W, fh, fw, stride, pad = case
        item = f"case{k}/conv-forward"
        x, Wt, b = (student.tensor(f"{item}/{name}") for name in ("x", "W", "b"))
        out = student.conv_forward(site(item), case, CASE_FILTERS)
        expected = torch.nn.functional.conv2d(x, Wt, b, stride=stride, padding=pad)
        what = (f"Convolution(W of shape {tuple(Wt.shape)}, stride={stride}, pad={pad})"
                f".forward(x of shape {(N, C, H, W)})")
        hint = "out[n, f, i, j] = b[f] + sum of W[f] times the window at (i, j), without flipping the filter"
        assert_close(out, expected, what, hint=student.hint("Convolution.forward") or hint)


@pytest.mark.points(3)
def test_convolution_backward_matches_autograd(student):
    """Convolution.backward returns dx and stores dW, db equal to torch autograd's gradients (float64)."""
    for k, case in enumerate(CASES):
        N, C, H, W, fh, fw, stride, pad = case
        item = f"case{k}/conv-backward"
        x, Wt, b, dout = (student.tensor(f"{item}/{name}") for name in ("x", "W", "b", "dout"))
        dx, dW, db = student.conv_backward(site(item), case, CASE_FILTERS)
        xr, Wr, br = (t.clone().requires_grad_() for t in (x, Wt, b))
        torch.nn.functional.conv2d(xr, Wr, br, stride=stride, padding=pad).backward(dout)
        what = f"Convolution(stride={stride}, pad={pad}) on x of shape {tuple(x.shape)}, W of shape {tuple(Wt.shape)}:"
        hint = student.hint("Convolution.backward")
        assert_close(dx, xr.grad, f"{what} dx", hint=hint or "dx = col2im(dout_rows @ col_W.T, ...)")
        assert_close(dW, Wr.grad, f"{what} dW", hint=hint or "dW = (col.T @ dout_rows).T reshaped to (FN, C, FH, FW)")
        assert_close(db, br.grad, f"{what} db", hint=hint or "db = dout summed over images and output pixels")


@pytest.mark.points(1)
def test_im2col_rejects_invalid_input(student):
    """A too-large window, a stride that does not fit, or a non-4-D input: a ValueError that names the shape."""
    for i, (shape, fh, fw, stride, pad) in enumerate(INVALID_IM2COL["visible"]):
        student.expect_value_error("im2col", "im2col", f"invalid/visible/{i}", im2col_text(shape, fh, fw, stride, pad),
                                   names=[shape])


@pytest.mark.points(2)
def test_im2col_has_no_loop_over_images_or_pixels(student):
    """im2col loops over the filter window only, never over the images or the output pixels (read from the file)."""
    for k, case in enumerate(CASES):
        student.im2col(f"case{k}", case)  # the check is for an im2col that runs
    student.assert_no_loop("im2col")


@pytest.mark.bonus
@pytest.mark.points(1)
def test_pooling_forward_matches_max_pool2d(student):
    """Bonus: Pooling.forward takes the maximum of every window (as torch's max_pool2d)."""
    for k, (shape, pool, stride) in enumerate(POOL_CASES):
        x = student.tensor(f"pool{k}/forward/x")
        out = student.pool_forward(site(f"pool{k}/forward"), pool, pool, stride)
        expected = torch.nn.functional.max_pool2d(x, pool, stride)
        assert_close(out, expected, f"Pooling({pool}, {pool}, stride={stride}).forward(x of shape {shape})", rtol=1e-12,
                     hint=student.hint("Pooling.forward"))


@pytest.mark.bonus
@pytest.mark.points(1)
def test_pooling_backward_matches_autograd(student):
    """Bonus: Pooling.backward sends each gradient to the maximum of its window (as torch autograd)."""
    for k, (shape, pool, stride) in enumerate(POOL_CASES):
        item = f"pool{k}/backward"
        x, dout = student.tensor(f"{item}/x"), student.tensor(f"{item}/dout")
        dx = student.pool_backward(site(item), pool, pool, stride)
        xr = x.clone().requires_grad_()
        torch.nn.functional.max_pool2d(xr, pool, stride).backward(dout)
        assert_close(dx, xr.grad, f"Pooling({pool}, {pool}, stride={stride}).backward on x of shape {shape}",
                     rtol=1e-12, hint=student.hint("Pooling.backward") or POOL_BACKWARD)
