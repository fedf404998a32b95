"""End-to-end accuracy on the issue-4 corpus models: transformers, vision transformers, audio
encoders, GroupNorm diffusion blocks and graphs built from indexing / control-flow patterns.

Same procedure as ``tests/test_corpus.py`` (whose helpers are reused): convert with default flags
(plus ``overwrite_input_shape`` for symbolic non-batch dims), run the float32 file with
``onnx2litert.run_tflite`` on the manifest's reference inputs and compare with the stored ONNX
Runtime outputs (and the float16 file, with a looser cosine bound). Skipped when the corpus is
not built.
"""
from __future__ import annotations

import pytest

import onnx2litert
from tests.test_corpus import check_outputs, load_case, shape_overrides

pytestmark = pytest.mark.corpus

F32_MIN_COSINE = 0.9999
F32_MAX_RELATIVE_L2 = 1e-3
F16_MIN_COSINE = 0.999

# The stored reference of this randomly initialised model is not usable: its activations shrink
# by ~100x per block and from encoder layer.3 on lie in the float32 subnormal range (~1e-41;
# the logits are ~1e-40). ONNX Runtime computes with subnormals, LiteRT's CPU kernels flush them
# to zero, so the LiteRT logits are exactly 0 and the cosine is 0. Every intermediate tensor that
# is a normal float (through encoder layer.2) matches with cosine 1.0, and the same model with
# weights rescaled to keep activations O(1) matches ONNX Runtime with relative L2 6e-7.
_SUBNORMAL_REFERENCE = pytest.mark.xfail(
    reason="reference outputs are float32 subnormals (~1e-40) that LiteRT flushes to zero", strict=False)

MODELS = [
    "hf_bert_small", "hf_distilbert", "hf_gpt2_small", "hf_vit_small", "vit_tiny", "hf_swin_tiny",
    pytest.param("hf_mobilevit_small", marks=_SUBNORMAL_REFERENCE),
    "hf_segformer_b0", "hf_convnext_nano", "hf_whisper_tiny_encoder", "hf_wav2vec2_ctc",
    "transformer_encoder", "transformer_encoder_dynamo", "groupnorm_diffusion", "groupnorm_diffusion_op21",
    "activations_mix", "gather_topk_postproc", "scatter_cumsum", "einsum_attention", "dynamic_shape_ops",
]


@pytest.mark.parametrize("name", MODELS)
def test_issue4_corpus_model(name: str) -> None:
    rec, model_path, feeds, expected = load_case(name)
    result = onnx2litert.convert(model_path, overwrite_input_shape=shape_overrides(rec))
    got = onnx2litert.run_tflite(result.artifacts["float32"], feeds)
    check_outputs(expected, got, F32_MIN_COSINE, F32_MAX_RELATIVE_L2, f"{name} float32")
    got16 = onnx2litert.run_tflite(result.artifacts["float16"], feeds)
    check_outputs(expected, got16, F16_MIN_COSINE, None, f"{name} float16")
