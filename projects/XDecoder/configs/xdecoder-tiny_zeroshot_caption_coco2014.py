# Zero-shot image captioning on the COCO Karpathy test split with X-Decoder focal-T.
# Data: data/coco/val2014/*.jpg,
#       data/coco/annotations/{coco_karpathy_test.json,coco_karpathy_test_gt.json}.
# Checkpoint: xdecoder_focalt_last_novg.pt. Needs Java (PTB tokenizer, METEOR).
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/coco_caption.py',
    '_base_/default_runtime.py'
]
# The official evaluation keeps the text before the first period.
model = dict(task='caption', test_cfg=dict(caption_cut_at_period=True))
