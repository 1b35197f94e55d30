# Zero-shot open-vocabulary semantic segmentation on ADE20K-150 with X-Decoder Focal-L.
# Checkpoint: xdecoder_focall_last.pt.
_base_ = [
    '_base_/models/xdecoder_focall.py', '_base_/datasets/ade20k_semantic.py',
    '_base_/default_runtime.py'
]
model = dict(task='semantic')
