# X-Decoder focal-T joint pre-training, the official recipe (microsoft/X-Decoder
# configs/xdecoder/xdecoder_focalt_lang.yaml and its TRAIN.md command): every iteration takes
#   * a segmentation batch: COCO 2017 panoptic with each image's captions and referring
#     expressions (filtered of RefCOCOg-umd val/test and Karpathy test images), large-scale
#     jitter at 1024 -> generic segmentation + grounding losses;
#   * an image-text batch: image-caption pairs at 224 -> captioning + retrieval losses;
# summed into one loss and one backward pass (joint_training.py: JointTrainLoop zips the two
# dataloaders, JointDataPreprocessor prepares both, XDecoder.loss sums the streams).
# Needs 8+ GPUs: 1 segmentation image and 32 image-text pairs per GPU, FP16 (--amp), as the
# official 8-GPU command; the paper's run used 32 GPUs (COCO 32, image-text 1024 per step).
#   ./tools/dist_train.sh projects/XDecoder/configs/xdecoder-tiny_pretrain_coco-vlp.py 8 --amp
# Data: README.md, "Training data". Starts from UniCL weights (focalt_in21k_yfcc_gcc_xdecoder_
# unicl.pt, converted keys) when given as load_from; nothing is frozen.
_base_ = [
    '_base_/models/xdecoder_focalt.py', '_base_/datasets/coco_panoptic_vl_train.py',
    '_base_/datasets/image_text_train.py', '_base_/datasets/refcocog.py',
    '_base_/schedules/xdecoder_finetune.py', '_base_/default_runtime.py'
]
# README.md, "Datasets": the training data
train_readme_section = 'COCO panoptic + captions + referring expressions'

model = dict(
    task='referring',  # what validation runs: RefCOCOg-umd val, as the official config
    data_preprocessor=dict(type='JointDataPreprocessor'),
    # The official loss weights (yaml + TRAIN.md command): segmentation class 2 / mask 5 /
    # Dice 5 (no-object 0.1); grounding mask 1 / Dice 1 / class 0.4 (x2 for referring
    # expressions, x0.5 for class names); captioning 8, retrieval 8, backbone retrieval 8.
    criterion=dict(
        segmentation=dict(type='XDecoderSegLoss'),
        grounding=dict(type='XDecoderGroundingLoss'),
        captioning=dict(type='XDecoderCaptionLoss'),
        retrieval=dict(type='XDecoderRetrievalLoss')),
    # The official recipe trains the text encoder, at 0.1x the learning rate (paramwise_cfg).
    train_cfg=dict(freeze_text_encoder=False))

train_dataloader = dict(
    segmentation={{_base_.segmentation_dataloader}},
    image_text={{_base_.image_text_dataloader}})

# 50 epochs of the ~118k COCO images at 8 images per iteration (8 GPUs).
max_iters = 50 * 118000 // 8
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, gamma=0.1,
         milestones=[int(max_iters * 0.88889), int(max_iters * 0.96296)]),
]
train_cfg = dict(type='JointTrainLoop', max_iters=max_iters, val_interval=10000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=10000, save_best='cIoU'))
log_processor = dict(by_epoch=False)
