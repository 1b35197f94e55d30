# COCO val2017 instance segmentation (80 thing classes), mask AP with mmdet's CocoMetric:
#   data/coco/val2017/*.jpg
#   data/coco/annotations/instances_val2017.json
# Resize as the official evaluation does (detectron2): short side 800, long side at most 1333,
# PIL decode and PIL bilinear resize.
_base_ = './eval_loader.py'
readme_section = 'COCO 2017'  # README.md, "Datasets": download and layout
dataset_type = 'CocoDataset'
data_root = 'data/coco/'

test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    dict(type='ResizeShortestEdge', scale=800, max_size=1333, backend='pillow',
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
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        # The class names, in label order, go into each sample's 'text': the vocabulary.
        return_classes=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# The model predicts masks only (its boxes are all zero), so only 'segm' is meaningful.
# With another data_root, also point ann_file here at the same json.
val_evaluator = dict(
    type='CocoMetric', ann_file=data_root + 'annotations/instances_val2017.json', metric='segm')
test_evaluator = val_evaluator
