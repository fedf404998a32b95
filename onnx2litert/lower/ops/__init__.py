"""Op-family modules; importing this package registers every lowering.

Where is op X lowered? ``grep -rn '"X"' onnx2litert/lower/ops`` — each module is one family:

- activation:    Relu, LeakyRelu, PRelu, Elu, Selu, Clip, Sigmoid, HardSigmoid, HardSwish, Tanh,
                 Softplus, Mish, Gelu, Erf
- elementwise:   Add, Sub, Mul, Div, Pow, Sqrt, Exp, Log, Abs, Neg, Reciprocal, Min, Max, Sum, Mean, Cast
- conv:          Conv (1D/2D/3D), ConvTranspose
- pool:          MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, LRN
- resize:        Resize, Upsample, DepthToSpace, SpaceToDepth
- tensor:        Flatten, Reshape, Transpose, Concat, Split, Slice, Squeeze, Unsqueeze, Pad, Gather,
                 Shape, Size, ConstantOfShape, Identity, Constant
- normalization: BatchNormalization, InstanceNormalization, Softmax, LogSoftmax
- matmul:        Gemm, MatMul
- reduce:        ReduceMean, ReduceMax, ReduceMin, ReduceSum, ReduceProd, ReduceL2
- logic:         Equal, Greater(OrEqual), Less(OrEqual), And, Or, Xor, Not, Where, IsNaN, IsInf, Sign,
                 BitShift, BitwiseAnd/Or/Xor/Not, OptionalHasElement/OptionalGetElement (plain tensors)
- attention:     Attention (opset 23)
- transformer:   RotaryEmbedding, Swish, SwiGLU, CausalConvWithState
- array_ops:     CumProd, ReverseSequence, CenterCropPad, Col2Im, AffineGrid, TensorScatter,
                 BitCast, Det, Hardmax, MaxUnpool, LpPool
- loss:          SoftmaxCrossEntropyLoss, NegativeLogLikelihoodLoss
- vision:        GridSample, RoiAlign, NonMaxSuppression, DeformConv, SpaceToDepth (opset 28, mode)
- signal:        DFT, STFT
- indexing:      ArgMax, ArgMin, GatherND, GatherElements, ScatterND, ScatterElements, OneHot, TopK, CumSum,
                 Range, Tile, Expand, Trilu, EyeLike, NonZero, Compress, Scatter (opset 9-10)
- quantized:     QuantizeLinear, DequantizeLinear, QLinearConv, QLinearMatMul, QLinearAdd, QLinearMul,
                 QLinearAveragePool, QLinearConcat, MatMulInteger, ConvInteger, DynamicQuantizeLinear
- rnn:           LSTM, GRU, RNN
- control_flow:  If (IF with then/else subgraphs), Loop (unrolled, or WHILE), Scan (unrolled)
- math_unary:    Floor, Ceil, Round, Mod, Sin, Cos, Tan, Asin, Acos, Atan, Sinh, Cosh, Asinh, Acosh, Atanh
- ml:            ai.onnx.ml Binarizer, ArrayFeatureExtractor, TreeEnsemble
- text:          TfIdfVectorizer
"""
from . import (activation, array_ops, attention, control_flow, conv, elementwise, indexing, logic, loss,  # noqa: F401
               math_unary, matmul, ml, normalization, pool, quantized, reduce, resize, rnn, signal, tensor,
               text, transformer, vision)
