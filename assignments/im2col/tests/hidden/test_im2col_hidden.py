"""Hidden tests of the im2col assignment: the same contract as the visible ones, probed more widely.

Property tests check random batch sizes, channels, image sizes, windows, strides and paddings (always a
window that fits exactly, see ``plan.random_windows``) against torch in float64. The random cases come
from the plan's seed: the grader draws its own for every submission, so the numbers cannot be known
before the zip is made.
"""
import pytest
import torch

from im2col_contract import COURSE_COL, COURSE_OUTPUT, call_text, describe_entry, fold_rows, im2col_text, unfold_rows
from mnistkit.checks import assert_close, fail
from plan import (
    CASE_FILTERS, CASES, EDGE_CASES, GRADCHECK, INVALID_COL2IM, INVALID_CONV, INVALID_CONV_W, INVALID_IM2COL,
    POOL_CASES, random_filters, random_pools, random_windows, site,
)


# ---------------------------------------------------------------------------------------------------------
# im2col and col2im


@pytest.mark.points(3)
def test_im2col_matches_unfold_property(student, plan_seed):
    """For random shapes, windows, strides and paddings, im2col is torch's unfold in the documented layout."""
    for i, case in enumerate(random_windows(plan_seed, "im2col")):
        N, C, H, W, fh, fw, stride, pad = case
        x = student.tensor(f"im2col/prop/{i}/x")
        col = student.im2col(f"prop/{i}", case)
        wrong = torch.nonzero(col != unfold_rows(x, fh, fw, stride, pad))
        if len(wrong):
            row, column = (int(v) for v in wrong[0])
            hint = student.hint("im2col")
            fail(f"im2col({call_text(case)}): {len(wrong)} entries differ from the documented layout; the first, "
                 f"{describe_entry(row, column, case)}" + (f". {hint}" if hint else ""))


@pytest.mark.points(1)
def test_im2col_output_shape_edge_cases(student):
    """Shapes follow the formula also for 1x1 windows, a window as large as the padded image, and stride 3."""
    for i, case in enumerate(EDGE_CASES):
        student.im2col(f"edge/{i}", case)


@pytest.mark.points(1)
def test_im2col_worked_example_prepadded(student):
    """The course's 5x5 zero-padded array with pad=0 gives the same 9x9 matrix as the 3x3 image with pad=1."""
    col = student.im2col("prepadded", (1, 1, 5, 5, 3, 3, 1, 0))
    if not torch.equal(col, torch.tensor(COURSE_COL, dtype=torch.float64)):
        hint = student.hint("im2col")
        fail("im2col of the course's 5x5 padded array (pad=0, 3x3 window): the rows differ from the course's matrix "
             "(the same as for the 3x3 image with pad=1)" + (f". {hint}" if hint else ""))


@pytest.mark.points(2)
def test_col2im_is_adjoint_property(student, randn, plan_seed):
    """For random shapes, <im2col(x), y> == <x, col2im(y)>."""
    for i, case in enumerate(random_windows(plan_seed, "col2im-adjoint")):
        N, C, H, W, fh, fw, stride, pad = case
        y = student.tensor(f"col2im/adjoint/{i}/col")
        back = student.col2im(f"adjoint/{i}", case)
        x = randn(N, C, H, W, seed=100 + i)
        cols = unfold_rows(x, fh, fw, stride, pad)
        left, right = float((cols * y).sum()), float((x * back).sum())
        if abs(left - right) > 1e-10 * float(cols.norm() * y.norm()):
            fail(f"col2im({call_text(case)}) is not the adjoint of im2col: <im2col(x), y> = {left:.6f} but "
                 f"<x, col2im(y)> = {right:.6f}. " + (student.hint("col2im") or (
                     "Every entry must be added to the pixel im2col copied it from (+=, not =)")))


@pytest.mark.points(2)
def test_col2im_sums_overlaps_property(student, plan_seed):
    """For random shapes, col2im adds every entry onto its pixel: overlapping windows sum (torch's fold)."""
    hint = student.hint("col2im") or (
        "where windows overlap (stride < window), a pixel gets the sum of all its entries (+=, not =)")
    for i, case in enumerate(random_windows(plan_seed, "col2im-sums")):
        N, C, H, W, fh, fw, stride, pad = case
        y = student.tensor(f"col2im/sums/{i}/col")
        back = student.col2im(f"sums/{i}", case)
        assert_close(back, fold_rows(y, (N, C, H, W), fh, fw, stride, pad), f"col2im({call_text(case)})", hint=hint)


# ---------------------------------------------------------------------------------------------------------
# Convolution


def conv_tensors(student, where):
    return tuple(student.tensor(f"{where.key}/{name}") for name in ("x", "W", "b"))


