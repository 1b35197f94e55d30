# Fine-tune X-Decoder focal-T for image-text retrieval on COCO Karpathy train, validated with
# recall@1/5/10 on Karpathy test. Contrastive loss of the global query and of the pooled
# backbone (backbone_proj) against the captions, over the batch of all GPUs
# (XDecoderRetrievalLoss); the paper's recipe: 10 epochs at 384 px, batch 2048, lr 3e-5
# (backbone and text encoder 3e-6).
#   ./tools/dist_train.sh projects/XDecoder/configs/xdecoder-tiny_finetune_retrieval_coco2014.py 8
# Data: as xdecoder-tiny_finetune_caption_coco2014.py.
# The captioning fine-tuning's data and optimiser, with retrieval's loss, metric and size.
_base_ = './xdecoder-tiny_finetune_caption_coco2014.py'

# retrieval_ensemble: the official score 0.5 * cos(global query) + 0.5 * cos(pooled res5 @
# backbone_proj), whose two embeddings the two retrieval losses train.
model = dict(
    task='retrieval',
    test_cfg=dict(retrieval_ensemble=True),
    criterion=dict(_delete_=True, retrieval=dict(type='XDecoderRetrievalLoss')))
# Retrieval reads the global query and the pooled backbone only: the mask head, the caption
# head and the object queries' class projection of the last layer get no gradient.
find_unused_parameters = True

image_size = 384
train_dataloader = dict(
    batch_size=64,  # x 8 GPUs = 512; the paper's 2048 needs 32 GPUs (or 4x the memory)
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
        dict(type='Resize', scale=(image_size, image_size), keep_ratio=False, backend='pillow',
             interpolation='bicubic'),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackXDecoderInputs')
    ]))
val_evaluator = dict(_delete_=True, type='RetrievalRecallMetric', topk=(1, 5, 10))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=3e-5))
# 10 epochs of 113,287 images at 512 per iteration.
max_iters = 10 * 113287 // 512
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, gamma=0.1,
         milestones=[int(max_iters * 0.88889), int(max_iters * 0.96296)]),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=500)
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=500, save_best='retrieval/img2txt_R@1',
                    rule='greater'))
log_processor = dict(by_epoch=False)
