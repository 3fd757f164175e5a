"""Worker of test_torchrun_two_processes_equal_one: a few classifier steps, under torchrun or alone."""

from __future__ import annotations

import sys

import guidekit_adm as adm
import torch

import guidekit as gk
from guidekit.data import load_dataset

FLAGS = ("--image_size 8 --in_channels 1 --num_classes 10 --classifier_width 32 --classifier_depth 1 "
         "--channel_mult 1,2 --classifier_attention_resolutions 2")


def train_once() -> dict:
    torch.set_num_threads(1)
    d = load_dataset("digits")
    torch.manual_seed(0)
    clf = adm.create_model(FLAGS)
    init = {k: v.clone() for k, v in clf.state_dict().items()}
    cfg = gk.TrainConfig(steps=3, batch_size=16, lr=1e-3, log_every=1, loss="ect", loss_params={"eta": 0.2})
    res = gk.train_classifier(clf, d.images, d.labels, gk.GaussianDiffusion.create(steps=100), cfg, progress=False)
    return {"records": [r["loss"] for r in res.records], "model": clf.state_dict(), "init": init}


if __name__ == "__main__":
    out = train_once()
    if torch.distributed.get_rank() == 0:
        torch.save(out, sys.argv[1])
    torch.distributed.barrier()  # no rank tears gloo down while the other still talks to it
    torch.distributed.destroy_process_group()