@pytest.mark.points(3)
def test_convolution_forward_property(student, plan_seed):
    """For random shapes, Convolution.forward equals torch's conv2d in float64 (relative error < 1e-10)."""
    cases = zip(random_windows(plan_seed, "conv-forward"), random_filters(plan_seed, "conv-forward"))
    for i, (case, FN) in enumerate(cases):
        N, C, H, W, fh, fw, stride, pad = case
        where = site("prop/conv-forward", i)
        x, Wt, b = conv_tensors(student, where)
        out = student.conv_forward(where, case, FN)
        expected = torch.nn.functional.conv2d(x, Wt, b, stride=stride, padding=pad)
        assert_close(out, expected, f"Convolution.forward({call_text(case)}, {FN} filters)",
                     hint=student.hint("Convolution.forward"))


@pytest.mark.points(3)
def test_convolution_backward_property(student, plan_seed):
    """For random shapes, Convolution.backward gives torch autograd's dx, dW and db (float64)."""
    cases = zip(random_windows(plan_seed, "conv-backward"), random_filters(plan_seed, "conv-backward"))
    for i, (case, FN) in enumerate(cases):
        N, C, H, W, fh, fw, stride, pad = case
        where = site("prop/conv-backward", i)
        x, Wt, b = conv_tensors(student, where)
        dout = student.tensor(f"{where.key}/dout")
        dx, dW, db = student.conv_backward(where, case, FN)
        xr, Wr, br = (t.clone().requires_grad_() for t in (x, Wt, b))
        torch.nn.functional.conv2d(xr, Wr, br, stride=stride, padding=pad).backward(dout)
        what = f"Convolution.backward({call_text(case)}, {FN} filters):"
        hint = student.hint("Convolution.backward")
        assert_close(dx, xr.grad, f"{what} dx", hint=hint)
        assert_close(dW, Wr.grad, f"{what} dW", hint=hint)
        assert_close(db, br.grad, f"{what} db", hint=hint)


@pytest.mark.points(2)
def test_convolution_backward_gradient_check(student):
    """dx, dW and db agree with centered finite differences of the loss sum(conv2d(x, W, b) * dout) (stride 2, pad 1).

    The loss is computed with torch's conv2d in float64 (the reference forward), so the check is of your
    backward alone: (loss(p + eps) - loss(p - eps)) / (2 eps) for every entry p of x, W and b.
    """
    N, C, H, W, FN, F, stride, pad = GRADCHECK
    x, Wt, b = conv_tensors(student, site("gradcheck"))
    G = student.tensor("gradcheck/dout")
    dx, dW, db = student.conv_backward(site("gradcheck"), (N, C, H, W, F, F, stride, pad), FN)
    analytic = {"dx": dx, "dW": dW, "db": db}

    def loss(x, Wt, b):
        return float((torch.nn.functional.conv2d(x, Wt, b, stride=stride, padding=pad) * G).sum())

    eps = 1e-6
    hint = student.hint("Convolution.backward")
    hinted = f". {hint}" if hint else ""
    for name, position in [("dx", 0), ("dW", 1), ("db", 2)]:
        numeric = torch.zeros_like(analytic[name])
        for k in range(numeric.numel()):
            args_plus, args_minus = [x.clone(), Wt.clone(), b.clone()], [x.clone(), Wt.clone(), b.clone()]
            args_plus[position].view(-1)[k] += eps
            args_minus[position].view(-1)[k] -= eps
            numeric.view(-1)[k] = (loss(*args_plus) - loss(*args_minus)) / (2 * eps)
        error = float((analytic[name] - numeric).abs().max() / numeric.abs().max().clamp_min(1e-12))
        if not error < 1e-6:
            fail(f"Convolution(stride={stride}, pad={pad}).backward on x of shape {(N, C, H, W)}: {name} differs from "
                 f"the centered difference (loss(p + eps) - loss(p - eps)) / (2 eps) of loss = sum(conv2d(x, W, b) * "
                 f"dout) by a relative {error:.1e}" + hinted)


@pytest.mark.points(1)
def test_convolution_worked_example_prepadded(student):
    """Convolution with pad=0 on the course's 5x5 padded array gives the worked example's output."""
    out = student.conv_forward(site("prepadded/conv"), (1, 1, 5, 5, 3, 3, 1, 0), 1)
    if not torch.allclose(out[0, 0], torch.tensor(COURSE_OUTPUT, dtype=torch.float64), rtol=0, atol=1e-12):
        hint = student.hint("Convolution.forward")
        fail(f"Convolution(pad=0).forward on the 5x5 padded array: expected {COURSE_OUTPUT}, got {out[0, 0].tolist()}"
             + (f". {hint}" if hint else ""))


# ---------------------------------------------------------------------------------------------------------
# invalid input


def expect_im2col_errors(student, group):
    for i, (shape, fh, fw, stride, pad) in enumerate(INVALID_IM2COL[group]):
        student.expect_value_error("im2col", "im2col", f"invalid/{group}/{i}", im2col_text(shape, fh, fw, stride, pad),
                                   names=[shape])


@pytest.mark.points(1)
def test_im2col_rejects_non_integer_output_size(student):
    """A stride that does not divide H + 2*pad - filter_h (or the width) is a ValueError naming the shape."""
    expect_im2col_errors(student, "non-integer")


