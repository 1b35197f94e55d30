# COCO val2017 semantic segmentation over the 133 panoptic categories, mIoU with SemSegMetric:
#   data/coco/val2017/*.jpg
#   data/coco/annotations/panoptic_semseg_val2017/*.png
# The label PNGs (category index in panoptic_val2017.json order, 255 = unlabelled) are made from
# the panoptic annotations with
#   python tools/dataset_converters/coco_panoptic_to_semantic.py data/coco
# Resize as the official evaluation does (detectron2): short side 800, long side at most 1333,
# PIL decode and PIL bilinear resize.
_base_ = './eval_loader.py'
readme_section = 'COCO 2017'  # README.md, "Datasets": download and layout
dataset_type = 'CocoSegDataset'
data_root = 'data/coco/'

test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    dict(type='ResizeShortestEdge', scale=800, max_size=1333, backend='pillow',
         interpolation='bilinear'),
    dict(type='LoadAnnotations', with_bbox=False, with_mask=False, with_seg=True),
    dict(type='PackDetInputs',
         meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text'))
]

# mmdet's CocoSegDataset defaults to the 171 COCO-stuff classes; these are the 133 panoptic
# categories in the order of panoptic_val2017.json (= mmdet's CocoPanopticDataset classes), the
# order the converter writes labels in.
coco_panoptic_classes = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat',
    'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack',
    'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball',
    'kite', 'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket',
    'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple',
    'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair',
    'couch', 'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote',
    'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book',
    'clock', 'vase', 'scissors', 'teddy bear', 'hair drier', 'toothbrush', 'banner', 'blanket',
    'bridge', 'cardboard', 'counter', 'curtain', 'door-stuff', 'floor-wood', 'flower', 'fruit',
    'gravel', 'house', 'light', 'mirror-stuff', 'net', 'pillow', 'platform', 'playingfield',
    'railroad', 'river', 'road', 'roof', 'sand', 'sea', 'shelf', 'snow', 'stairs', 'tent',
    'towel', 'wall-brick', 'wall-stone', 'wall-tile', 'wall-wood', 'water-other',
    'window-blind', 'window-other', 'tree-merged', 'fence-merged', 'ceiling-merged',
    'sky-other-merged', 'cabinet-merged', 'table-merged', 'floor-other-merged',
    'pavement-merged', 'mountain-merged', 'grass-merged', 'dirt-merged', 'paper-merged',
    'food-other-merged', 'building-other-merged', 'rock-merged', 'wall-other-merged',
    'rug-merged')

val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='val2017/', seg_map_path='annotations/panoptic_semseg_val2017/'),
        metainfo=dict(classes=coco_panoptic_classes),
        return_classes=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='SemSegMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
