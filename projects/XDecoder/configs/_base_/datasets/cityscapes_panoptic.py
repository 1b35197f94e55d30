# Cityscapes val panoptic segmentation (8 things + 11 stuff, the official X-Decoder names), PQ
# with mmdet's CocoPanopticMetric (README "Datasets": Cityscapes). The official panoptic ground
# truth (cityscapesscripts' csCreatePanopticImgs) made readable for mmdet by
#   python tools/dataset_converters/cityscapes_panoptic.py data/cityscapes
#   data/cityscapes/leftImg8bit/val/<city>/*_leftImg8bit.png
#   data/cityscapes/gtFine/cityscapes_panoptic_val_mmdet.json
#   data/cityscapes/gtFine/cityscapes_panoptic_val_mmdet/*_leftImg8bit.png
# The official Cityscapes test scale: short side 1024, long side <= 2048.
_base_ = './eval_loader.py'
readme_section = 'Cityscapes'  # README.md, "Datasets": download and layout
data_root = 'data/cityscapes/'
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    dict(type='ResizeShortestEdge', scale=1024, max_size=2048, backend='pillow',
         interpolation='bilinear'),
    # With return_classes, 'text' holds the thing names and 'stuff_text' the stuff names: the
    # vocabulary is things + stuff, the label order of 'classes'.
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text',
                    'stuff_text'))
]
cityscapes_panoptic_vocabulary = dict(
    classes=('person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle', 'road',
             'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign',
             'vegetation', 'terrain', 'sky'),
    thing_classes=('person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle'),
    stuff_classes=('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
                   'traffic sign', 'vegetation', 'terrain', 'sky'))
val_dataloader = dict(
    dataset=dict(
        type='CocoPanopticDataset',
        data_root=data_root,
        ann_file='gtFine/cityscapes_panoptic_val_mmdet.json',
        data_prefix=dict(img='leftImg8bit/val/', seg='gtFine/cityscapes_panoptic_val_mmdet/'),
        metainfo=cityscapes_panoptic_vocabulary,
        test_mode=True,
        return_classes=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# With another data_root, also point ann_file and seg_prefix here at the same files.
val_evaluator = dict(
    type='CocoPanopticMetric',
    ann_file=data_root + 'gtFine/cityscapes_panoptic_val_mmdet.json',
    seg_prefix=data_root + 'gtFine/cityscapes_panoptic_val_mmdet/')
test_evaluator = val_evaluator
