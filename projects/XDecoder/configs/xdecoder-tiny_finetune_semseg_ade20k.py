# Fine-tune X-Decoder focal-T for ADE20K-150 semantic segmentation (Mask2Former-style set loss,
# class logits against the frozen text encoder's class-name embeddings), validated with mIoU.
# ADE20K laid out as mmsegmentation's docs say:
#   data/ade/ADEChallengeData2016/images/{training,validation}/*.jpg
#   data/ade/ADEChallengeData2016/annotations/{training,validation}/*.png
#   ./tools/dist_train.sh projects/XDecoder/configs/xdecoder-tiny_finetune_semseg_ade20k.py 8
_base_ = [
    './xdecoder-tiny_zeroshot_open-vocab-semseg_ade20k.py',
    '_base_/schedules/xdecoder_finetune.py'
]

# Starts from the released open-vocabulary checkpoint (download: README.md, "Checkpoints").
load_from = 'xdecoder_focalt_best_openseg.pt'

# The criterion freezes the text encoder (its class embeddings are cached without gradients).
model = dict(criterion=dict(segmentation=dict(type='XDecoderSegLoss')))
# The captioning head and the retrieval projection take no part in segmentation training.
find_unused_parameters = True

# mmsegmentation's ADE20K recipe (512x512 crops of images rescaled around short side 512).
crop_size = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=False, with_mask=False, with_seg=True,
         reduce_zero_label=True),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, crop_type='absolute', allow_negative_crop=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackDetInputs',
         meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                    'flip_direction', 'text'))
]
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type={{_base_.dataset_type}},
        data_root={{_base_.data_root}},
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        return_classes=True,
        pipeline=train_pipeline))

# The project's AdamW (_base_/schedules/xdecoder_finetune.py) with Mask2Former's gradient
# clipping.
optim_wrapper = dict(clip_grad=dict(max_norm=0.01, norm_type=2))

max_iters = 160000  # 16 images per iteration (8 GPUs x 2), as mmseg's ADE20K 160k schedule
param_scheduler = dict(type='PolyLR', eta_min=0, power=0.9, begin=0, end=max_iters,
                       by_epoch=False)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=16000)
auto_scale_lr = dict(enable=False, base_batch_size=16)

default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=16000, max_keep_ckpts=3,
                    save_best='mIoU'))
log_processor = dict(by_epoch=False)
