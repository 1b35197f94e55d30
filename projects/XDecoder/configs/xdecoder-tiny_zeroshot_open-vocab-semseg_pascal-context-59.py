# Zero-shot open-vocabulary semantic segmentation on PASCAL Context 59.
# X-Decoder focal-T, xdecoder_focalt_best_openseg.pt (no published X-Decoder number).
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/pascal_context_59_semantic.py',
    '_base_/default_runtime.py'
]
# Semantic inference is the official argmax (model.test_cfg.semantic_score_thr=None).
model = dict(task='semantic')
