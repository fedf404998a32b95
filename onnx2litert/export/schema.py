"""Access to the LiteRT flatbuffer schema classes shipped with ai-edge-litert.

IR operators name their builtin options by the schema's own field names (camelCase);
enum-valued fields may be given as the enum member's name (e.g. ``padding="SAME"``).
"""
from __future__ import annotations

import ml_dtypes
import numpy as np
from ai_edge_litert import schema_py_generated as S

# Builtin opcode -> builtin options table name (schema's ``BuiltinOptions`` union member).
OPTIONS_TABLE: dict[str, str] = {
    "ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions", "DIV": "DivOptions",
    "CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "CONV_3D": "Conv3DOptions", "CONV_3D_TRANSPOSE": "Conv3DOptions",
    "TRANSPOSE_CONV": "TransposeConvOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions", "L2_POOL_2D": "Pool2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions", "BATCH_MATMUL": "BatchMatMulOptions",
    "SOFTMAX": "SoftmaxOptions", "LOG_SOFTMAX": "LogSoftmaxOptions",
    "CONCATENATION": "ConcatenationOptions", "RESHAPE": "ReshapeOptions",
    "RESIZE_BILINEAR": "ResizeBilinearOptions", "RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighborOptions",
    "SPACE_TO_DEPTH": "SpaceToDepthOptions", "DEPTH_TO_SPACE": "DepthToSpaceOptions",
    "PAD": "PadOptions", "PADV2": "PadV2Options", "MIRROR_PAD": "MirrorPadOptions",
    "GATHER": "GatherOptions", "GATHER_ND": "GatherNdOptions", "TRANSPOSE": "TransposeOptions",
    "MEAN": "ReducerOptions", "SUM": "ReducerOptions", "REDUCE_MAX": "ReducerOptions",
    "REDUCE_MIN": "ReducerOptions", "REDUCE_PROD": "ReducerOptions", "REDUCE_ANY": "ReducerOptions",
    "REDUCE_ALL": "ReducerOptions",
    "SQUEEZE": "SqueezeOptions", "EXPAND_DIMS": "ExpandDimsOptions",
    "STRIDED_SLICE": "StridedSliceOptions", "SLICE": "SliceOptions",
    "SPLIT": "SplitOptions", "SPLIT_V": "SplitVOptions",
    "CAST": "CastOptions", "LEAKY_RELU": "LeakyReluOptions", "GELU": "GeluOptions",
    "LOCAL_RESPONSE_NORMALIZATION": "LocalResponseNormalizationOptions",
    "SHAPE": "ShapeOptions", "PACK": "PackOptions", "UNPACK": "UnpackOptions",
    "ARG_MAX": "ArgMaxOptions", "ARG_MIN": "ArgMinOptions", "TILE": "TileOptions",
    "MAXIMUM": "MaximumMinimumOptions", "MINIMUM": "MaximumMinimumOptions",
    "EXP": "ExpOptions", "POW": "PowOptions", "ABS": "AbsOptions", "NEG": "NegOptions",
    "SQUARED_DIFFERENCE": "SquaredDifferenceOptions", "SELECT": "SelectOptions",
    "SELECT_V2": "SelectV2Options", "EQUAL": "EqualOptions", "NOT_EQUAL": "NotEqualOptions",
    "LESS": "LessOptions", "LESS_EQUAL": "LessEqualOptions", "GREATER": "GreaterOptions",
    "GREATER_EQUAL": "GreaterEqualOptions", "LOGICAL_AND": "LogicalAndOptions",
    "LOGICAL_OR": "LogicalOrOptions", "LOGICAL_NOT": "LogicalNotOptions",
    "FLOOR_DIV": "FloorDivOptions", "FLOOR_MOD": "FloorModOptions", "SQUARE": "SquareOptions",
    "FILL": "FillOptions", "ONE_HOT": "OneHotOptions", "RANGE": "RangeOptions",
    "TOPK_V2": "TopKV2Options", "CUMSUM": "CumsumOptions", "BROADCAST_TO": "BroadcastToOptions",
    "SCATTER_ND": "ScatterNdOptions", "WHERE": "WhereOptions", "REVERSE_V2": "ReverseV2Options",
    "BATCH_TO_SPACE_ND": "BatchToSpaceNDOptions", "SPACE_TO_BATCH_ND": "SpaceToBatchNDOptions",
    "HARD_SWISH": "HardSwishOptions", "RANK": "RankOptions", "ZEROS_LIKE": "ZerosLikeOptions",
    "IF": "IfOptions", "WHILE": "WhileOptions", "L2_NORMALIZATION": "L2NormOptions",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTMOptions",
    "BIDIRECTIONAL_SEQUENCE_LSTM": "BidirectionalSequenceLSTMOptions",
    "UNIDIRECTIONAL_SEQUENCE_RNN": "SequenceRNNOptions",
    "MATRIX_DIAG": "MatrixDiagOptions", "MATRIX_SET_DIAG": "MatrixSetDiagOptions",
    "DEQUANTIZE": "DequantizeOptions", "QUANTIZE": "QuantizeOptions",
    "NON_MAX_SUPPRESSION_V4": "NonMaxSuppressionV4Options",
    "NON_MAX_SUPPRESSION_V5": "NonMaxSuppressionV5Options",
    "SEGMENT_SUM": "SegmentSumOptions", "UNIQUE": "UniqueOptions", "ADD_N": "AddNOptions",
    "BITWISE_XOR": "BitwiseXorOptions",
    "RIGHT_SHIFT": "RightShiftOptions", "SIGN": "SignOptions",
    "REVERSE_SEQUENCE": "ReverseSequenceOptions", "RANDOM_UNIFORM": "RandomOptions",
    "RANDOM_STANDARD_NORMAL": "RandomOptions", "BUCKETIZE": "BucketizeOptions",
    "DYNAMIC_UPDATE_SLICE": "DynamicUpdateSliceOptions",
    "UNSORTED_SEGMENT_SUM": "UnsortedSegmentSumOptions",
    "UNSORTED_SEGMENT_MAX": "UnsortedSegmentMaxOptions",
    "UNSORTED_SEGMENT_MIN": "UnsortedSegmentMinOptions",
    "UNSORTED_SEGMENT_PROD": "UnsortedSegmentProdOptions",
}

