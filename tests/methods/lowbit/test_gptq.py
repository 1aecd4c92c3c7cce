import pytest
import torch

from quantbench.methods.lowbit.gptq import (
    GPTQCholeskyError,
    GPTQInfo,
    accumulate_hessian,
    gptq_quantize,
)
from quantbench.methods.lowbit.grid import rtn_quantize

OUT, IN, TOKENS = 64, 128, 2048


def _inputs(seed, rank=IN, dead=()):
    """Correlated, anisotropic inputs [TOKENS, IN]: (Z @ A) * s, s log-normal (heavy-tailed)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(TOKENS, rank, generator=gen)
    mixing = torch.randn(rank, IN, generator=gen) / rank**0.5
    x = (z @ mixing) * torch.exp(torch.randn(IN, generator=gen))
    x[:, list(dead)] = 0.0
    return x


def _weights(seed):
    return torch.randn(OUT, IN, generator=torch.Generator().manual_seed(1000 + seed))


def _hessian(x):
    H, _ = accumulate_hessian(None, 0, x)
    return H


def _output_error(w, lw, x):
    """||W X^T - Q X^T||^2: the layer-output error GPTQ minimizes."""
    return float(((w - lw.dequantize()) @ x.T).pow(2).sum())


# ---- Hessian ---------------------------------------------------------------------------------


def test_accumulate_hessian_in_chunks_equals_two_over_n_xtx():
    x = _inputs(0)[:1000]
    H, n = None, 0
    for chunk in (x[:100], x[100:101], x[101:].reshape(29, 31, IN)):  # leading dims flattened
        H, n = accumulate_hessian(H, n, chunk)
    assert n == 1000 and H.dtype == torch.float32
    expected = 2.0 / 1000 * (x.double().T @ x.double())
    assert torch.allclose(H.double(), expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


def test_accumulate_hessian_does_not_modify_the_given_h():
    H, n = accumulate_hessian(None, 0, torch.ones(4, 3))
    before = H.clone()
    accumulate_hessian(H, n, torch.randn(5, 3))
    assert torch.equal(H, before)


# ---- quality against RTN ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("bits,group_size", [(4, -1), (4, 32), (3, -1), (3, 32)])
def test_gptq_output_error_clearly_below_rtn(seed, bits, group_size):
    x, w = _inputs(seed), _weights(seed)
    lw, info = gptq_quantize(w, _hessian(x), bits, group_size)
    rtn = rtn_quantize(w, bits, group_size)
    assert isinstance(info, GPTQInfo) and info.cholesky_retries == 0 and info.dead_columns == 0
    assert _output_error(w, lw, x) < 0.9 * _output_error(w, rtn, x)


def test_gptq_on_low_rank_inputs_is_far_below_rtn():
    x, w = _inputs(2, rank=16), _weights(2)
    lw, _ = gptq_quantize(w, _hessian(x), 4)
    assert _output_error(w, lw, x) < 0.2 * _output_error(w, rtn_quantize(w, 4), x)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("group_size", [-1, 32])
def test_act_order_is_not_worse(seed, group_size):
    x, w = _inputs(seed), _weights(seed)
    H = _hessian(x)
    plain, _ = gptq_quantize(w, H, 4, group_size)
    ordered, _ = gptq_quantize(w, H, 4, group_size, act_order=True)
    assert _output_error(w, ordered, x) <= 1.01 * _output_error(w, plain, x)


@pytest.mark.parametrize("group_size", [-1, 32])
def test_diagonal_hessian_reduces_to_rtn(group_size):
    """With uncorrelated inputs there is nothing to compensate: GPTQ must equal RTN exactly."""
    w = _weights(3)
    H = torch.diag(torch.rand(IN, generator=torch.Generator().manual_seed(3)) + 0.1)
    lw, _ = gptq_quantize(w, H, 4, group_size)
    rtn = rtn_quantize(w, 4, group_size)
    assert torch.equal(lw.q, rtn.q)
    assert torch.equal(lw.scales, rtn.scales) and torch.equal(lw.zeros, rtn.zeros)


# ---- lazy blocks, groups, act-order ----------------------------------------------------------


@pytest.mark.parametrize(
    "group_size,act_order,static_groups",
    [(-1, False, False), (32, False, False), (128, False, False), (48, False, False),
     (32, True, False), (32, True, True)],
)
def test_block_size_does_not_change_the_codes(group_size, act_order, static_groups):
    x, w = _inputs(4), _weights(4)
    H = _hessian(x)
    results = [gptq_quantize(w, H, 4, group_size, act_order=act_order, static_groups=static_groups,
                             block_size=bs)[0] for bs in (1, 16, 32, 128)]
    for other in results[1:]:
        assert torch.equal(other.q, results[0].q)
        assert torch.allclose(other.scales, results[0].scales, rtol=1e-5)
        assert torch.equal(other.zeros, results[0].zeros)


def test_act_order_dynamic_groups_follow_the_permutation():
    x, w = _inputs(5), _weights(5)
    H = _hessian(x)
    lw, _ = gptq_quantize(w, H, 4, 32, act_order=True)
    perm = torch.argsort(torch.diagonal(H), descending=True, stable=True)
    expected = torch.empty(IN, dtype=torch.int32)
    expected[perm] = torch.arange(IN, dtype=torch.int32) // 32
    assert lw.g_idx.dtype == torch.int32 and torch.equal(lw.g_idx, expected)
    assert not bool((lw.g_idx[1:] >= lw.g_idx[:-1]).all())  # not monotonic
    assert lw.n_groups == IN // 32


def test_static_groups_with_act_order():
    x, w = _inputs(6), _weights(6)
    lw, _ = gptq_quantize(w, _hessian(x), 4, 32, act_order=True, static_groups=True)
    assert torch.equal(lw.g_idx, torch.arange(IN, dtype=torch.int32) // 32)
    rtn = rtn_quantize(w, 4, 32)  # static grids come from the original weights, like RTN's
    assert torch.equal(lw.scales, rtn.scales) and torch.equal(lw.zeros, rtn.zeros)
    assert _output_error(w, lw, x) < 0.9 * _output_error(w, rtn, x)


def test_per_row_group_index_is_zero_and_inputs_untouched():
    x, w = _inputs(7), _weights(7).half()
    H = _hessian(x)
    w_before, H_before = w.clone(), H.clone()
    lw, _ = gptq_quantize(w, H, 4, act_order=True)
    assert torch.equal(lw.g_idx, torch.zeros(IN, dtype=torch.int32)) and lw.n_groups == 1
    assert lw.scales.dtype == torch.float32 and lw.q.dtype == torch.uint8
    assert torch.equal(w, w_before) and torch.equal(H, H_before)


# ---- singular and broken Hessians ------------------------------------------------------------


@pytest.mark.parametrize("act_order", [False, True])
def test_dead_inputs_get_zero_weights(act_order):
    dead = [3, 40, 127]
    x, w = _inputs(8, dead=dead), _weights(8)
    lw, info = gptq_quantize(w, _hessian(x), 4, 32, act_order=act_order)
    deq = lw.dequantize()
    assert info.dead_columns == len(dead)
    assert bool(torch.isfinite(deq).all())
    assert torch.equal(deq[:, dead], torch.zeros(OUT, len(dead)))
    assert _output_error(w, lw, x) < _output_error(w, rtn_quantize(w, 4, 32), x)


def test_rank_deficient_hessian_is_handled_by_damping():
    x, w = _inputs(9, rank=4), _weights(9)
    lw, info = gptq_quantize(w, _hessian(x), 3, 32)
    assert info.cholesky_retries == 0 and info.damp_used == 0.01 and info.dead_columns == 0
    assert bool(torch.isfinite(lw.dequantize()).all())
    assert _output_error(w, lw, x) < 0.2 * _output_error(w, rtn_quantize(w, 3, 32), x)


def test_failed_cholesky_is_retried_with_more_damping():
    n = 16
    v = torch.ones(n, 1) / n**0.5
    H = torch.eye(n) - 1.05 * (v @ v.T)  # one eigenvalue -0.05: damp 0.01 fails, 0.1 succeeds
    lw, info = gptq_quantize(torch.randn(4, n), H, 4, damp=0.01)
    assert info.cholesky_retries == 1
    assert info.damp_used == pytest.approx(0.1)
    assert bool(torch.isfinite(lw.dequantize()).all())


def test_unfixable_hessian_raises_a_clear_error():
    n = 8
    H = torch.eye(n)
    H[0, 1] = H[1, 0] = 1e4  # eigenvalue 1 - 1e4 with mean diagonal 1: no damping up to 100 helps
    with pytest.raises(GPTQCholeskyError, match="not positive-definite"):
        gptq_quantize(torch.randn(4, n), H, 4)


def test_non_finite_hessian_is_rejected():
    H = torch.eye(8)
    H[2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        gptq_quantize(torch.randn(4, 8), H, 4)


def test_hessian_shape_must_match_weight():
    with pytest.raises(ValueError, match="H must be"):
        gptq_quantize(torch.randn(4, 8), torch.eye(7), 4)


def test_symmetric_grid_keeps_the_midpoint_zero_and_beats_rtn():
    x, w = _inputs(10), _weights(10)
    lw, _ = gptq_quantize(w, _hessian(x), 4, 32, sym=True, act_order=True)
    assert bool((lw.zeros == 8).all())
    assert _output_error(w, lw, x) < 0.9 * _output_error(w, rtn_quantize(w, 4, 32, sym=True), x)