@pytest.mark.points(1)
def test_im2col_rejects_window_larger_than_input(student):
    """A window larger than the padded input (in height or width) is a ValueError naming the shape."""
    expect_im2col_errors(student, "too-large")


@pytest.mark.points(1)
def test_im2col_rejects_wrong_ndim(student):
    """An input that is not 4-D (N, C, H, W) is a ValueError naming its shape."""
    expect_im2col_errors(student, "ndim")


@pytest.mark.points(1)
def test_col2im_rejects_invalid_shapes(student):
    """col2im: a col of the wrong shape, or an input_shape the window does not fit, is a ValueError naming it."""
    for i, (col, input_shape, stride, named) in enumerate(INVALID_COL2IM):
        what = f"col2im(col of shape {col}, input_shape={input_shape}, filter_h=3, filter_w=3, stride={stride})"
        student.expect_value_error("col2im", "col2im", f"invalid/{i}", what, names=[named])


@pytest.mark.points(1)
def test_convolution_rejects_invalid_input(student):
    """Convolution.forward: channels that do not match W, a non-4-D x, or a stride that does not fit: ValueError."""
    for i, (x_shape, stride, named) in enumerate(INVALID_CONV):
        layer = f"Convolution(W of shape {INVALID_CONV_W}, stride={stride})"
        what = f"{layer}.forward(x of shape {x_shape})"
        student.require("Convolution", layer)
        student.expect_value_error("Convolution.forward", f"invalid/conv{i}", "out", what, names=named,
                                   whats={"layer": layer})


# ---------------------------------------------------------------------------------------------------------
# no Python loop over images or output pixels (read from the file, for parts that run)


@pytest.mark.points(1)
def test_col2im_has_no_loop_over_images_or_pixels(student):
    """col2im loops over the filter window only, never over the images or the output pixels."""
    for k, case in enumerate(CASES):
        student.col2im(f"case{k}", case)
    student.assert_no_loop("col2im")


@pytest.mark.points(1)
def test_convolution_forward_has_no_loop_over_images_or_pixels(student):
    """Convolution.forward (and what it calls) loops over the filter window only."""
    for k, case in enumerate(CASES):
        student.conv_forward(site(f"case{k}/conv-forward"), case, CASE_FILTERS)
    student.assert_no_loop("Convolution.forward")


@pytest.mark.points(1)
def test_convolution_backward_has_no_loop_over_images_or_pixels(student):
    """Convolution.backward (and what it calls) loops over the filter window only."""
    for k, case in enumerate(CASES):
        student.conv_backward(site(f"case{k}/conv-backward"), case, CASE_FILTERS)
    student.assert_no_loop("Convolution.backward")


# ---------------------------------------------------------------------------------------------------------
# bonus: Pooling


@pytest.mark.bonus
@pytest.mark.points(1)
def test_pooling_forward_property(student, plan_seed):
    """Bonus: for random shapes, windows and strides, Pooling.forward equals torch's max_pool2d."""
    for i, (N, C, H, W, ph, pw, stride) in enumerate(random_pools(plan_seed, "pool-forward")):
        where = site("prop/pool-forward", i)
        x = student.tensor(f"{where.key}/x")
        expected = torch.nn.functional.max_pool2d(x, (ph, pw), stride)
        out = student.pool_forward(where, ph, pw, stride)
        assert_close(out, expected, f"Pooling({ph}, {pw}, stride={stride}).forward(x of shape {(N, C, H, W)})",
                     rtol=1e-12, hint=student.hint("Pooling.forward"))


@pytest.mark.bonus
@pytest.mark.points(1)
def test_pooling_backward_property(student, plan_seed):
    """Bonus: for random shapes, Pooling.backward equals torch autograd (gradients of overlapping windows add)."""
    for i, (N, C, H, W, ph, pw, stride) in enumerate(random_pools(plan_seed, "pool-backward")):
        where = site("prop/pool-backward", i)
        x, dout = student.tensor(f"{where.key}/x"), student.tensor(f"{where.key}/dout")
        dx = student.pool_backward(where, ph, pw, stride)
        xr = x.clone().requires_grad_()
        torch.nn.functional.max_pool2d(xr, (ph, pw), stride).backward(dout)
        assert_close(dx, xr.grad, f"Pooling({ph}, {pw}, stride={stride}).backward on x of shape {(N, C, H, W)}",
                     rtol=1e-12, hint=student.hint("Pooling.backward") or (
                         "dx is each gradient of dout put at the maximum of its window (the first one if several are "
                         "equal), and overlapping windows add theirs"))


@pytest.mark.bonus
@pytest.mark.points(1)
def test_pooling_has_no_loop_over_images_or_pixels(student):
    """Bonus: Pooling.forward and backward (and what they call) loop over the pooling window only."""
    for k, (shape, pool, stride) in enumerate(POOL_CASES):
        student.pool_forward(site(f"pool{k}/forward"), pool, pool, stride)
        student.pool_backward(site(f"pool{k}/backward"), pool, pool, stride)
    student.assert_no_loop("Pooling.forward")
    student.assert_no_loop("Pooling.backward")
