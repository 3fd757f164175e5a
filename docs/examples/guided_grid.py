"""Getting started: a guided grid and a trace plot from the bundled mnist16 models (run by scripts/docs_images.py)."""

import torch

import guidekit as gk
from guidekit.io import save_grid

unet = gk.load_network("mnist16-unet")                  # bundled: weights checked against the card's sha256
classifier = gk.load_network("mnist16-classifier-ect")  # noise-aware, trained with ECT (eta = 0.2)
diffusion = gk.GaussianDiffusion.from_model(unet, respacing="ddim25")  # the process the UNet was trained with

trace = gk.GuidanceTrace()
y = torch.arange(16) % 10                                     # the classes to draw: 0..9, 0..5
x0 = gk.sample(unet, diffusion, (16, 1, 16, 16), sampler="ddim",
               guidance=gk.ClassifierGuidance(classifier, "entropy", gamma=4.0),  # EDS, paper Eq. 10
               y=y, seed=0, callback=trace)
save_grid(x0, "grid.png")     # 16 digits of 16x16: enlarged 4x to a 296-pixel-wide PNG
trace.plot("trace.png")       # entropy, p(y|x_t), gradient norm, scale per step (needs guidekit[plot])
