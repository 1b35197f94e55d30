# ADE20K-150 instance segmentation (100 thing classes, mmdet's ADE20KInstanceDataset names), mask
# AP with mmdet's CocoMetric. The COCO-format json comes from mmdet's
# tools/dataset_converters/ade20k2coco.py --task instance:
#   data/ade/ADEChallengeData2016/images/validation/ADE_val_*.jpg
#   data/ade/ADEChallengeData2016/ade20k_instance_val.json
# Resize as the official evaluation does: short side 640, long side at most 2560, PIL bilinear.
_base_ = './eval_loader.py'
readme_section = 'ADE20K-150 instance / panoptic'  # README.md, "Datasets": download and layout
dataset_type = 'ADE20KInstanceDataset'
data_root = 'data/ade/ADEChallengeData2016/'

test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    dict(type='ResizeShortestEdge', scale=640, max_size=2560, backend='pillow',
         interpolation='bilinear'),
    # Ground truth at the original size, for --show-dir; the metric reads the json itself.
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text'))
]

val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ade20k_instance_val.json',
        data_prefix=dict(img='images/validation/'),
        test_mode=True,
        # The class names, in label order, go into each sample's 'text': the vocabulary.
        return_classes=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# The model predicts masks only (its boxes are all zero), so only 'segm' is meaningful.
# With another data_root, also point ann_file here at the same json.
val_evaluator = dict(type='CocoMetric', ann_file=data_root + 'ade20k_instance_val.json',
                     metric='segm')
test_evaluator = val_evaluator
