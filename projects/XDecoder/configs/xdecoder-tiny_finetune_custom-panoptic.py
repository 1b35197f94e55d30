# Fine-tune X-Decoder focal-T for panoptic segmentation on your own data in COCO panoptic
# format, with your own thing and stuff names (README.md, "Fine-tune on your own data"):
#   data/my_dataset/{train,val}/*.jpg
#   data/my_dataset/annotations/panoptic_{train,val}.json
#   data/my_dataset/annotations/panoptic_{train,val}/*.png
# The json's categories carry "isthing"; list the things first, then the stuff, as the json
# does.
#   ./tools/dist_train.sh projects/XDecoder/configs/xdecoder-tiny_finetune_custom-panoptic.py 8
_base_ = [
    './xdecoder-tiny_zeroshot_open-vocab-panoptic_coco.py',
    '_base_/schedules/xdecoder_finetune.py'
]
readme_section = 'Your own data'  # README.md, "Datasets"
thing_classes = ('person', 'car')  # <- your thing names
stuff_classes = ('road', 'sky')  # <- your stuff names
metainfo = dict(classes=thing_classes + stuff_classes, thing_classes=thing_classes,
                stuff_classes=stuff_classes)
data_root = 'data/my_dataset/'
load_from = 'xdecoder_focalt_best_openseg.pt'

model = dict(task='panoptic', criterion=dict(segmentation=dict(type='XDecoderSegLoss')))
# Segmentation reads neither the captioning head nor backbone_proj (and the text encoder stays
# frozen), so those parameters get no gradient.
find_unused_parameters = True

# The official COCO panoptic recipe: large-scale jitter (0.1-2.0 of 1024, 1024 crops), flips.
image_size = (1024, 1024)
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadPanopticAnnotations', with_bbox=True, with_mask=True, with_seg=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=image_size, crop_type='absolute', recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                    'flip_direction', 'text', 'stuff_text'))
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='CocoPanopticDataset',
        data_root=data_root,
        ann_file='annotations/panoptic_train.json',
        data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
        metainfo=metainfo,
        filter_cfg=dict(filter_empty_gt=True, min_size=1),
        return_classes=True,
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/panoptic_val.json',
        data_prefix=dict(img='val/', seg='annotations/panoptic_val/'),
        metainfo=metainfo))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/panoptic_val.json',
                     seg_prefix=data_root + 'annotations/panoptic_val/')
test_evaluator = val_evaluator

max_iters = 20000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, gamma=0.1,
         milestones=[int(max_iters * 0.88889), int(max_iters * 0.96296)]),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=2000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=2000, save_best='coco_panoptic/PQ',
                                     rule='greater'))
log_processor = dict(by_epoch=False)
