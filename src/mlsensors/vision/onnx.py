"""One onnxruntime session from verified model bytes, set up the same way for every ONNX
model (YuNet, RetinaFace): CPU only, quiet, idle threads asleep."""

from __future__ import annotations

from mlsensors.errors import ModelError


def onnx_session(model_bytes: bytes, threads: int | None, what: str):
    """An `onnxruntime.InferenceSession` of `model_bytes`; ModelError if it cannot load."""
    from mlsensors.vision.model import default_threads, native_notices_filtered

    with native_notices_filtered():
        import onnxruntime as ort

        ort.set_default_logger_severity(3)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    # idle threads sleep instead of spinning: on a busy CPU spinning stole the time
    # of the sensor's other work (measured 0.86 → 0.62 of a BlazeFace invoke)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        with native_notices_filtered():
            return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own untyped errors
        raise ModelError(f"onnxruntime cannot load the {what} model: {e}") from None
