# Fine-tune X-Decoder focal-T for image captioning on COCO Karpathy train (113k images, 5
# captions each), validated with CIDEr etc. on Karpathy test. Teacher-forced next-token loss on
# the caption queries (XDecoderCaptionLoss); the paper's recipe: 10 epochs at 480 px, batch 256,
# lr 2e-5 (backbone and text encoder 2e-6).
#   ./tools/dist_train.sh projects/XDecoder/configs/xdecoder-tiny_finetune_caption_coco2014.py 8
# Data: data/coco/{train2014,val2014}/*.jpg, data/coco/annotations/coco_karpathy_{train,test,
# test_gt}.json (README.md, "Training data").
_base_ = [
    './xdecoder-tiny_zeroshot_caption_coco2014.py', '_base_/schedules/xdecoder_finetune.py'
]
train_readme_section = 'Image-text pairs'  # README.md, "Datasets": the training data
load_from = 'xdecoder_focalt_last_novg.pt'

model = dict(
    criterion=dict(captioning=dict(type='XDecoderCaptionLoss')),
    train_cfg=dict(freeze_text_encoder=False))
# Captioning reads the caption queries only: the segmentation heads' outputs (class and mask
# embeddings of the last layer's masks) and backbone_proj get no gradient.
find_unused_parameters = True

# The image-text stream of the joint training (_base_/datasets/image_text_train.py: Karpathy
# train, or your own jsonl) at the paper's 480 px.
image_size = 480
train_dataloader = dict(
    batch_size=32,  # x 8 GPUs = the paper's 256
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='ImageTextDataset',
        data_root='data/coco/',
        ann_file='annotations/coco_karpathy_train.json',
        data_prefix=dict(img_path=''),
        pipeline=[
            dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
            dict(type='Resize', scale=(image_size, image_size), keep_ratio=False,
                 backend='pillow', interpolation='bicubic'),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackXDecoderInputs')
        ]))

optim_wrapper = dict(optimizer=dict(lr=2e-5))
# 10 epochs of 113,287 images at 256 per iteration.
max_iters = 10 * 113287 // 256
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, gamma=0.1,
         milestones=[int(max_iters * 0.88889), int(max_iters * 0.96296)]),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=1000)
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=1000, save_best='CIDEr', rule='greater'))
log_processor = dict(by_epoch=False)
