# Fine-tune X-Decoder focal-T for instance segmentation on your own COCO-format dataset, with
# your own class names (README.md, "Fine-tune on your own data"). Lay the data out as
#   data/my_dataset/train/*.jpg   data/my_dataset/annotations/instances_train.json
#   data/my_dataset/val/*.jpg     data/my_dataset/annotations/instances_val.json
# (COCO instances json: polygons or RLE), set `classes` below to the json's category names
# (the model reads them as text: write them as words, e.g. 'traffic light'), then
#   ./tools/dist_train.sh projects/XDecoder/configs/xdecoder-tiny_finetune_custom-instance.py 8
#   ./tools/test.py projects/XDecoder/configs/xdecoder-tiny_finetune_custom-instance.py \
#       work_dirs/xdecoder-tiny_finetune_custom-instance/iter_N.pth
_base_ = [
    './xdecoder-tiny_zeroshot_open-vocab-instance_coco.py',
    '_base_/schedules/xdecoder_finetune.py'
]
readme_section = 'Your own data'  # README.md, "Datasets"
classes = ('cat', 'dog')  # <- your class names, in the json's category order
data_root = 'data/my_dataset/'
# The open-vocabulary checkpoint: its class-name embeddings start from your names' meaning.
load_from = 'xdecoder_focalt_best_openseg.pt'

model = dict(
    task='instance',
    criterion=dict(segmentation=dict(type='XDecoderSegLoss')),
    # No stuff names: every label is a thing.
    test_cfg=dict(instance_thing_only=False))
# Segmentation reads neither the captioning head nor backbone_proj (and the text encoder stays
# frozen), so those parameters get no gradient.
find_unused_parameters = True

# mmdet's Mask2Former COCO recipe scaled to the official X-Decoder's large-scale jitter: random
# rescale to 0.1-2.0 of 1024, 1024 crops, flips.
image_size = (1024, 1024)
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=image_size, crop_type='absolute', recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                    'flip_direction', 'text'))
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='CocoDataset',
        data_root=data_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        metainfo=dict(classes=classes),
        # Images without annotations teach nothing here; mmdet drops (and counts) them.
        filter_cfg=dict(filter_empty_gt=True, min_size=1),
        return_classes=True,
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        metainfo=dict(classes=classes)))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

max_iters = 20000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, gamma=0.1,
         milestones=[int(max_iters * 0.88889), int(max_iters * 0.96296)]),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=2000)
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=2000, save_best='coco/segm_mAP', rule='greater'))
log_processor = dict(by_epoch=False)
