# Zero-shot open-vocabulary instance segmentation on ADE20K-150 val (100 thing classes) with
# X-Decoder focal-T. Checkpoint: xdecoder_focalt_best_openseg.pt (published: 10.1 mask AP). Data
# (json from mmdet's tools/dataset_converters/ade20k2coco.py --task instance):
#   data/ade/ADEChallengeData2016/images/validation/ADE_val_*.jpg
#   data/ade/ADEChallengeData2016/ade20k_instance_val.json
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/ade20k_instance.py',
    '_base_/default_runtime.py'
]
# The vocabulary is the dataset's 100 thing names (mmdet's wording: 'windowpane',
# 'television receiver', ...), as in the MMDetection port.
model = dict(task='instance', test_cfg=dict(max_per_img=100))
