"""Entry point of guidekit-mnist16: the bundled models as ``network`` components; the oracle and the
pixel PCA as ``extractor`` components (the two feature spaces ``guidekit compare`` judges in)."""

from __future__ import annotations

from .models import BUNDLE, FEATURES, NAMES, SUMMARIES

guidekit_networks, guidekit_extractors = BUNDLE.hooks(NAMES, ("mnist16-oracle", *FEATURES), SUMMARIES)
