# Zero-shot open-vocabulary instance segmentation on COCO val2017 (80 classes) with X-Decoder
# focal-T. Checkpoint: xdecoder_focalt_last_novg.pt (published: 39.7 mask AP). Data:
#   data/coco/val2017/*.jpg
#   data/coco/annotations/instances_val2017.json
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/coco_instance.py',
    '_base_/default_runtime.py'
]
# The vocabulary is the dataset's 80 classes, as in the MMDetection port; the official
# evaluation scores against all 133 panoptic names and then keeps the thing labels
# (test_cfg.instance_thing_only).
model = dict(task='instance', test_cfg=dict(max_per_img=100))
