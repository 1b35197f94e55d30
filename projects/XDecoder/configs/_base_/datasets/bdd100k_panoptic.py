# BDD100K (10k) val panoptic segmentation (10 things + 30 stuff, the official X-Decoder names
# and category ids 1..40), PQ with mmdet's CocoPanopticMetric (README "Datasets": BDD100K). The
# layout the official evaluation reads, COCO panoptic json and PNGs, and the json with its
# categories listed things first (mmdet's label order), by
#   python tools/dataset_converters/bdd100k_panoptic.py data/bdd100k
#   data/bdd100k/images/10k/val/*.jpg
#   data/bdd100k/labels/pan_seg/meta/coco_val.json         (official)
#   data/bdd100k/labels/pan_seg/meta/coco_val_mmdet.json   (read here)
#   data/bdd100k/labels/pan_seg/coco_pano/val/*.png
# The official BDD test scale: short side 800, long side <= 1333.
_base_ = './eval_loader.py'
readme_section = 'BDD100K'  # README.md, "Datasets": download and layout
data_root = 'data/bdd100k/'
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    dict(type='ResizeShortestEdge', scale=800, max_size=1333, backend='pillow',
         interpolation='bilinear'),
    dict(type='LoadPanopticAnnotations', backend_args=None),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text',
                    'stuff_text'))
]
# Things first, then stuff, each in the official (category id) order.
bdd100k_panoptic_vocabulary = dict(
    thing_classes=('person', 'rider', 'bicycle', 'bus', 'car', 'caravan', 'motorcycle',
                   'trailer', 'train', 'truck'),
    stuff_classes=('dynamic', 'ego vehicle', 'ground', 'static', 'parking', 'rail track', 'road',
                   'sidewalk', 'bridge', 'building', 'fence', 'garage', 'guard rail', 'tunnel',
                   'wall', 'banner', 'billboard', 'lane divider', 'parking sign', 'pole',
                   'polegroup', 'street light', 'traffic cone', 'traffic device',
                   'traffic light', 'traffic sign', 'traffic sign frame', 'terrain',
                   'vegetation', 'sky'))
bdd100k_panoptic_vocabulary['classes'] = (bdd100k_panoptic_vocabulary['thing_classes'] +
                                          bdd100k_panoptic_vocabulary['stuff_classes'])
val_dataloader = dict(
    dataset=dict(
        type='CocoPanopticDataset',
        data_root=data_root,
        ann_file='labels/pan_seg/meta/coco_val_mmdet.json',
        data_prefix=dict(img='images/10k/val/', seg='labels/pan_seg/coco_pano/val/'),
        metainfo=bdd100k_panoptic_vocabulary,
        test_mode=True,
        return_classes=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# With another data_root, also point ann_file and seg_prefix here at the same files.
val_evaluator = dict(
    type='CocoPanopticMetric',
    ann_file=data_root + 'labels/pan_seg/meta/coco_val_mmdet.json',
    seg_prefix=data_root + 'labels/pan_seg/coco_pano/val/')
test_evaluator = val_evaluator
