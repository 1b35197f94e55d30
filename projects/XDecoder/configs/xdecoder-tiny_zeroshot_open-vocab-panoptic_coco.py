# Zero-shot open-vocabulary panoptic segmentation on COCO val2017 (133 classes) with X-Decoder
# focal-T. Checkpoint: xdecoder_focalt_last_novg.pt (published: 51.16 PQ). Data:
#   data/coco/val2017/*.jpg
#   data/coco/annotations/panoptic_val2017.json
#   data/coco/annotations/panoptic_val2017/*.png
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/coco_panoptic.py',
    '_base_/default_runtime.py'
]
# The official thresholds. The MMDetection port keeps queries from class score 0.4 instead
# (51.42 PQ): --cfg-options model.test_cfg.object_mask_thr=0.4
model = dict(task='panoptic', test_cfg=dict(object_mask_thr=0.8, overlap_thr=0.8))
