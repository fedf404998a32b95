"""Build ``examples/tiny_cnn.onnx``: a small CNN with seeded random weights (numpy + onnx.helper only).

    python examples/make_example.py [--output examples/tiny_cnn.onnx]

Graph (input ``input`` [batch, 3, 32, 32] -> output ``probs`` [batch, 10]):

    Conv3x3(3->8) + BatchNormalization + Relu                       -> stem
    Conv3x3(8->8) + BN + Relu, Conv3x3(8->8) + BN, Add(stem), Relu   -> residual block
    MaxPool 2x2 / 2
    Conv3x3(8->16) + Clip(0, 6)                                      -> "ReLU6"
    GlobalAveragePool, Flatten, Gemm(16->10), Softmax

Opset 17, IR version 10. The file is byte-identical on every run (fixed seed, fixed names).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 10
SEED = 0


def _conv_bn(rng: np.random.Generator, prefix: str, x: str, cin: int, cout: int,
             inits: list[onnx.TensorProto], nodes: list[onnx.NodeProto]) -> str:
    """Conv 3x3 (pad 1) followed by BatchNormalization; returns the BN output name."""
    w = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))).astype(np.float32)
    b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    scale = rng.uniform(0.5, 1.5, cout).astype(np.float32)
    bias = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    mean = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    var = rng.uniform(0.5, 1.5, cout).astype(np.float32)
    for name, value in [("w", w), ("b", b), ("bn_scale", scale), ("bn_bias", bias), ("bn_mean", mean),
                        ("bn_var", var)]:
        inits.append(numpy_helper.from_array(value, f"{prefix}.{name}"))
    nodes.append(helper.make_node("Conv", [x, f"{prefix}.w", f"{prefix}.b"], [f"{prefix}.conv"],
                                  name=f"{prefix}/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("BatchNormalization",
                                  [f"{prefix}.conv", f"{prefix}.bn_scale", f"{prefix}.bn_bias",
                                   f"{prefix}.bn_mean", f"{prefix}.bn_var"],
                                  [f"{prefix}.bn"], name=f"{prefix}/BatchNormalization", epsilon=1e-5))
    return f"{prefix}.bn"


def build_model(seed: int = SEED) -> onnx.ModelProto:
    """The tiny CNN as a ModelProto (checked)."""
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    stem = _conv_bn(rng, "stem", "input", 3, 8, inits, nodes)
    nodes.append(helper.make_node("Relu", [stem], ["stem.relu"], name="stem/Relu"))
    h = _conv_bn(rng, "block.conv1", "stem.relu", 8, 8, inits, nodes)
    nodes.append(helper.make_node("Relu", [h], ["block.relu1"], name="block/Relu1"))
    h = _conv_bn(rng, "block.conv2", "block.relu1", 8, 8, inits, nodes)
    nodes.append(helper.make_node("Add", [h, "stem.relu"], ["block.add"], name="block/Add"))
    nodes.append(helper.make_node("Relu", ["block.add"], ["block.relu2"], name="block/Relu2"))
    nodes.append(helper.make_node("MaxPool", ["block.relu2"], ["pool"], name="MaxPool",
                                  kernel_shape=[2, 2], strides=[2, 2]))

    w = (rng.standard_normal((16, 8, 3, 3)) * np.sqrt(2.0 / 72)).astype(np.float32)
    b = (rng.standard_normal(16) * 0.1).astype(np.float32)
    inits += [numpy_helper.from_array(w, "head.conv.w"), numpy_helper.from_array(b, "head.conv.b"),
              numpy_helper.from_array(np.array(0.0, np.float32), "head.clip_min"),
              numpy_helper.from_array(np.array(6.0, np.float32), "head.clip_max")]
    nodes.append(helper.make_node("Conv", ["pool", "head.conv.w", "head.conv.b"], ["head.conv"],
                                  name="head/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Clip", ["head.conv", "head.clip_min", "head.clip_max"], ["head.relu6"],
                                  name="head/Clip"))
    nodes.append(helper.make_node("GlobalAveragePool", ["head.relu6"], ["gap"], name="GlobalAveragePool"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="Flatten", axis=1))

    fc_w = (rng.standard_normal((10, 16)) * 0.25).astype(np.float32)
    fc_b = (rng.standard_normal(10) * 0.1).astype(np.float32)
    inits += [numpy_helper.from_array(fc_w, "fc.w"), numpy_helper.from_array(fc_b, "fc.b")]
    nodes.append(helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc/Gemm", transB=1))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], name="Softmax", axis=-1))

    graph = helper.make_graph(
        nodes, "tiny_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 10])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="onnx2litert-examples", producer_version="1")
    model.doc_string = "Tiny CNN with seeded random weights (examples/make_example.py)"
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> None:
    """Write the model (default: next to this script)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(Path(__file__).with_name("tiny_cnn.onnx")))
    args = parser.parse_args()
    data = build_model().SerializeToString(deterministic=True)
    Path(args.output).write_bytes(data)
    print(f"wrote {args.output} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
