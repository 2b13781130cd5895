"""The compared methods' features and classifier (issue 13); not part of the Hub remote code."""

from .lbptop import lbp_codes, lbp_top, lbp_top_size, num_bins, plane_offsets, uniform_lbp_table

__all__ = [
    "lbp_codes",
    "lbp_top",
    "lbp_top_size",
    "num_bins",
    "plane_offsets",
    "uniform_lbp_table",
]
