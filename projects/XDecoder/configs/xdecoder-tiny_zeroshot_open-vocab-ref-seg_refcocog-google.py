# Zero-shot referring segmentation on RefCOCOg (Google split, val) with X-Decoder focal-T.
# Data: data/coco/train2014/*.jpg, data/coco/refcocog/{instances.json,refs(google).p}.
# Checkpoint: xdecoder_focalt_last_novg.pt.
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/refcocog_google.py',
    '_base_/default_runtime.py'
]
model = dict(task='referring')
