# Cityscapes val instance segmentation (8 thing classes, mmdet's CityscapesDataset names, which
# are the official X-Decoder ones), with mmdet's CityScapesMetric (cityscapesscripts' AP, on the
# gtFine instance PNGs) and mask AP with mmdet's CocoMetric, as mmdet's own Cityscapes instance
# config evaluates (README "Datasets": Cityscapes). mmdet's layout; the json comes from mmdet's
# tools/dataset_converters/cityscapes.py:
#   data/cityscapes/leftImg8bit/val/<city>/*_leftImg8bit.png
#   data/cityscapes/gtFine/val/<city>/*_gtFine_instanceIds.png   (read by CityScapesMetric)
#   data/cityscapes/annotations/instancesonly_filtered_gtFine_val.json
# The official Cityscapes test scale: short side 1024, long side <= 2048.
_base_ = './eval_loader.py'
readme_section = 'Cityscapes'  # README.md, "Datasets": download and layout
data_root = 'data/cityscapes/'
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    dict(type='ResizeShortestEdge', scale=1024, max_size=2048, backend='pillow',
         interpolation='bilinear'),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text'))
]
val_dataloader = dict(
    dataset=dict(
        type='CityscapesDataset',
        data_root=data_root,
        ann_file='annotations/instancesonly_filtered_gtFine_val.json',
        data_prefix=dict(img='leftImg8bit/val/'),
        test_mode=True,
        # The 8 class names, in label order, go into each sample's 'text': the vocabulary.
        return_classes=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# The model predicts masks only (its boxes are all zero), so CocoMetric computes 'segm' only.
# CityScapesMetric finds each image's ground truth from the image path
# (leftImg8bit/ -> gtFine/, *_gtFine_instanceIds.png) and writes its per-instance PNGs and txt
# files under outfile_prefix (mmdet's choice of folder, relative to the working directory; the
# previous run's are removed). With another data_root, also point ann_file and seg_prefix here
# at the same copy.
val_evaluator = [
    dict(type='CocoMetric',
         ann_file=data_root + 'annotations/instancesonly_filtered_gtFine_val.json',
         metric='segm'),
    dict(type='CityScapesMetric', seg_prefix=data_root + 'gtFine/val',
         outfile_prefix='./work_dirs/cityscapes_metric/instance')
]
test_evaluator = val_evaluator
