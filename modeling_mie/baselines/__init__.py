"""The compared methods' features and classifier: LBP-TOP, onset -> apex TV-L1 flow and strain, Bi-WOOF, linear SVM.

Tools for the baselines of the seed paper's Table 2 (issue 13); not part of the Hub remote code.
`docs/baselines.md` describes each feature and what was chosen where the papers leave room.

    from modeling_mie.baselines import grey_face_volume, lbp_top, biwoof, LinearSVM

    clip = grey_face_volume(row["frames"], row["onset_index"], row["apex_index"], row["offset_index"],
                            face_box=box)                       # (T, 128, 128) uint8
    x_lbp = lbp_top(clip.volume)                                # (4425,)
    x_woof = biwoof(clip.volume[clip.onset], clip.volume[clip.apex], cache_dir="flows")  # (200,)
    predictions = LinearSVM().fit(train_x, train_y).predict(test_x)

scikit-learn (the SVM) is an optional dependency: `pip install 'modeling_mie[baselines]'`; it is
imported only when an SVM is fitted.
"""

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
from .inputs import DEFAULT_CROP_SIZE, FaceVolume, face_box_of, grey_face_volume
from .lbptop import lbp_codes, lbp_top, lbp_top_size, num_bins, plane_offsets, uniform_lbp_table
from .svm import LinearSVM, fit_predict

__all__ = [
    "DEFAULT_CROP_SIZE",
    "FaceVolume",
    "LinearSVM",
    "OnsetApexFlow",
    "TVL1_SETTINGS",
    "biwoof",
    "biwoof_features",
    "face_box_of",
    "fit_predict",
    "flow_cache_key",
    "grey_face_volume",
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
