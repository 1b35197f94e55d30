# COCO captions, Karpathy test split (5,000 val2014 images, 5 captions each), files as
# mmdetection's coco_caption config names them:
#   data/coco/val2014/COCO_val2014_*.jpg
#   data/coco/annotations/coco_karpathy_test.json     [{"image": "val2014/...", "caption": [...]}]
#   data/coco/annotations/coco_karpathy_test_gt.json  COCO format, for the metric
_base_ = './eval_loader.py'
readme_section = 'COCO Karpathy test'  # README.md, "Datasets": download and layout
dataset_type = 'CocoCaptionDataset'
data_root = 'data/coco/'

test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    # The official evaluation: a fixed 224 x 224 (aspect not kept), PIL bilinear.
    dict(type='Resize', scale=(224, 224), keep_ratio=False, backend='pillow',
         interpolation='bilinear'),
    # gt_caption: retrieval embeds an image's captions with the model; captioning ignores it.
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                    'gt_caption'))
]

val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/coco_karpathy_test.json',
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# mmdet's COCOCaptionMetric minus SPICE (which downloads Stanford CoreNLP on first use).
val_evaluator = dict(type='COCOCaptionEvalMetric',
                     ann_file=data_root + 'annotations/coco_karpathy_test_gt.json')
test_evaluator = val_evaluator
