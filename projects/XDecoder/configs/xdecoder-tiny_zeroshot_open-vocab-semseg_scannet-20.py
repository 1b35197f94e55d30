# Zero-shot open-vocabulary semantic segmentation on ScanNet val (20 classes).
# X-Decoder focal-T, xdecoder_focalt_best_openseg.pt (published: 38.4 mIoU).
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/scannet_20_semantic.py',
    '_base_/default_runtime.py'
]
# Semantic inference is the official argmax (model.test_cfg.semantic_score_thr=None).
model = dict(task='semantic')
