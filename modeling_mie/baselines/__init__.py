"""The compared methods: LBP-TOP, onset -> apex TV-L1 flow and strain, Bi-WOOF, linear SVM, and the flow CNNs.

Tools for the baselines of the seed paper's Table 2 (issue 13); not part of the Hub remote code.
`docs/baselines.md` describes each feature and what was chosen where the papers leave room.

    from modeling_mie.baselines import grey_face_volume, lbp_top, biwoof, LinearSVM

    clip = grey_face_volume(row["frames"], row["onset_index"], row["apex_index"], row["offset_index"],
                            face_box=box)                       # (T, 128, 128) uint8
    x_lbp = lbp_top(clip.volume)                                # (4425,)
    x_woof = biwoof(clip.volume[clip.onset], clip.volume[clip.apex], cache_dir="flows")  # (200,)
    predictions = LinearSVM().fit(train_x, train_y).predict(test_x)

    motion = onset_apex_flow(clip.volume[clip.onset], clip.volume[clip.apex], cache_dir="flows")
    x = flow_net_input(motion.flow)                             # (3, 28, 28): u, v, strain
    outcome = train_flow_net("ststnet", train_x, train_y, test_x, seed=0)  # PAPER_SCHEDULES
    outcome.probabilities                                       # (test rows, 3)

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
from .flownets import (
    FAST_SCHEDULES,
    FLOW_NETS,
    INPUT_SIZE,
    PAPER_SCHEDULES,
    DualInception,
    FlowNetOutcome,
    FlowNetSchedule,
    OffApexNet,
    STSTNet,
    build_flow_net,
    flow_net_input,
    train_flow_net,
)
from .inputs import DEFAULT_CROP_SIZE, FaceVolume, face_box_of, grey_face_volume
from .lbptop import (
    lbp_codes,
    lbp_top,
    lbp_top_size,
    num_bins,
    plane_offsets,
    uniform_lbp_table,
)
from .svm import LinearSVM, fit_predict

__all__ = [
    "DEFAULT_CROP_SIZE",
    "FLOW_NETS",
    "INPUT_SIZE",
    "FAST_SCHEDULES",
    "PAPER_SCHEDULES",
    "TVL1_SETTINGS",
    "DualInception",
    "FaceVolume",
    "FlowNetOutcome",
    "FlowNetSchedule",
    "LinearSVM",
    "OffApexNet",
    "OnsetApexFlow",
    "STSTNet",
    "biwoof",
    "biwoof_features",
    "build_flow_net",
    "face_box_of",
    "fit_predict",
    "flow_cache_key",
    "flow_net_input",
    "grey_face_volume",
    "lbp_codes",
    "lbp_top",
    "lbp_top_size",
    "num_bins",
    "onset_apex_flow",
    "optical_strain",
    "orientation_bins",
    "plane_offsets",
    "train_flow_net",
    "tvl1_flow",
    "uniform_lbp_table",
]
