# Zero-shot referring segmentation on RefCOCO+ (UNC split, val; testA/testB via
# --cfg-options test_dataloader.dataset.split=testA) with X-Decoder focal-T.
# Data: data/coco/train2014/*.jpg, data/coco/refcoco+/{instances.json,refs(unc).p}.
# Checkpoint: xdecoder_focalt_last_novg.pt.
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/refcoco+.py',
    '_base_/default_runtime.py'
]
model = dict(task='referring')
