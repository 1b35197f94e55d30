# Zero-shot open-vocabulary semantic segmentation on COCO val2017 (133 panoptic classes) with
# X-Decoder focal-T. Checkpoint: xdecoder_focalt_last_novg.pt (published: 62.1 mIoU). Data:
#   data/coco/val2017/*.jpg
#   data/coco/annotations/panoptic_semseg_val2017/*.png
# made from annotations/panoptic_val2017{.json,/} by
#   python tools/dataset_converters/coco_panoptic_to_semantic.py data/coco
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/coco_semantic.py',
    '_base_/default_runtime.py'
]
model = dict(task='semantic')
