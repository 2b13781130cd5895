"""The compared methods' features and classifier (issue 13); not part of the Hub remote code."""

from .flowfeatures import (
    TVL1_SETTINGS,
    OnsetApexFlow,
    biwoof,
    biwoof_features,
    flow_cache_key,
    onset_apex_flow,
    optical_strain,
    orientation_bins,
    tvl1_flow,
)
from .lbptop import lbp_codes, lbp_top, lbp_top_size, num_bins, plane_offsets, uniform_lbp_table
from .svm import LinearSVM, fit_predict

__all__ = [
    "LinearSVM",
    "OnsetApexFlow",
    "TVL1_SETTINGS",
    "biwoof",
    "biwoof_features",
    "fit_predict",
    "flow_cache_key",
    "lbp_codes",
    "lbp_top",
    "lbp_top_size",
    "num_bins",
    "onset_apex_flow",
    "optical_strain",
    "orientation_bins",
    "plane_offsets",
    "tvl1_flow",
    "uniform_lbp_table",
]
