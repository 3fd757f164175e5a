"""Files guidekit reads and writes: sample/reference batches (:mod:`.batches`), PNG grids (:mod:`.png`).

* Batches are ``.npz`` files in the ADM evaluator layout: ``arr_0`` uint8 images (N, H, W, C),
  ``arr_1`` int64 labels (samples), and for reference batches optionally precomputed ``mu``,
  ``sigma`` (pool features) and ``mu_s``, ``sigma_s`` (spatial features).
* Every write is atomic (:mod:`.atomic`); model output becomes uint8 as ADM converts it (:mod:`.images`).
"""

from __future__ import annotations

from .atomic import atomic_write, noted, probe_writable, remove_stale_temporaries, write_error
from .batches import (
    EXPECTED_KEYS,
    IMAGE_KEY,
    LABEL_KEY,
    STAT_KEYS,
    BatchFileError,
    NpzBatch,
    SampleBatchWriter,
    load_batch,
    merge_sample_batches,
    sample_batch_name,
    write_npz,
    write_reference_batch,
    write_sample_batch,
)
from .images import to_uint8
from .lock import output_lock
from .png import encode_png, make_grid, save_grid

__all__ = [
    "output_lock",
    "EXPECTED_KEYS", "IMAGE_KEY", "LABEL_KEY", "STAT_KEYS", "BatchFileError", "NpzBatch", "SampleBatchWriter",
    "atomic_write", "encode_png", "noted", "probe_writable", "write_error", "load_batch", "make_grid", "merge_sample_batches", "sample_batch_name",
    "remove_stale_temporaries", "save_grid", "to_uint8", "write_npz", "write_reference_batch", "write_sample_batch",
]
