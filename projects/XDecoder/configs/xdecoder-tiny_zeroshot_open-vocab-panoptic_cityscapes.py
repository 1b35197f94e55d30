# Zero-shot open-vocabulary panoptic segmentation on Cityscapes val (19 classes).
# X-Decoder focal-T, xdecoder_focalt_best_openseg.pt (published: 37.7 PQ).
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/cityscapes_panoptic.py',
    '_base_/default_runtime.py'
]
# The official evaluation keeps queries from class score 0.4 on Cityscapes (0.8 elsewhere).
model = dict(task='panoptic', test_cfg=dict(object_mask_thr=0.4, overlap_thr=0.8))
