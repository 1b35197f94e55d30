# ADE20K-150 semantic segmentation, laid out as mmsegmentation's docs say:
#   data/ade/ADEChallengeData2016/images/validation/*.jpg
#   data/ade/ADEChallengeData2016/annotations/validation/*.png
# Resize as the official evaluation does: short side 640, long side at most 2560, PIL bilinear.
_base_ = './eval_loader.py'
readme_section = 'ADE20K-150'  # README.md, "Datasets": download and layout
dataset_type = 'ADE20KSegDataset'
data_root = 'data/ade/ADEChallengeData2016/'

# The class names X-Decoder was evaluated with (the official ADE20K-150 panoptic names), in the
# dataset's label order. mmdet's names differ in wording for ten classes ('windowpane',
# 'bathtub', 'railing', 'streetlight', 'television receiver', 'apparel', 'swimming pool',
# 'waterfall', 'ashcan', 'bed '), and the wording changes the text embeddings, hence the scores.
ade20k_150_classes = (
    'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed', 'window', 'grass',
    'cabinet', 'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant', 'curtain',
    'chair', 'car', 'water', 'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror', 'rug', 'field',
    'armchair', 'seat', 'fence', 'desk', 'rock', 'wardrobe', 'lamp', 'tub', 'rail', 'cushion',
    'base', 'box', 'column', 'signboard', 'chest of drawers', 'counter', 'sand', 'sink',
    'skyscraper', 'fireplace', 'refrigerator', 'grandstand', 'path', 'stairs', 'runway', 'case',
    'pool table', 'pillow', 'screen door', 'stairway', 'river', 'bridge', 'bookcase', 'blind',
    'coffee table', 'toilet', 'flower', 'book', 'hill', 'bench', 'countertop', 'stove', 'palm',
    'kitchen island', 'computer', 'swivel chair', 'boat', 'bar', 'arcade machine', 'hovel', 'bus',
    'towel', 'light', 'truck', 'tower', 'chandelier', 'awning', 'street lamp', 'booth', 'tv',
    'airplane', 'dirt track', 'clothes', 'pole', 'land', 'bannister', 'escalator', 'ottoman',
    'bottle', 'buffet', 'poster', 'stage', 'van', 'ship', 'fountain', 'conveyer belt', 'canopy',
    'washer', 'plaything', 'pool', 'stool', 'barrel', 'basket', 'falls', 'tent', 'bag',
    'minibike', 'cradle', 'oven', 'ball', 'food', 'step', 'tank', 'trade name', 'microwave', 'pot',
    'animal', 'bicycle', 'lake', 'dishwasher', 'screen', 'blanket', 'sculpture', 'hood', 'sconce',
    'vase', 'traffic light', 'tray', 'trash can', 'fan', 'pier', 'crt screen', 'plate', 'monitor',
    'bulletin board', 'shower', 'radiator', 'glass', 'clock', 'flag')

test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    dict(type='ResizeShortestEdge', scale=640, max_size=2560, backend='pillow',
         interpolation='bilinear'),
    dict(type='LoadAnnotations', with_bbox=False, with_mask=False, with_seg=True,
         reduce_zero_label=True),
    dict(type='PackDetInputs',
         meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text'))
]

val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        # Same labels, other names: no label remapping.
        metainfo=dict(classes=ade20k_150_classes),
        use_label_map=False,
        return_classes=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='SemSegMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
