# Segmentation stream of the joint pre-training: COCO panoptic train2017 with, per image, its
# captions and its RefCOCOg referring expressions, without the RefCOCOg-umd val/test and Karpathy
# test images (the official *_filtrefgumdval_filtvlp files; README.md, "Training data"):
#   data/coco/train2017/*.jpg
#   data/coco/annotations/panoptic_train2017/*.png
#   data/coco/annotations/panoptic_train2017_filtrefgumdval_filtvlp.json
#   data/coco/annotations/captions_train2017_filtrefgumdval_filtvlp.json
#   data/coco/annotations/grounding_train2017_filtrefgumdval_filtvlp.json
# Defines `segmentation_dataloader`; the joint training config zips it with
# `image_text_dataloader` (image_text_train.py).
segmentation_data_root = 'data/coco/'

segmentation_train_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    dict(type='LoadPanopticAnnotations', backend_args=None),
    # Before any geometric transform: the phrases' masks become extra gt_masks rows, so the
    # resize, crop and flip below move them with the image.
    dict(type='LoadGroundingAnnotations'),
    # Large-scale jitter as the official: flip, rescale a 1024 x 1024 target by 0.1-2.0 keeping
    # the aspect, crop 1024 x 1024 (the model's data preprocessor pads smaller images).
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=(1024, 1024), ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(1024, 1024), crop_type='absolute', recompute_bbox=True,
         allow_negative_crop=True),
    # Rows whose mask the crop emptied; keep_empty=False keeps the image (its stuff still
    # trains) instead of drawing another one.
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True, keep_empty=False),
    # gt_instances: things; gt_sem_seg: things + stuff; gt_grounding: the phrases' masks.
    dict(type='PackXDecoderInputs')
]

segmentation_dataloader = dict(
    batch_size=1,  # per GPU, as the official 8-GPU recipe (padding is not masked in the model)
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='CocoPanopticVLDataset',
        data_root=segmentation_data_root,
        ann_file='annotations/panoptic_train2017_filtrefgumdval_filtvlp.json',
        data_prefix=dict(img='train2017/', seg='annotations/panoptic_train2017/'),
        caption_file='annotations/captions_train2017_filtrefgumdval_filtvlp.json',
        grounding_file='annotations/grounding_train2017_filtrefgumdval_filtvlp.json',
        missing_caption='skip',  # or 'error'
        return_classes=True,
        pipeline=segmentation_train_pipeline))
