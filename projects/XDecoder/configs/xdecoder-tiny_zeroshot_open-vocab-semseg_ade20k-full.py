# Zero-shot open-vocabulary semantic segmentation on ADE20K-full (847 classes).
# X-Decoder focal-T, xdecoder_focalt_best_openseg.pt (published: 6.2 mIoU).
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/ade20k_full_semantic.py',
    '_base_/default_runtime.py'
]
# Semantic inference is the official argmax; the official vocabulary repeats nine names.
model = dict(task='semantic', test_cfg=dict(repeated_names=True))
