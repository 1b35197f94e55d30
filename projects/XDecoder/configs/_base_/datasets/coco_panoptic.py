# COCO val2017 panoptic segmentation (80 things + 53 stuff), PQ with mmdet's CocoPanopticMetric:
#   data/coco/val2017/*.jpg
#   data/coco/annotations/panoptic_val2017.json
#   data/coco/annotations/panoptic_val2017/*.png
# Resize as the official evaluation does (detectron2): short side 800, long side at most 1333,
# PIL decode and PIL bilinear resize.
_base_ = './eval_loader.py'
readme_section = 'COCO 2017'  # README.md, "Datasets": download and layout
dataset_type = 'CocoPanopticDataset'
data_root = 'data/coco/'

test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    dict(type='ResizeShortestEdge', scale=800, max_size=1333, backend='pillow',
         interpolation='bilinear'),
    # Ground truth at the original size, for --show-dir; the metric reads the json and PNGs.
    dict(type='LoadPanopticAnnotations', backend_args=None),
    # With return_classes, mmdet puts the thing names into 'text' and the stuff names into
    # 'stuff_text'; the model's vocabulary is text + stuff_text, which is the dataset's label
    # order (the json lists things first, then stuff).
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text',
                    'stuff_text'))
]

val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/panoptic_val2017.json',
        data_prefix=dict(img='val2017/', seg='annotations/panoptic_val2017/'),
        test_mode=True,
        return_classes=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# With another data_root, also point ann_file and seg_prefix here at the same files.
val_evaluator = dict(
    type='CocoPanopticMetric',
    ann_file=data_root + 'annotations/panoptic_val2017.json',
    seg_prefix=data_root + 'annotations/panoptic_val2017/')
test_evaluator = val_evaluator
