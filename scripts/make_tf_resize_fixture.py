"""Write tests/metrics/data/tf_resize_bilinear.npz: TensorFlow's ResizeBilinear outputs for seeded inputs.

Run once, with TensorFlow in a separate environment (it is not a guidekit dependency)::

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu numpy
    /tmp/tfvenv/bin/python scripts/make_tf_resize_fixture.py

The resize runs the way the ADM evaluator (guided-diffusion ``evaluations/evaluator.py``) runs it: a
TF1 graph, float32 NHWC images in [0, 255] fed through a float32 placeholder, one ``ResizeBilinear``
node with ``align_corners=False`` and ``half_pixel_centers=False`` (the attributes of that node in
``classify_image_graph_def.pb``), executed by a ``tf.compat.v1.Session`` on the CPU.

Stored per case: the input (uint8 when its values are integers, as the evaluator's are; float32
otherwise), the output size, the SHA-256 of the float32 NHWC output bytes, and either the whole
output (small sizes) or every ``ROW_STRIDE``-th output row (299×299 cases) to keep the file small.
The versions used are stored in the file too (``tf_version``, ``numpy_version``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402  (after the environment above)

ROW_STRIDE = 23
FULL_OUTPUT_MAX = 160  # store the whole output when both output sides are at most this

#: name → (batch, in_h, in_w, channels, out_h, out_w, integer-valued input)
CASES = {
    "u8_8_to_299": (2, 8, 8, 3, 299, 299, True),
    "u8_16_to_299": (2, 16, 16, 3, 299, 299, True),
    "u8_32_to_299": (2, 32, 32, 3, 299, 299, True),
    "u8_64_to_299": (2, 64, 64, 3, 299, 299, True),
    "u8_256_to_299": (1, 256, 256, 3, 299, 299, True),
    "u8_17x40_to_299": (1, 17, 40, 3, 299, 299, True),
    "u8_64x48_to_299": (1, 64, 48, 3, 299, 299, True),
    "u8_1_to_299": (1, 1, 1, 3, 299, 299, True),
    "f32_32_to_299": (1, 32, 32, 3, 299, 299, False),
    "f32_24x57_to_299": (1, 24, 57, 3, 299, 299, False),
    "u8_64_to_128": (1, 64, 64, 3, 128, 128, True),
    "u8_32_to_100x77": (1, 32, 32, 3, 100, 77, True),
    "u8_301x150_to_299x140": (1, 301, 150, 3, 299, 140, True),
    "u8_256_to_64": (1, 256, 256, 3, 64, 64, True),
    "u8_5x7_to_3x11": (2, 5, 7, 3, 3, 11, True),
    "u8_grey_16_to_37": (1, 16, 16, 1, 37, 37, True),
    "u8_64_same_width": (1, 64, 48, 3, 150, 48, True),
}


def output_hash(out: np.ndarray) -> str:
    """SHA-256 of float32 NHWC bytes, with −0.0 folded into +0.0."""
    return hashlib.sha256(np.ascontiguousarray(out.astype(np.float32) + np.float32(0.0)).tobytes()).hexdigest()


def tf_resize(images: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, shape=[None, None, None, images.shape[-1]])
        y = tf.raw_ops.ResizeBilinear(images=x, size=[out_h, out_w], align_corners=False, half_pixel_centers=False)
    with tf.compat.v1.Session(graph=graph, config=tf.compat.v1.ConfigProto(device_count={"GPU": 0})) as sess:
        return sess.run(y, {x: images.astype(np.float32)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Path(__file__).resolve().parents[1] / "tests" / "metrics" / "data" / "tf_resize_bilinear.npz"
    parser.add_argument("--out", type=Path, default=default)
    parser.add_argument("--seed", type=int, default=20221101)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    data: dict[str, np.ndarray] = {
        "tf_version": np.array(tf.__version__),
        "numpy_version": np.array(np.__version__),
        "row_stride": np.array(ROW_STRIDE),
    }
    for name, (b, h, w, c, oh, ow, integer) in CASES.items():
        if integer:
            images = rng.integers(0, 256, size=(b, h, w, c), dtype=np.uint8)
        else:
            images = (rng.random(size=(b, h, w, c), dtype=np.float32) * np.float32(255.0)).astype(np.float32)
        out = tf_resize(images, oh, ow)
        assert out.dtype == np.float32 and out.shape == (b, oh, ow, c), (name, out.dtype, out.shape)
        data[f"{name}/input"] = images
        data[f"{name}/size"] = np.array([oh, ow])
        data[f"{name}/sha256"] = np.array(output_hash(out))
        if max(oh, ow) <= FULL_OUTPUT_MAX:
            data[f"{name}/output"] = out
        else:
            data[f"{name}/output_rows"] = out[:, ::ROW_STRIDE]
        print(f"{name:24s} {images.shape} -> {out.shape}  sha256 {output_hash(out)[:12]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **data)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) with TensorFlow {tf.__version__}")


if __name__ == "__main__":
    main()
