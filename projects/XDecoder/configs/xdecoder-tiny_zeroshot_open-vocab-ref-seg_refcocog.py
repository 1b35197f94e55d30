# Zero-shot referring segmentation on RefCOCOg (UMD split, val) with X-Decoder focal-T.
# Data: data/coco/train2014/*.jpg, data/coco/refcocog/{instances.json,refs(umd).p}.
# Checkpoint: xdecoder_focalt_last_novg.pt (published: 57.85 cIoU, select-first).
# Other text modes: --cfg-options test_dataloader.dataset.text_mode=original (or concat).
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/refcocog.py',
    '_base_/default_runtime.py'
]
model = dict(task='referring')
