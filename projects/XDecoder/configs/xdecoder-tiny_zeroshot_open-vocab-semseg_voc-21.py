# Zero-shot open-vocabulary semantic segmentation on PASCAL VOC 2012 (21 classes).
# X-Decoder focal-T, xdecoder_focalt_best_openseg.pt (no published X-Decoder number).
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/voc_21_semantic.py',
    '_base_/default_runtime.py'
]
# Semantic inference is the official argmax; 'background' is one of the 21 classes.
model = dict(task='semantic', test_cfg=dict(repeated_names=True))
