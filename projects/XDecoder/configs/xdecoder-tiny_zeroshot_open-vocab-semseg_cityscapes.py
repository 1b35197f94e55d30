# Zero-shot open-vocabulary semantic segmentation on Cityscapes val (19 classes).
# X-Decoder focal-T, xdecoder_focalt_best_openseg.pt (published: 50.2 mIoU).
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/cityscapes_semantic.py',
    '_base_/default_runtime.py'
]
# Semantic inference is the official argmax (model.test_cfg.semantic_score_thr=None).
model = dict(task='semantic')
