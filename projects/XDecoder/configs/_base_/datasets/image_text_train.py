# Image-text stream of the joint pre-training: image-caption pairs at 224 x 224. Default: COCO
# Karpathy train (mmdetection's coco_karpathy_train.json; README.md, "Training data"):
#   data/coco/train2014/*.jpg  data/coco/val2014/*.jpg
#   data/coco/annotations/coco_karpathy_train.json   [{"image": "val2014/...", "caption": "..."}]
# Your own pairs: a jsonl with one {"image": "path/relative/to/img_path", "caption": "..."} per
# line (lines sharing an image become one sample with several captions):
#   image_text_dataloader = dict(dataset=dict(
#       data_root='data/my_pairs/', ann_file='pairs.jsonl', data_prefix=dict(img_path='images/')))
# Defines `image_text_dataloader`; the joint training config zips it with
# `segmentation_dataloader` (coco_panoptic_vl_train.py).
image_text_data_root = 'data/coco/'

image_text_train_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    # As the official image-text mapper: a fixed 224 x 224 resize (aspect not kept), no other
    # augmentation; the same as the caption / retrieval evaluation.
    dict(type='Resize', scale=(224, 224), keep_ratio=False, backend='pillow',
         interpolation='bilinear'),
    dict(type='PackXDecoderInputs')  # meta gt_caption: the image's captions
]

image_text_dataloader = dict(
    batch_size=32,  # per GPU, as the official 8-GPU recipe (256 in all)
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='ImageTextDataset',
        data_root=image_text_data_root,
        ann_file='annotations/coco_karpathy_train.json',
        data_prefix=dict(img_path=''),
        pipeline=image_text_train_pipeline))
