# The official X-Decoder optimiser (microsoft/X-Decoder configs/xdecoder/*_lang.yaml, SOLVER):
# AdamW, weight decay 0.05 except on norms and embeddings, backbone and text encoder at 0.1x
# the learning rate, whole-model gradient clipping at norm 5. Iteration-based, as mmseg's and
# mmdet's fine-tuning configs. Each config sets its learning rate (optim_wrapper.optimizer.lr)
# and its schedule (param_scheduler, train_cfg); the official schedule is 10 linear warm-up
# iterations, then x0.1 at 88.9 % and 96.3 % of the run.

optim_wrapper = dict(
    type='OptimWrapper',  # tools/train.py --amp switches it to AmpOptimWrapper
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=5.0, norm_type=2),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={
            'backbone.': dict(lr_mult=0.1),
            'text_encoder.': dict(lr_mult=0.1),
            'query_feat': dict(decay_mult=0.0),
            'query_embed': dict(decay_mult=0.0),
            'level_embed': dict(decay_mult=0.0),
            'pos_embed_caping': dict(decay_mult=0.0),
            'token_embedding': dict(decay_mult=0.0),
            'positional_embedding': dict(decay_mult=0.0),
        }))

auto_scale_lr = dict(enable=False, base_batch_size=8)

# Before the first step: the training datasets' class names are present, distinct and found.
custom_hooks = [dict(type='TrainingClassNamesHook')]
