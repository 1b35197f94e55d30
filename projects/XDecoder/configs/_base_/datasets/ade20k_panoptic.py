# ADE20K-150 panoptic segmentation (100 things + 50 stuff), PQ with mmdet's CocoPanopticMetric.
# The json and PNGs come from mmdet's tools/dataset_converters/ade20k2coco.py --task panoptic:
#   data/ade/ADEChallengeData2016/images/validation/ADE_val_*.jpg
#   data/ade/ADEChallengeData2016/ade20k_panoptic_val.json
#   data/ade/ADEChallengeData2016/ade20k_panoptic_val/ADE_val_*.png
# Resize as the official evaluation does: short side 640, long side at most 2560, PIL bilinear.
_base_ = './eval_loader.py'
readme_section = 'ADE20K-150 instance / panoptic'  # README.md, "Datasets": download and layout
dataset_type = 'ADE20KPanopticDataset'
data_root = 'data/ade/ADEChallengeData2016/'

test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    dict(type='ResizeShortestEdge', scale=640, max_size=2560, backend='pillow',
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

# The names the model reads, in the order of mmdet's thing_classes / stuff_classes: the official
# X-Decoder wording, which is the first synonym of each mmdet name ('painting, picture' ->
# 'painting'). 'classes' keeps mmdet's full names: they are what the json's categories are called.
ade20k_panoptic_vocabulary = dict(
    thing_classes=(
        'bed', 'window', 'cabinet', 'person', 'door', 'table', 'curtain', 'chair', 'car',
        'painting', 'sofa', 'shelf', 'mirror', 'armchair', 'seat', 'fence', 'desk', 'wardrobe',
        'lamp', 'tub', 'rail', 'cushion', 'box', 'column', 'signboard', 'chest of drawers',
        'counter', 'sink', 'fireplace', 'refrigerator', 'stairs', 'case', 'pool table', 'pillow',
        'screen door', 'bookcase', 'coffee table', 'toilet', 'flower', 'book', 'bench',
        'countertop', 'stove', 'palm', 'kitchen island', 'computer', 'swivel chair', 'boat',
        'arcade machine', 'bus', 'towel', 'light', 'truck', 'chandelier', 'awning', 'street lamp',
        'booth', 'tv', 'airplane', 'clothes', 'pole', 'bannister', 'ottoman', 'bottle', 'van',
        'ship', 'fountain', 'washer', 'plaything', 'stool', 'barrel', 'basket', 'bag', 'minibike',
        'oven', 'ball', 'food', 'step', 'trade name', 'microwave', 'pot', 'animal', 'bicycle',
        'dishwasher', 'screen', 'sculpture', 'hood', 'sconce', 'vase', 'traffic light', 'tray',
        'trash can', 'fan', 'plate', 'monitor', 'bulletin board', 'radiator', 'glass', 'clock',
        'flag'),
    stuff_classes=(
        'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'grass', 'sidewalk', 'earth',
        'mountain', 'plant', 'water', 'house', 'sea', 'rug', 'field', 'rock', 'base', 'sand',
        'skyscraper', 'grandstand', 'path', 'runway', 'stairway', 'river', 'bridge', 'blind',
        'hill', 'bar', 'hovel', 'tower', 'dirt track', 'land', 'escalator', 'buffet', 'poster',
        'stage', 'conveyer belt', 'canopy', 'pool', 'falls', 'tent', 'cradle', 'tank', 'lake',
        'blanket', 'pier', 'crt screen', 'shower'))

val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ade20k_panoptic_val.json',
        data_prefix=dict(img='images/validation/', seg='ade20k_panoptic_val/'),
        metainfo=ade20k_panoptic_vocabulary,
        test_mode=True,
        return_classes=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# With another data_root, also point ann_file and seg_prefix here at the same files.
val_evaluator = dict(
    type='CocoPanopticMetric',
    ann_file=data_root + 'ade20k_panoptic_val.json',
    seg_prefix=data_root + 'ade20k_panoptic_val/')
test_evaluator = val_evaluator
