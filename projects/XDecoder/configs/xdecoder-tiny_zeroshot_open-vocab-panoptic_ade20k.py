# Zero-shot open-vocabulary panoptic segmentation on ADE20K-150 val with X-Decoder focal-T.
# Checkpoint: xdecoder_focalt_best_openseg.pt (published: 18.97 PQ). Data (json and PNGs from
# mmdet's tools/dataset_converters/ade20k2coco.py --task panoptic):
#   data/ade/ADEChallengeData2016/images/validation/ADE_val_*.jpg
#   data/ade/ADEChallengeData2016/ade20k_panoptic_val.json
#   data/ade/ADEChallengeData2016/ade20k_panoptic_val/ADE_val_*.png
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/ade20k_panoptic.py',
    '_base_/default_runtime.py'
]
# The official thresholds. The MMDetection port keeps queries from class score 0.4 instead
# (19.11 PQ): --cfg-options model.test_cfg.object_mask_thr=0.4
model = dict(task='panoptic', test_cfg=dict(object_mask_thr=0.8, overlap_thr=0.8))