# Option fields whose values are schema enums (accepted as names in the IR).
ENUM_FIELDS: dict[str, type] = {
    "padding": S.Padding,
    "fusedActivationFunction": S.ActivationFunctionType,
    "mode": S.MirrorPadMode,
    "inDataType": S.TensorType, "outDataType": S.TensorType,
    "outType": S.TensorType, "outputType": S.TensorType, "idxOutType": S.TensorType,
    "weightsFormat": S.FullyConnectedOptionsWeightsFormat,
    "kernelType": S.LSTMKernelType,
    "quantizedBiasType": S.TensorType,
}

_NP_TO_TFL = {
    np.dtype(np.float32): S.TensorType.FLOAT32, np.dtype(np.float16): S.TensorType.FLOAT16,
    np.dtype(np.float64): S.TensorType.FLOAT64, np.dtype(np.int32): S.TensorType.INT32,
    np.dtype(np.int64): S.TensorType.INT64, np.dtype(np.int16): S.TensorType.INT16,
    np.dtype(np.int8): S.TensorType.INT8, np.dtype(np.uint8): S.TensorType.UINT8,
    np.dtype(np.uint16): S.TensorType.UINT16, np.dtype(np.uint32): S.TensorType.UINT32,
    np.dtype(np.uint64): S.TensorType.UINT64, np.dtype(np.bool_): S.TensorType.BOOL,
    np.dtype(np.complex64): S.TensorType.COMPLEX64,
    # numpy has no bfloat16; ml_dtypes (an onnx dependency) provides the dtype onnx.numpy_helper uses.
    np.dtype(ml_dtypes.bfloat16): S.TensorType.BFLOAT16,
}

TENSOR_TYPE_NAMES = {v: k for k, v in vars(S.TensorType).items() if not k.startswith("_")}


def tensor_type(dtype: np.dtype) -> int:
    """LiteRT ``TensorType`` for a numpy dtype."""
    return _NP_TO_TFL[np.dtype(dtype)]


def tensor_type_name(dtype: np.dtype) -> str:
    return TENSOR_TYPE_NAMES[tensor_type(dtype)]


def builtin_code(opcode: str) -> int:
    return getattr(S.BuiltinOperator, opcode)


def options_union(opcode: str, options: dict) -> tuple[int, object | None]:
    """Build the (union type, options object) pair for an operator."""
    table = OPTIONS_TABLE.get(opcode)
    if table is None:
        if options:
            raise ValueError(f"{opcode} takes no builtin options, got {options}")
        return 0, None
    obj = getattr(S, table + "T")()
    for key, value in options.items():
        if not hasattr(obj, key):
            raise ValueError(f"{table} has no field '{key}'")
        if key in ENUM_FIELDS and isinstance(value, str):
            value = getattr(ENUM_FIELDS[key], value)
        elif isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
            value = tensor_type(np.dtype(value))
        setattr(obj, key, value)
    return getattr(S.BuiltinOptions, table), obj
