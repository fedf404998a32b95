"""RotaryEmbedding, Swish, SwiGLU, CausalConvWithState: LiteRT vs ONNX Runtime (or the ONNX reference
evaluator where ONNX Runtime does not implement the opset yet)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from onnx2litert.lower.registry import REGISTRY
from tests.helpers import check_model, check_reference, expect_failure, make_model, single_op_model

F32 = np.float32


def _rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(F32)


# -- registry: definitions newer than VERIFIED_OPSET are found -------------------------------------
@pytest.mark.parametrize("op,opset", [("Swish", 24), ("Swish", 28), ("SwiGLU", 28), ("RotaryEmbedding", 23),
                                      ("RotaryEmbedding", 26), ("CausalConvWithState", 27)])
def test_registered(op: str, opset: int) -> None:
    assert REGISTRY.find("", op, opset) is not None


# -- Swish / SwiGLU --------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [None, 1.702])
def test_swish(alpha: float | None) -> None:
    attrs = {} if alpha is None else {"alpha": alpha}
    model = single_op_model("Swish", [("x", F32, [2, 3, 4])], [2, 3, 4], opset=24, **attrs)
    check_model(model, {"x": (_rand(np.random.default_rng(0), 2, 3, 4) * 4).astype(F32)})


@pytest.mark.parametrize("alpha", [None, 0.5])
def test_swiglu(alpha: float | None) -> None:
    attrs = {} if alpha is None else {"alpha": alpha}
    model = single_op_model("SwiGLU", [("a", F32, [2, 5]), ("b", F32, [2, 5])], [2, 5], opset=28, **attrs)
    rng = np.random.default_rng(1)
    check_reference(model, {"a": _rand(rng, 2, 5) * 3, "b": _rand(rng, 2, 5)})


def test_swiglu_float16_refused() -> None:
    model = single_op_model("SwiGLU", [("a", np.float16, [2, 5]), ("b", np.float16, [2, 5])], [2, 5], opset=28)
    expect_failure(model, "unsupported_dtype")


# -- RotaryEmbedding -------------------------------------------------------------------------------
def _rope_model(x_shape: list[int], cache_shape: list[int], pos_shape: list[int] | None,
                **attrs: object) -> onnx.ModelProto:
    inputs = [("x", F32, x_shape), ("cos", F32, cache_shape), ("sin", F32, cache_shape)]
    if pos_shape is not None:
        inputs.append(("pos", np.int64, pos_shape))
    return single_op_model("RotaryEmbedding", inputs, x_shape, opset=23, **attrs)


def _rope_feeds(model: onnx.ModelProto, max_pos: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in model.graph.input:
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if vi.name == "pos":
            feeds["pos"] = rng.integers(0, max_pos, shape).astype(np.int64)
        elif vi.name in ("cos", "sin"):
            angle = rng.uniform(0, 6.3, shape).astype(F32)
            feeds[vi.name] = (np.cos(angle) if vi.name == "cos" else np.sin(angle)).astype(F32)
        else:
            feeds[vi.name] = _rand(rng, *shape)
    return feeds


@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("rot_dim", [0, 4])
@pytest.mark.parametrize("with_pos", [True, False])
def test_rotary_embedding_4d(interleaved: int, rot_dim: int, with_pos: bool) -> None:
    b, h, s, d = 2, 3, 4, 8
    half = (rot_dim or d) // 2
    model = _rope_model([b, h, s, d], [10, half] if with_pos else [b, s, half], [b, s] if with_pos else None,
                        interleaved=interleaved, rotary_embedding_dim=rot_dim)
    check_model(model, _rope_feeds(model, 10))


@pytest.mark.parametrize("interleaved", [0, 1])
def test_rotary_embedding_3d_num_heads(interleaved: int) -> None:
    b, s, heads, d = 2, 3, 2, 6
    model = _rope_model([b, s, heads * d], [7, d // 2], [b, s], interleaved=interleaved, num_heads=heads)
    check_model(model, _rope_feeds(model, 7, seed=3))


def test_rotary_embedding_constant_caches() -> None:
    """Constant caches with run-time position ids: a GATHER from a constant table."""
    b, h, s, d = 1, 2, 3, 4
    rng = np.random.default_rng(5)
    angle = rng.uniform(0, 6.3, (6, d // 2)).astype(F32)
    model = single_op_model("RotaryEmbedding", [("x", F32, [b, h, s, d]), ("pos", np.int64, [b, s])], [b, h, s, d],
                            opset=23, input_names=["x", "cos", "sin", "pos"],
                            initializers={"cos": np.cos(angle), "sin": np.sin(angle)})
    check_model(model, {"x": _rand(rng, b, h, s, d), "pos": np.array([[5, 0, 2]], np.int64)})


def test_rotary_embedding_3d_without_num_heads_fails() -> None:
    model = _rope_model([1, 2, 8], [4, 4], [1, 2])
    expect_failure(model, "invalid_model")


# -- CausalConvWithState ---------------------------------------------------------------------------
@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("with_past", [False, True])
@pytest.mark.parametrize("activation", [None, "silu", "swish"])
def test_causal_conv_with_state(k: int, with_bias: bool, with_past: bool, activation: str | None) -> None:
    b, c, length = 2, 3, 5
    rng = np.random.default_rng(k + 2 * with_bias + 4 * with_past)
    inputs = [("x", F32, [b, c, length]), ("w", F32, [c, 1, k])]
    feeds = {"x": _rand(rng, b, c, length), "w": _rand(rng, c, 1, k)}
    names = ["x", "w", "", ""]
    if with_bias:
        inputs.append(("bias", F32, [c]))
        feeds["bias"] = _rand(rng, c)
        names[2] = "bias"
    if with_past:
        inputs.append(("past", F32, [b, c, k - 1]))
        feeds["past"] = _rand(rng, b, c, k - 1)
        names[3] = "past"
    attrs = {} if activation is None else {"activation": activation}
    node = helper.make_node("CausalConvWithState", names, ["y", "state"], **attrs)
    out_specs = [("y", F32, [b, c, length]), ("state", F32, [b, c, k - 1])]
    model = make_model([node], inputs, out_specs, opset=27)
    check_reference(model, feeds)


def test_causal_conv_k1_with_state_output_fails() -> None:
    node = helper.make_node("CausalConvWithState", ["x", "w"], ["y", "state"])
    model = make_model([node], [("x", F32, [1, 2, 3]), ("w", F32, [2, 1, 1])],
                       [("y", F32, [1, 2, 3]), ("state", F32, [1, 2, 0])], opset=27)
    expect_failure(model, "unsupported_attribute_value")


# -- LinearAttention -------------------------------------------------------------------------------
def linear_attention_model(b: int, t: int, hq: int, hkv: int, dk: int, dv: int, rule: str, *,
                           past: bool = False, decay: str | None = None, beta: int | None = None,
                           dtype=F32, **attrs: object) -> onnx.ModelProto:
    """One LinearAttention node; ``decay`` is 'head' (B, T, H_kv) or 'key' (B, T, H_kv*d_k), ``beta``
    the last dim of beta (H_kv or 1)."""
    inputs = [("query", dtype, [b, t, hq * dk]), ("key", dtype, [b, t, hkv * dk]), ("value", dtype, [b, t, hkv * dv])]
    names = ["query", "key", "value", "", "", ""]
    if past:
        names[3] = "past_state"
        inputs.append(("past_state", dtype, [b, hkv, dk, dv]))
    if decay is not None:
        names[4] = "decay"
        inputs.append(("decay", dtype, [b, t, hkv if decay == "head" else hkv * dk]))
    if beta is not None:
        names[5] = "beta"
        inputs.append(("beta", dtype, [b, t, beta]))
    while not names[-1]:
        names.pop()
    node = helper.make_node("LinearAttention", names, ["output", "present_state"], q_num_heads=hq, kv_num_heads=hkv,
                            update_rule=rule, **attrs)
    outs = [("output", dtype, [b, t, hq * dv]), ("present_state", dtype, [b, hkv, dk, dv])]
    return make_model([node], inputs, outs, None, 27)


def _linear_feeds(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs in the ranges the op is used with: decay <= 0 (log space), beta in (0, 1)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in model.graph.input:
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        x = rng.standard_normal(shape)
        if vi.name == "decay":
            x = -np.abs(x) * 0.5
        elif vi.name == "beta":
            x = 1.0 / (1.0 + np.exp(-x))
        elif vi.name == "key":
            x = x / np.linalg.norm(x.reshape(shape[0], shape[1], -1, 4), axis=-1, keepdims=True).repeat(4, -1) \
                .reshape(shape)
        feeds[vi.name] = x.astype(dtype)
    return feeds


@pytest.mark.parametrize("rule,decay,beta", [("linear", None, None), ("gated", "key", None), ("gated", "head", None),
                                             ("delta", None, 2), ("gated_delta", "key", 2),
                                             ("gated_delta", "head", 1)],
                         ids=["linear", "gated_key", "gated_head", "delta", "gated_delta", "gated_delta_beta1"])
@pytest.mark.parametrize("past", [False, True], ids=["nopast", "past"])
def test_linear_attention_rules(rule, decay, beta, past):
    model = linear_attention_model(2, 3, 2, 2, 4, 4, rule, past=past, decay=decay, beta=beta)
    check_reference(model, _linear_feeds(model))


@pytest.mark.parametrize("hq,hkv,t", [(4, 2, 3), (4, 1, 2), (2, 2, 1)], ids=["gqa", "mqa", "decode_t1"])
def test_linear_attention_heads_and_steps(hq, hkv, t):
    model = linear_attention_model(2, t, hq, hkv, 4, 3, "gated_delta", past=True, decay="key", beta=hkv)
    check_reference(model, _linear_feeds(model, seed=1))


def test_linear_attention_explicit_scale():
    model = linear_attention_model(1, 3, 2, 2, 4, 4, "linear", scale=0.25)
    check_reference(model, _linear_feeds(model, seed=2))


def test_linear_attention_float16():
    model = linear_attention_model(2, 3, 4, 2, 4, 4, "gated_delta", past=True, decay="key", beta=2,
                                   dtype=np.float16)
    check_reference(model, _linear_feeds(model, seed=3), tol=1e-3)  # float16 outputs: half-precision rounding


def test_linear_attention_float16_activations_float32_state():
    """past_state (type S) may differ from the activations (T): present_state keeps S."""
    model = linear_attention_model(1, 2, 2, 2, 4, 4, "gated", past=True, decay="head", dtype=np.float16)
    model.graph.input[3].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    model.graph.output[1].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    check_reference(model, _linear_feeds(model, seed=4), tol=1e-3)


@pytest.mark.parametrize("rule,decay,beta,attrs", [("linear", "key", None, {}), ("gated", None, None, {}),
                                                   ("delta", None, None, {}), ("other", None, None, {})],
                         ids=["linear_with_decay", "gated_no_decay", "delta_no_beta", "bad_rule"])
def test_linear_attention_invalid_fails(rule, decay, beta, attrs):
    model = linear_attention_model(1, 2, 2, 2, 4, 4, "linear", decay=decay, beta=beta, **attrs)
    for a in model.graph.node[0].attribute:
        if a.name == "update_rule":
            a.s = rule.encode()
    expect_failure(model, "invalid_model")


def test_linear_attention_registered():
    assert REGISTRY.find("", "LinearAttention", 27) is not None
