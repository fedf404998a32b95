import numpy as np
from onnx import helper

from tests.helpers import check_model, make_model


def test_relu_add_roundtrip():
    c = np.arange(48, dtype=np.float32).reshape(1, 3, 4, 4)
    model = make_model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "c"], ["y"])],
                       [("x", np.float32, [1, 3, 4, 4])], [("y", np.float32, [1, 3, 4, 4])], {"c": c})
    result = check_model(model)
    assert result.op_counts == {"ADD": 1, "RELU": 1}
    check_model(model, variant="float16", tol=1e-3)
