# Zero-shot image-text retrieval (recall@1/5/10, both directions) on the COCO Karpathy test split
# with X-Decoder focal-T.
# Data: data/coco/val2014/*.jpg, data/coco/annotations/coco_karpathy_test.json.
# Checkpoint: xdecoder_focalt_last_novg.pt.
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/coco_retrieval.py',
    '_base_/default_runtime.py'
]
# retrieval_ensemble=True is the official score 0.5 * cos(global query) + 0.5 * cos(pooled
# res5 @ backbone_proj); False scores with the global query alone.
model = dict(task='retrieval', test_cfg=dict(retrieval_ensemble=True))
