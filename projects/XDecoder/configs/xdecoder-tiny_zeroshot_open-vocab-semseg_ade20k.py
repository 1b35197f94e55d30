# Zero-shot open-vocabulary semantic segmentation on ADE20K-150 with X-Decoder focal-T.
# Checkpoint: xdecoder_focalt_best_openseg.pt (published: 25.13 mIoU).
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/ade20k_semantic.py',
    '_base_/default_runtime.py'
]
model = dict(task='semantic')
