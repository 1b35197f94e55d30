# Fine-tune X-Decoder focal-T for referring segmentation on RefCOCOg (UMD split), validated with
# cIoU on its val split. Grounding loss only (the official grounding weights: mask 1, Dice 1,
# query-phrase class 0.4 x 2 for referring expressions); 24 epochs in the paper.
#   ./tools/dist_train.sh projects/XDecoder/configs/xdecoder-tiny_finetune_ref-seg_refcocog.py 8
# Data: data/coco/train2014/*.jpg, data/coco/refcocog/{instances.json,refs(umd).p}.
_base_ = [
    './xdecoder-tiny_zeroshot_open-vocab-ref-seg_refcocog.py', '_base_/datasets/refcocog_train.py',
    '_base_/schedules/xdecoder_finetune.py'
]
train_readme_section = 'RefCOCO / RefCOCO+ / RefCOCOg'  # README.md, "Datasets": the training data
# The jointly trained checkpoint, which learned grounding (download: README.md, "Checkpoints").
load_from = 'xdecoder_focalt_last_novg.pt'

model = dict(criterion=dict(grounding=dict(type='XDecoderGroundingLoss')))
# Grounding runs the generic queries too, but the captioning head, backbone_proj and the
# frozen text encoder get no gradient from this loss.
find_unused_parameters = True

# ~24 epochs of RefCOCOg-umd train (21,899 images) at 8 images per iteration (8 GPUs x 1).
max_iters = 24 * 21899 // 8
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, gamma=0.1,
         milestones=[int(max_iters * 0.88889), int(max_iters * 0.96296)]),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=5000, save_best='cIoU'))
log_processor = dict(by_epoch=False)
